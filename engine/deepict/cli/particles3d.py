"""``deepict train3d``, ``pick``, ``segment3d`` and ``import-model``: the 3D U-Net steps."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

from deepict.errors import ParameterError
from deepict.jobs import ImportModelJob, PickJob, Segment3DJob, Train3DJob
from deepict.cli.options import (add_command, add_device_options, add_parameter, apply_precision, apply_threads,
                                 job_from_options, non_negative_int, positive_int, positive_number)

# The step's modules (torch, numpy, scipy: models, picking, train3d, the output claims) are imported inside
# the handlers, so that building the parser (every ``deepict`` call, ``--help`` included) stays fast.

TRAIN_EPILOG = """\
examples:
  # ribosomes (sphere labels of radius 8 voxels) from two annotated tomograms
  deepict train3d --tomograms A.mrc B.mrc --coords A.csv B.csv --radius 8 --out ribo.pt
  # two classes at once (multi-label): one --coords/--class-name/--radius per class
  deepict train3d --tomograms A.mrc B.mrc --coords A_ribo.csv B_ribo.csv --class-name ribosome --radius 10 \\
                  --coords A_fas.csv B_fas.csv --class-name fas --radius 9 --out ribo_fas.pt
  # membranes from binary masks
  deepict train3d --tomograms A.mrc B.mrc --masks A_memb.mrc B_memb.mrc --class-name membrane --out memb.pt

  # tomograms equalized to TS_001 (deepict equalize ... --lowpass-angstrom 40): the model remembers the
  # reference, and 'deepict pick' / 'segment3d' equalize new tomograms to it on the fly
  deepict spectrum --tomogram TS_001.mrc --out ref.tsv
  deepict train3d --tomograms A_eq.mrc B_eq.mrc --coords A.csv B.csv --radius 8 --out ribo.pt \\
                  --spectrum-reference ref.tsv --spectrum-lowpass-angstrom 40

