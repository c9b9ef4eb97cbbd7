"""``deepict train2d`` and ``deepict segment2d``: compartment (cytosol, organelle) segmentation with the 2D U-Net."""

from __future__ import annotations

import argparse

from deepict.errors import ParameterError
from deepict.jobs import Segment2DJob, Train2DJob
from deepict.cli.options import (add_command, add_device_options, add_parameter, apply_precision, apply_threads,
                                 positive_int, positive_number)

# torch, numpy and the modules that import them are imported inside the handlers, so that building
# the parser (every ``deepict`` call, ``--help`` included) stays fast.


def _device(job):
    """The torch device of ``job`` (its threads applied)."""
    from deepict.nn.devices import select_device

    apply_precision(job)
    device = select_device(job.training.device if isinstance(job, Train2DJob) else job.device)
    apply_threads(job.threads)
    return device


def register(subparsers) -> None:
    train = add_command(
        subparsers, Train2DJob, run_train2d, formatter_class=argparse.RawDescriptionHelpFormatter,
        help="train the 2D U-Net to segment a compartment (cytosol, organelles) from tomograms + masks",
        description="Train DeePiCt's 2D U-Net (5 levels, 16-256 filters, slice by slice) to segment one compartment, "
                    "e.g. the cytosol or the organelles, from tomograms and their binary masks (or label maps with "
                    "--remap).\n\n"
                    "Each tomogram is z-scored with its own mean and standard deviation (as at prediction). Every "
                    "epoch draws --tiles-per-epoch random tiles from every --z-stride-th slice of the training "
                    "tomograms, each with its own random flips and 90° rotation; slices smaller than a tile are "
                    "reflect-padded (the padding carries no loss). After every epoch the validation Dice is measured "
                    "on held-out data: the tomograms named by --val-tomograms, else the last tomogram when several "
                    "are given, else slices 60-80% of the depth of the only tomogram (an optimistic estimate).\n\n"
                    "OUT receives the best network (highest validation Dice) whenever it improves, with its voxel "
                    "size, class name, tile geometry, post-processing defaults and training history; "
                    "OUT.last.pt keeps the last state (network + optimizer), so a killed run continues "
                    "with --resume. Training stops after --epochs or after --patience epochs without "
                    "improvement (counted after the first half of the epochs): compact compartments such as the "
                    "cytosol stop early, organelles need many more epochs (the README's table gives timings).",
        epilog="example:\n  deepict train2d --tomograms A.mrc B.mrc C.mrc --masks A_cytosol.mrc B_cytosol.mrc "
               "C_cytosol.mrc.gz --class-name cytosol --out cytosol2d.pt\n"
               "  deepict train2d --tomograms A.mrc --masks A_labels.mrc --remap '2,3,5:1' --class-name organelles "
               "--out organelles2d.pt")
    add_parameter(train, Train2DJob, "tomograms", "--tomograms", nargs="+", metavar="MRC")
    add_parameter(train, Train2DJob, "masks", "--masks", nargs="+", metavar="MRC")
    add_parameter(train, Train2DJob, "out", "--out", metavar="MODEL")
    add_parameter(train, Train2DJob, "training_voxel_size", "--training-voxel-size", type=positive_number)
    add_parameter(train, Train2DJob, "equalize_to", "--equalize-to", metavar="auto|SPEC.tsv|R.mrc")
    add_parameter(train, Train2DJob, "spectrum_lowpass_angstrom", "--spectrum-lowpass-angstrom", type=float,
                  metavar="Å")
    add_parameter(train, Train2DJob, "training.class_name", "--class-name")
    add_parameter(train, Train2DJob, "training.remap", "--remap", metavar="MAPPING")
    add_parameter(train, Train2DJob, "training.val_tomograms", "--val-tomograms", nargs="+", metavar="MRC")
    add_parameter(train, Train2DJob, "training.epochs", "--epochs", type=positive_int)
    add_parameter(train, Train2DJob, "training.tiles_per_epoch", "--tiles-per-epoch", type=positive_int)
    add_parameter(train, Train2DJob, "training.patience", "--patience", type=int)
    add_parameter(train, Train2DJob, "training.warmup_epochs", "--warmup-epochs", type=int)
    add_parameter(train, Train2DJob, "training.tile_size", "--tile-size", type=positive_int)
    add_parameter(train, Train2DJob, "training.z_stride", "--z-stride", type=positive_int)
    add_parameter(train, Train2DJob, "training.batch_size", "--batch-size", type=positive_int)
    add_parameter(train, Train2DJob, "training.learning_rate", "--learning-rate", type=float)
    add_parameter(train, Train2DJob, "training.lr_patience", "--lr-patience", type=int)
    add_parameter(train, Train2DJob, "training.loss", "--loss")
    add_parameter(train, Train2DJob, "training.depth", "--depth", type=positive_int)
    add_parameter(train, Train2DJob, "training.initial_features", "--initial-features", type=positive_int)
    add_parameter(train, Train2DJob, "training.init", "--init")
    add_parameter(train, Train2DJob, "training.crop", "--crop", type=int)
    add_parameter(train, Train2DJob, "training.threshold", "--threshold", type=float)
    add_parameter(train, Train2DJob, "training.sigma", "--sigma", type=float)
    add_parameter(train, Train2DJob, "training.seed", "--seed", type=int)
    add_parameter(train, Train2DJob, "training.augment", "--no-augment", action="store_false",
                  help="do not flip and rotate the training tiles")
    add_parameter(train, Train2DJob, "resume", "--resume", action="store_true")
    add_device_options(train, Train2DJob)

    segment = add_command(
        subparsers, Segment2DJob, run_segment2d, formatter_class=argparse.RawDescriptionHelpFormatter,
        help="segment a compartment (cytosol, organelles) in a tomogram with a trained 2D U-Net",
        description="Segment a tomogram with a model from 'deepict train2d'. The tomogram is z-scored as a whole; "
                    "every slice (or --z-range) is cut into overlapping tiles whose rims (--crop, from the model) "
                    "are discarded and whose cores are averaged, so every voxel is covered without seams for any "
                    "slice size. The probabilities are smoothed along z with a 1D Gaussian (--sigma slices) and "
                    "thresholded into a 0/1 mask (int8 MRC, with the tomogram's voxel size). Big tomograms are "
                    "streamed slab by slab; outputs appear only once complete.\n\n"
                    "A tomogram more than 5 % off the model's voxel size is rescaled to it on the fly (up to 4x) "
                    "and the mask is given at the tomogram's own voxel size (its header's, or --voxel-size when the "
                    "header is wrong); --ignore-voxel-size applies the model to the tomogram as it is.",
        epilog="example:\n  deepict segment2d --model cytosol2d.pt --tomogram T.mrc --out T_cytosol.mrc "
               "--probability-map T_cytosol_prob.mrc")
    add_parameter(segment, Segment2DJob, "model", "--model")
    add_parameter(segment, Segment2DJob, "tomogram", "--tomogram")
    add_parameter(segment, Segment2DJob, "out", "--out", metavar="MRC")
    add_parameter(segment, Segment2DJob, "probability_map", "--probability-map", metavar="MRC")
    add_parameter(segment, Segment2DJob, "threshold", "--threshold", type=float)
    add_parameter(segment, Segment2DJob, "sigma", "--sigma", type=float)
    add_parameter(segment, Segment2DJob, "batch_size", "--batch-size", type=positive_int)
    add_parameter(segment, Segment2DJob, "z_range", "--z-range", nargs=2, type=int, metavar=("FIRST", "END"))
    add_parameter(segment, Segment2DJob, "tile_size", "--tile-size", type=positive_int)
    add_parameter(segment, Segment2DJob, "crop", "--crop", type=int)
    add_parameter(segment, Segment2DJob, "voxel_size", "--voxel-size", type=positive_number, metavar="Å")
    add_parameter(segment, Segment2DJob, "ignore_voxel_size", "--ignore-voxel-size", action="store_true")
    add_parameter(segment, Segment2DJob, "equalize", "--equalize")
    add_device_options(segment, Segment2DJob)