Coordinate CSVs need a header with x,y,z (0-based voxels of that tomogram, x = fastest MRC axis);
other columns are ignored. Writes OUT (the mean of the weights over the second half of the epochs;
with --no-weight-averaging the epoch of best validation Dice) and OUT.last.pt (the full training
state, every epoch: rerun with --resume after an interruption).
"""


def _add_inference_arguments(parser, job_class) -> None:
    group = parser.add_argument_group("inference")
    add_parameter(group, job_class, "inference.window", "--window", type=positive_int)
    add_parameter(group, job_class, "inference.margin", "--margin", type=non_negative_int)
    add_parameter(group, job_class, "inference.batch_size", "--batch-size", type=positive_int)
    add_parameter(group, job_class, "inference.test_time_mirrors", "--test-time-mirrors", action="store_true")
    add_parameter(group, job_class, "inference.test_time_rotations", "--test-time-rotations", action="store_true")
    add_device_options(group, job_class)
    add_parameter(group, job_class, "inference.voxel_size", "--voxel-size", type=positive_number)
    add_parameter(group, job_class, "inference.ignore_voxel_size", "--ignore-voxel-size", action="store_true")
    add_parameter(group, job_class, "inference.equalize", "--equalize")


def _add_cluster_arguments(parser, job_class) -> None:
    group = parser.add_argument_group("post-processing (defaults: the model's suggestions)")
    add_parameter(group, job_class, "class_name", "--class-name")
    add_parameter(group, job_class, "postprocess.threshold", "--threshold", type=float)
    add_parameter(group, job_class, "postprocess.min_size", "--min-size", type=int)
    add_parameter(group, job_class, "postprocess.max_size", "--max-size", type=int)
    add_parameter(group, job_class, "postprocess.connectivity", "--connectivity", type=int)
    add_parameter(group, job_class, "postprocess.border", "--border", type=int, nargs="+", metavar="VOXELS")
    add_parameter(group, job_class, "context", "--context", metavar="MRC")
    add_parameter(group, job_class, "postprocess.context_mode", "--context-mode")
    add_parameter(group, job_class, "postprocess.context_distance", "--context-distance", type=float)
    add_parameter(group, job_class, "probability_map", "--probability-map", metavar="MRC")


def register(subparsers) -> None:
    train_parser = add_command(
        subparsers, Train3DJob, run_train3d,
        help="train a 3D U-Net on particle coordinates or structure masks",
        description="Train a DeePiCt 3D U-Net. Labels are solid spheres around particle coordinates "
                    "(--coords, --radius) or binary masks (--masks). Every tomogram is normalised with its own "
                    "mean and standard deviation, as at inference.",
        epilog=TRAIN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_parameter(train_parser, Train3DJob, "tomograms", "--tomograms", nargs="+", metavar="MRC")
    labels = train_parser.add_mutually_exclusive_group(required=True)
    add_parameter(labels, Train3DJob, "coords", "--coords", nargs="+", action="append", metavar="CSV")
    add_parameter(labels, Train3DJob, "masks", "--masks", nargs="+", action="append", metavar="MRC")
    add_parameter(train_parser, Train3DJob, "training.classes", "--class-name", action="append")
    add_parameter(train_parser, Train3DJob, "radius", "--radius", type=float, action="append")
    add_parameter(train_parser, Train3DJob, "radius_in_angstrom", "--radius-in-angstrom", action="store_true")
    add_parameter(train_parser, Train3DJob, "voxel_size", "--voxel-size", type=positive_number)
    add_parameter(train_parser, Train3DJob, "training_voxel_size", "--training-voxel-size", type=positive_number)
    add_parameter(train_parser, Train3DJob, "out", "--out")
    equalized = train_parser.add_argument_group(
        "spectrum equalization (data from several microscopes or defocus: --equalize-to auto)")
    add_parameter(equalized, Train3DJob, "equalize_to", "--equalize-to", metavar="auto|SPEC.tsv|R.mrc")
    add_parameter(equalized, Train3DJob, "spectrum_reference", "--spectrum-reference", metavar="SPEC.tsv|R.mrc")
    add_parameter(equalized, Train3DJob, "spectrum_lowpass_angstrom", "--spectrum-lowpass-angstrom", type=float,
                  metavar="Å")
    add_parameter(equalized, Train3DJob, "spectrum_lowpass_width", "--spectrum-lowpass-width", type=float,
                  metavar="FRACTION")
    hyper = train_parser.add_argument_group("network and training")
    add_parameter(hyper, Train3DJob, "training.depth", "--depth", type=int)
    add_parameter(hyper, Train3DJob, "training.initial_features", "--initial-features", type=int)
    add_parameter(hyper, Train3DJob, "training.batch_norm", "--no-batch-norm", action="store_false",
                  help="no batch normalisation")
    add_parameter(hyper, Train3DJob, "training.encoder_dropout", "--encoder-dropout", type=float)
    add_parameter(hyper, Train3DJob, "training.decoder_dropout", "--decoder-dropout", type=float)
    add_parameter(hyper, Train3DJob, "training.patch_size", "--patch-size", type=int)
    add_parameter(hyper, Train3DJob, "training.batch_size", "--batch-size", type=positive_int)
    add_parameter(hyper, Train3DJob, "training.epochs", "--epochs", type=positive_int)
    add_parameter(hyper, Train3DJob, "training.iterations_per_epoch", "--iterations-per-epoch", type=positive_int)
    add_parameter(hyper, Train3DJob, "training.learning_rate", "--learning-rate", type=float)
    add_parameter(hyper, Train3DJob, "training.loss", "--loss")
    add_parameter(hyper, Train3DJob, "training.positive_fraction", "--positive-fraction", type=float)
    add_parameter(hyper, Train3DJob, "training.val_fraction", "--val-fraction", type=float)
    add_parameter(hyper, Train3DJob, "training.patience", "--patience", type=int)
    add_parameter(hyper, Train3DJob, "training.augment", "--no-augment", action="store_false",
                  help="no flips / rotations / intensity jitter")
    add_parameter(hyper, Train3DJob, "training.coarser_sampling", "--coarser-sampling", type=float)
    add_parameter(hyper, Train3DJob, "training.seed", "--seed", type=int)
    add_parameter(hyper, Train3DJob, "training.weight_averaging", "--no-weight-averaging", action="store_false",
                  help="keep the epoch of best validation Dice instead of the mean of the weights over the second "
                       "half of the epochs")
    add_parameter(hyper, Train3DJob, "training.hard_negatives", "--no-hard-negatives", action="store_false",
                  help="particle trainings: draw background boxes uniformly only, without predicting the training "
                       "tomograms for the places the network confuses with the particle (structure masks never "
                       "use hard negatives)")
    add_device_options(hyper, Train3DJob)
    add_parameter(hyper, Train3DJob, "resume", "--resume", action="store_true")

    pick_parser = add_command(
        subparsers, PickJob, run_pick, help="pick particles with a trained 3D model",
        description="Predict a class probability map, threshold it, cluster it and write cluster centroids "
                    "as a CSV (x, y, z 0-based voxels of the tomogram; score = mean probability; size = voxels).",
        epilog="examples:\n  deepict pick --model ribo.pt --tomogram T.mrc --out picks.csv --context cytosol.mrc\n"
               "  # nuclear pores touching the envelope, oriented along its normal\n"
               "  deepict pick --model npc.pt --tomogram T.mrc --out npc.csv --context envelope.mrc \\\n"
               "               --context-mode contact --context-distance 2 --orient-by-context",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_parameter(pick_parser, PickJob, "model", "--model")
    add_parameter(pick_parser, PickJob, "tomogram", "--tomogram")
    add_parameter(pick_parser, PickJob, "out", "--out")
    add_parameter(pick_parser, PickJob, "min_distance", "--min-distance", type=float)
    _add_cluster_arguments(pick_parser, PickJob)
    add_parameter(pick_parser, PickJob, "orient_by_context", "--orient-by-context", action="store_true")
    add_parameter(pick_parser, PickJob, "split_touching", "--split-touching", action="store_true")
    _add_inference_arguments(pick_parser, PickJob)

    segment_parser = add_command(
        subparsers, Segment3DJob, run_segment3d,
        help="segment structures (membranes, NPC, filaments) with a trained 3D model",
        description="Predict a class probability map and write the binary mask of its clusters (int8 MRC).",
        epilog="example:\n  deepict segment3d --model memb.pt --tomogram T.mrc --out membranes.mrc",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_parameter(segment_parser, Segment3DJob, "model", "--model")
    add_parameter(segment_parser, Segment3DJob, "tomogram", "--tomogram")
    add_parameter(segment_parser, Segment3DJob, "out", "--out")
    _add_cluster_arguments(segment_parser, Segment3DJob)
    _add_inference_arguments(segment_parser, Segment3DJob)

    import_parser = add_command(
        subparsers, ImportModelJob, run_import_model, to_job=_import_job,
        help="convert a published DeePiCt 3D checkpoint into our model file",
        description="Read a DeePiCt .pth checkpoint safely (no pickled code runs) and write a self-describing\n"
                    "model file. The checkpoints do not record their voxel size: give it with --voxel-size\n"
                    "(the published networks: 13.48 Å).",
        epilog="example:\n  deepict import-model --checkpoint ribo.pth --voxel-size 13.48 --out ribo.pt",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    checkpoint = import_parser.add_mutually_exclusive_group(required=True)
    add_parameter(checkpoint, ImportModelJob, "checkpoint", "--checkpoint", metavar="PTH", required=False)
    checkpoint.add_argument("checkpoint_path", nargs="?", metavar="PTH",
                            help="the same, given without --checkpoint")
    add_parameter(import_parser, ImportModelJob, "out", "--out")
    add_parameter(import_parser, ImportModelJob, "voxel_size", "--voxel-size", type=positive_number)


def _import_job(args) -> ImportModelJob:
    return job_from_options(ImportModelJob, args, checkpoint=args.checkpoint or args.checkpoint_path)


def run_train3d(job: Train3DJob) -> int:
    from deepict.io.outputs import claimed_outputs
    from deepict.train import data3d, equalization
    from deepict.train.state import check_fresh_start
    from deepict.train.train3d import train
    if bool(job.coords) == bool(job.masks):
        raise ParameterError("give the labels either as --coords (with --radius) or as --masks")
    label_sets = job.coords or job.masks
    names = data3d.class_names(job.training.classes, len(label_sets))
    radii = data3d.sphere_radii(job.radius, len(names), job.radius_in_angstrom,
                                job.training_voxel_size or job.voxel_size, job.tomograms[0]) if job.coords else []
    config = replace(job.training, classes=names, label_kind="spheres" if job.coords else "masks",
                     sphere_radius=dict(zip(names, radii)))
    config.validate()
    apply_precision(job)
    equalization.check_spectrum_options(job.spectrum_reference, job.equalize_to, job.spectrum_lowpass_angstrom,
                                  job.spectrum_lowpass_width)
    check_fresh_start(job.out, job.resume)  # before the tomograms are read, as train does again
    with claimed_outputs(("--out", job.out), job=job):
        reference, spectrum = equalization.spectrum_reference(job.spectrum_reference, job.spectrum_lowpass_angstrom,
                                                        job.spectrum_lowpass_width)
        tomograms = data3d.load_training_tomograms(job.tomograms, coords=job.coords, masks=job.masks, radii=radii,
                                                   voxel_size=job.voxel_size,
                                                   training_voxel_size=job.training_voxel_size)
        if reference is not None:
            data3d.check_equalized(tomograms, reference, job.spectrum_lowpass_angstrom)
        equalize_to = equalization.training_equalization(job.spectrum_reference, job.equalize_to)
        if equalize_to:
            spectrum = data3d.equalize_training_tomograms(tomograms, equalize_to, job.spectrum_lowpass_angstrom,
                                                          job.spectrum_lowpass_width,
                                                          log=lambda text: print(text, flush=True))
        apply_threads(job.threads)
        info = train(tomograms, config, job.out, resume=job.resume, spectrum=spectrum)
    best = max((h["val_dice"] or 0 for h in info.history), default=0)
    print(json.dumps({"model": job.out, "classes": info.classes, "epochs": len(info.history),
                      "best_val_dice": best, "weight_average": info.training.get("weight_average"),
                      "voxel_size": info.voxel_size, "has_spectrum": info.spectrum is not None}))
    return 0


def _cluster_parameters(job):
    """The post-processing parameters, checked before any inference (the engine checks them only afterwards),
    and the model's calibrated threshold when test-time rotations lowered it (else None); says when they did."""
    from deepict.nn.model_files import read_model_info
    from deepict.infer.picking import lowered_threshold_fallback, resolve_cluster_parameters, tomogram_voxel_scale
    if job.class_name is not None and not job.class_name.strip():
        raise ParameterError("--class-name is empty: give one of the model's classes (deepict model-info lists them)")
    min_distance = getattr(job, "min_distance", None)  # pick only
    if min_distance is not None and not min_distance >= 0:
        raise ParameterError(f"--min-distance must be 0 or more voxels, got {min_distance:g}")
    options = job.postprocess
    info = read_model_info(job.model)
    parameters = resolve_cluster_parameters(
        info, voxel_scale=tomogram_voxel_scale(info, job.tomogram, job.inference), threshold=options.threshold,
        min_size=options.min_size,
        max_size=options.max_size, connectivity=options.connectivity,
        border=options.border if len(options.border) == 3 else options.border[0],
        context_mode=options.context_mode, context_distance=options.context_distance,
        rotations=job.inference.test_time_rotations)
    parameters.validate()
    calibrated = None if options.threshold is not None else lowered_threshold_fallback(info, parameters.threshold)
    if calibrated is not None:
        print(f"deepict {job.step}: threshold {parameters.threshold:g}, the model's calibrated "
              f"{calibrated:g} lowered for the maps averaged over test-time rotations (give --threshold "
              "to choose another)", flush=True)
    return parameters, calibrated