def run_train2d(job: Train2DJob) -> int:
    from deepict.train.train2d import train_2d
    from deepict.io.outputs import claimed_outputs
    from deepict.train.state import state_path

    job.training.validate()
    with claimed_outputs(("--out", job.out), job=job):
        train_2d(job.tomograms, job.masks, job.out, job.training, resume=job.resume,
                 log=lambda text: print(text, flush=True), device=_device(job),
                 training_voxel_size=job.training_voxel_size, equalize_to=job.equalize_to,
                 spectrum_lowpass_angstrom=job.spectrum_lowpass_angstrom)
    print(f"model: {job.out}  (resumable state: {state_path(job.out)})", flush=True)
    return 0


def run_segment2d(job: Segment2DJob) -> int:
    from deepict.infer.model_spectrum import equalized_for_model
    from deepict.infer.slices2d import segment_tomogram
    from deepict.io.outputs import claimed_outputs
    from deepict.nn.model_files import KIND_2D, load_model

    if job.threshold is not None and not 0 <= job.threshold < 1:
        raise ParameterError(f"--threshold must lie in [0, 1), not {job.threshold:g}")
    if job.sigma is not None and not job.sigma >= 0:
        raise ParameterError(f"--sigma must be 0 or more, not {job.sigma:g}")
    if job.z_range is not None and len(job.z_range) != 2:
        raise ParameterError(f"--z-range takes two slice numbers (FIRST END), not {len(job.z_range)}")
    log = lambda text: print(text, flush=True)  # noqa: E731
    load_model(job.model, kind=KIND_2D)  # a 3D model is refused before the tomogram is equalized for it
    with claimed_outputs(("--out", job.out), ("--probability-map", job.probability_map), job=job):
        device = _device(job)
        with equalized_for_model(job.model, job.tomogram, job.equalize, job.out, log,
                                 voxel_size=job.voxel_size) as tomogram:
            segment_tomogram(job.model, tomogram, job.out, probability_map=job.probability_map,
                             threshold=job.threshold, sigma=job.sigma, batch_size=job.batch_size, device=device,
                             z_range=tuple(job.z_range) if job.z_range else None, tile_size=job.tile_size,
                             crop=job.crop, voxel_size=job.voxel_size, ignore_voxel_size=job.ignore_voxel_size,
                             log=log)
    return 0