def run_pick(job: PickJob) -> int:
    from deepict.infer.picking import pick_particles
    from deepict.io.outputs import claimed_outputs
    if job.orient_by_context and not job.context:
        raise ParameterError("--orient-by-context orients the picks by the normal of the context mask: give the "
                             "mask with --context (e.g. the nuclear envelope segmented by 'deepict segment3d')")
    parameters, calibrated_threshold = _cluster_parameters(job)
    apply_precision(job)
    with claimed_outputs(("--out", job.out), ("--probability-map", job.probability_map), job=job):
        apply_threads(job.threads)
        pick_particles(job.model, job.tomogram, job.out, parameters, class_name=job.class_name,
                       context_path=job.context, min_distance=job.min_distance,
                       probability_map=job.probability_map, options=job.inference,
                       orient_by_context=job.orient_by_context, split_touching=job.split_touching,
                       fallback_threshold=calibrated_threshold)
    return 0


def run_segment3d(job: Segment3DJob) -> int:
    from deepict.infer.picking import segment_structures
    from deepict.io.outputs import claimed_outputs
    parameters, _ = _cluster_parameters(job)  # a structure may fill much of the map: no fallback
    apply_precision(job)
    with claimed_outputs(("--out", job.out), ("--probability-map", job.probability_map), job=job):
        apply_threads(job.threads)
        segment_structures(job.model, job.tomogram, job.out, parameters, class_name=job.class_name,
                           context_path=job.context, probability_map=job.probability_map, options=job.inference)
    return 0


def run_import_model(job: ImportModelJob) -> int:
    from deepict.io.outputs import claimed_outputs
    from deepict.job_warnings import WARNING_PREFIX
    from deepict.nn.model_files import import_published_checkpoint, save_model
    with claimed_outputs(("--out", job.out), job=job):
        network, info = import_published_checkpoint(job.checkpoint, job.voxel_size)
        save_model(job.out, network, info)
    if info.spectrum_warning():  # said at import already, not only when a pick finds nothing
        print(f"{WARNING_PREFIX}{job.out}: {info.spectrum_warning()}", flush=True)
    print(json.dumps({"model": job.out, "classes": info.classes, "architecture": info.architecture,
                      "voxel_size": info.voxel_size, "source": info.source}))
    return 0
