"""``deepict train3d``, ``pick``, ``segment3d`` and ``import-model``: the 3D U-Net steps."""

from __future__ import annotations

import argparse
import json

import numpy as np

from deepict.errors import InputFileError, ParameterError
from deepict.io import check_coordinates_in_volume, read_coordinates, read_volume, require_voxel_size
from deepict.train.labels import mask_targets, sphere_targets
from deepict.infer.clusters import CONTEXT_MODES
from deepict.progress import Progress
from deepict.spectrum import DEFAULT_LOWPASS_WIDTH, EQUALIZE_MODES, default_workers, load_reference, radial_spectrum
from deepict.io.outputs import claimed_outputs
from deepict.train.config import LOSS_NAMES, TrainConfig
from deepict.cli.options import add_device_options, apply_threads, non_negative_int, positive_int

# Modules that import torch (models, picking, train3d) are imported inside the handlers, so that
# building the parser (every ``deepict`` call, e.g. ``deepict export``) does not pay for torch.

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
other columns are ignored. Writes OUT (the model with the best validation Dice) and OUT.last.pt
(the full training state, every epoch: rerun with --resume after an interruption).
"""

#: A training tomogram whose spectrum shape deviates from the reference by more than this (median
#: relative deviation below the low-pass) is reported as probably not equalized.
EQUALIZED_TOLERANCE = 0.25


def _add_inference_arguments(parser) -> None:
    group = parser.add_argument_group("inference")
    group.add_argument("--window", type=positive_int, default=128, help="inference box side in voxels (default 128; "
                       "larger is faster, must be divisible by 2^depth)")
    group.add_argument("--margin", type=non_negative_int, default=12,
                       help="blended margin of each box in voxels (default 12)")
    group.add_argument("--batch-size", type=positive_int, default=2, help="boxes per forward pass (default 2)")
    add_device_options(group)
    group.add_argument("--voxel-size", type=float, help="voxel size of the tomogram in Å (default: its header)")
    group.add_argument("--ignore-voxel-size", action="store_true",
                       help="apply the model even if the tomogram's voxel size differs from the model's")
    group.add_argument("--equalize", default="auto", choices=EQUALIZE_MODES,
                       help="equalize the tomogram to the model's reference spectrum (and low-pass) before "
                            "prediction: auto = if the model stores one (trained with --spectrum-reference), on = "
                            "always (error if it has none), off = never, e.g. for tomograms already equalized "
                            "(default auto). The equalized tomogram is a temporary file next to the output")


def _add_cluster_arguments(parser, what: str) -> None:
    group = parser.add_argument_group("post-processing (defaults: the model's suggestions)")
    group.add_argument("--class-name", help="class to use for multi-class models (default: the first)")
    group.add_argument("--threshold", type=float, help="probability threshold (voxels with p > t are kept)")
    group.add_argument("--min-size", type=int, help=f"smallest {what} in voxels")
    group.add_argument("--max-size", type=int, help=f"largest {what} in voxels (default: no limit)")
    group.add_argument("--connectivity", type=int, default=1, choices=(1, 2, 3),
                       help="voxel neighbourhood of a cluster: 1 faces, 2 edges, 3 corners (default 1)")
    group.add_argument("--border", type=int, nargs="+", default=[0], metavar="VOXELS",
                       help="ignore this many voxels at each face (one value, or x y z)")
    group.add_argument("--context", metavar="MRC", help="context mask (e.g. cytosol) of the same shape")
    group.add_argument("--context-mode", default="intersection", choices=CONTEXT_MODES,
                       help="intersection: only voxels in the mask; contact: clusters within --context-distance "
                            "of the mask; colocalization: cluster centroids within --context-distance")
    group.add_argument("--context-distance", type=float, default=0.0, help="in voxels (default 0)")
    group.add_argument("--probability-map", metavar="MRC", help="also keep the probability map here")


def register(subparsers) -> None:
    train_parser = subparsers.add_parser(
        "train3d", help="train a 3D U-Net on particle coordinates or structure masks",
        description="Train a DeePiCt 3D U-Net. Labels are solid spheres around particle coordinates "
                    "(--coords, --radius) or binary masks (--masks). Every tomogram is normalised with its own "
                    "mean and standard deviation, as at inference.",
        epilog=TRAIN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    train_parser.add_argument("--tomograms", nargs="+", required=True, metavar="MRC",
                              help="training tomograms (MRC); a validation slab of each is kept aside (--val-fraction)")
    labels = train_parser.add_mutually_exclusive_group(required=True)
    labels.add_argument("--coords", nargs="+", action="append", metavar="CSV",
                        help="one CSV per tomogram, same order; repeat the option for each further class")
    labels.add_argument("--masks", nargs="+", action="append", metavar="MRC",
                        help="one binary mask per tomogram, same order; repeat for each further class")
    train_parser.add_argument("--class-name", action="append", help="name of each class (default: particle, ...)")
    train_parser.add_argument("--radius", type=float, action="append",
                              help="sphere radius of each class in voxels (or in Å with --radius-in-angstrom)")
    train_parser.add_argument("--radius-in-angstrom", action="store_true", help="--radius values are in Å")
    train_parser.add_argument("--voxel-size", type=float, help="voxel size in Å if the headers lack it")
    train_parser.add_argument("--out", required=True, help="model file to write (e.g. model.pt)")
    equalized = train_parser.add_argument_group(
        "spectrum equalization (when the training tomograms were equalized with 'deepict equalize')")
    equalized.add_argument("--spectrum-reference", metavar="SPEC.tsv|R.mrc",
                           help="the reference the training tomograms were equalized to: a spectrum TSV from "
                                "'deepict spectrum' or the reference tomogram. It is stored in the model, and "
                                "'deepict pick' / 'segment3d' equalize new tomograms to it (--equalize auto)")
    equalized.add_argument("--spectrum-lowpass-angstrom", type=float, metavar="Å",
                           help="the --lowpass-angstrom used with that equalization (default: none)")
    equalized.add_argument("--spectrum-lowpass-width", type=float, default=DEFAULT_LOWPASS_WIDTH,
                           metavar="FRACTION", help="the --lowpass-width used with it (default %(default)s)")
    hyper = train_parser.add_argument_group("network and training")
    defaults = TrainConfig(classes=[])
    hyper.add_argument("--depth", type=int, default=defaults.depth, help=f"pooling levels (default {defaults.depth})")
    hyper.add_argument("--initial-features", type=int, default=defaults.initial_features,
                       help=f"channels at full resolution (default {defaults.initial_features})")
    hyper.add_argument("--no-batch-norm", action="store_true", help="no batch normalisation")
    hyper.add_argument("--encoder-dropout", type=float, default=defaults.encoder_dropout,
                       help="dropout rate in the encoder, in [0, 1) (default %(default)s)")
    hyper.add_argument("--decoder-dropout", type=float, default=defaults.decoder_dropout,
                       help="dropout rate in the decoder, in [0, 1) (default %(default)s)")
    hyper.add_argument("--patch-size", type=int, default=defaults.patch_size,
                       help=f"training box side (default {defaults.patch_size})")
    hyper.add_argument("--batch-size", type=positive_int, default=defaults.batch_size,
                       help="training boxes per optimiser step (default %(default)s)")
    hyper.add_argument("--epochs", type=positive_int, default=defaults.epochs,
                       help="training epochs (default %(default)s); the model of the best validation epoch is kept")
    hyper.add_argument("--iterations-per-epoch", type=positive_int, default=defaults.iterations_per_epoch,
                       help="optimiser steps per epoch (default %(default)s)")
    hyper.add_argument("--learning-rate", type=float, default=defaults.learning_rate,
                       help="Adam learning rate, > 0 (default %(default)s)")
    hyper.add_argument("--loss", default=defaults.loss, choices=LOSS_NAMES, help="training loss (default %(default)s)")
    hyper.add_argument("--positive-fraction", type=float, default=defaults.positive_fraction,
                       help="fraction of boxes centred near a label (default %(default)s)")
    hyper.add_argument("--val-fraction", type=float, default=defaults.val_fraction,
                       help="width fraction (high x) of each tomogram kept for validation; 0 = none")
    hyper.add_argument("--patience", type=int, default=0, help="early stop after N epochs without gain (0: off)")
    hyper.add_argument("--no-augment", action="store_true", help="no flips / rotations / intensity jitter")
    hyper.add_argument("--seed", type=int, default=0,
                       help="random seed of initialisation, box sampling and augmentation (default %(default)s)")
    add_device_options(hyper)
    hyper.add_argument("--resume", action="store_true", help="continue from OUT.last.pt if present")
    train_parser.set_defaults(handler=run_train3d)

    pick_parser = subparsers.add_parser(
        "pick", help="pick particles with a trained 3D model",
        description="Predict a class probability map, threshold it, cluster it and write cluster centroids "
                    "as a CSV (x, y, z 0-based voxels of the tomogram; score = mean probability; size = voxels).",
        epilog="example:\n  deepict pick --model ribo.pt --tomogram T.mrc --out picks.csv --context cytosol.mrc",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    pick_parser.add_argument("--model", required=True, help="3D model file (from train3d or import-model)")
    pick_parser.add_argument("--tomogram", required=True, help="tomogram (MRC) to pick particles in")
    pick_parser.add_argument("--out", required=True, help="picks CSV to write")
    pick_parser.add_argument("--min-distance", type=float,
                             help="merge picks closer than this (voxels; default: the training sphere radius)")
    _add_cluster_arguments(pick_parser, "cluster")
    _add_inference_arguments(pick_parser)
    pick_parser.set_defaults(handler=run_pick)

    segment_parser = subparsers.add_parser(
        "segment3d", help="segment structures (membranes, NPC, filaments) with a trained 3D model",
        description="Predict a class probability map and write the binary mask of its clusters (int8 MRC).",
        epilog="example:\n  deepict segment3d --model memb.pt --tomogram T.mrc --out membranes.mrc",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    segment_parser.add_argument("--model", required=True, help="3D model file (from train3d or import-model)")
    segment_parser.add_argument("--tomogram", required=True, help="tomogram (MRC) to segment")
    segment_parser.add_argument("--out", required=True, help="binary mask MRC to write")
    _add_cluster_arguments(segment_parser, "segment")
    _add_inference_arguments(segment_parser)
    segment_parser.set_defaults(handler=run_segment3d)

    import_parser = subparsers.add_parser(
        "import-model", help="convert a published DeePiCt 3D checkpoint into our model file",
        description="Read a DeePiCt .pth checkpoint safely (no pickled code runs) and write a self-describing\n"
                    "model file. The checkpoints do not record their voxel size: give it with --voxel-size\n"
                    "(the published networks: 13.48 Å).",
        epilog="example:\n  deepict import-model --checkpoint ribo.pth --voxel-size 13.48 --out ribo.pt",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    checkpoint = import_parser.add_mutually_exclusive_group(required=True)
    checkpoint.add_argument("--checkpoint", metavar="PTH", help="the published DeePiCt 3D checkpoint (.pth) to read")
    checkpoint.add_argument("checkpoint_path", nargs="?", metavar="PTH",
                            help="the same, given without --checkpoint (the older form)")
    import_parser.add_argument("--out", required=True, help="model file to write (e.g. ribo.pt)")
    import_parser.add_argument("--voxel-size", type=float, help="voxel size the network was trained at, in Å")
    import_parser.set_defaults(handler=run_import_model)


def _class_names(args, count: int) -> list:
    names = args.class_name or (["particle"] if count == 1 else [f"class{i + 1}" for i in range(count)])
    if len(names) != count:
        raise ParameterError(f"{count} label set(s) but {len(names)} --class-name value(s): give one name per class")
    return names


def load_training_tomograms(tomogram_paths, coords=None, masks=None, radii=None, voxel_size=None) -> list:
    from deepict.train.train3d import TrainingTomogram
    """Read tomograms and build their targets (spheres from ``coords`` or ``masks``); one list per class."""
    label_sets = coords or masks
    for files in label_sets:
        if len(files) != len(tomogram_paths):
            raise ParameterError(f"{len(tomogram_paths)} tomogram(s) ({', '.join(map(str, tomogram_paths))}) but "
                                 f"{len(files)} label file(s) for a class ({', '.join(map(str, files))}): "
                                 "give one label file per tomogram, in the same order")
    tomograms = []
    progress = Progress("reading the training tomograms and building their targets", len(tomogram_paths),
                        "tomograms")
    for index, path in enumerate(tomogram_paths):
        volume = read_volume(path)
        size = require_voxel_size(volume, voxel_size)
        data = np.asarray(volume.data)
        if coords:
            points = []
            for files in coords:
                table = read_coordinates(files[index])
                _check_coordinate_voxel_size(table.voxel_size, size, files[index], path)
                check_coordinates_in_volume(table.xyz, data.shape, files[index])
                points.append(table.xyz)
            targets = sphere_targets(data.shape, points, radii)
            label_points = np.concatenate([np.rint(p[:, ::-1]) for p in points]).astype(int) if points else None
        else:
            targets = mask_targets([files[index] for files in masks], data.shape, path, size)
            foreground = np.argwhere(targets.max(axis=0))
            rng = np.random.default_rng(index)
            label_points = foreground[rng.permutation(len(foreground))[:200000]]
        tomograms.append(TrainingTomogram(str(path), data, targets, label_points, size))
        progress.advance()
    return tomograms


def _check_coordinate_voxel_size(table_size, tomogram_size, csv_path, tomogram_path) -> None:
    """Coordinates picked at another sampling would label the wrong voxels even when inside the tomogram."""
    if table_size and tomogram_size and abs(table_size - tomogram_size) > 0.01 * tomogram_size:
        raise InputFileError(
            csv_path, f"holds coordinates at {table_size:g} Å/voxel but its tomogram {tomogram_path} has "
                      f"{tomogram_size:g} Å/voxel",
            f"Scale the coordinates by {table_size / tomogram_size:.4g} to the tomogram's voxels (and fix the "
            "'# voxel_size_angstrom' line), or give the tomogram they were picked on.")


def _sphere_radii(args, names: list) -> list:
    """One radius per class, in voxels."""
    if not args.radius or len(args.radius) not in (1, len(names)):
        raise ParameterError("give --radius once (for all classes) or once per class")
    radii = args.radius * len(names) if len(args.radius) == 1 else args.radius
    if not args.radius_in_angstrom:
        return radii
    voxel_size = args.voxel_size or read_volume(args.tomograms[0], check_finite=False).voxel_size
    if not voxel_size:
        raise ParameterError("radii in Å need the voxel size: give --voxel-size")
    return [r / voxel_size for r in radii]


def _spectrum_reference(args):
    """(reference spectrum, ModelInfo.spectrum) from --spectrum-reference, or (None, None)."""
    if not args.spectrum_reference:
        if args.spectrum_lowpass_angstrom is not None:
            raise ParameterError("--spectrum-lowpass-angstrom needs --spectrum-reference")
        return None, None
    lowpass = args.spectrum_lowpass_angstrom
    if lowpass is not None and not lowpass > 0:
        raise ParameterError(f"--spectrum-lowpass-angstrom must be a positive resolution in Å, got {lowpass:g}")
    if not 0 < args.spectrum_lowpass_width <= 1:
        raise ParameterError(f"--spectrum-lowpass-width must lie in (0, 1], got {args.spectrum_lowpass_width:g}")
    from deepict.infer.picking import spectrum_record
    reference = load_reference(args.spectrum_reference, workers=default_workers(), log=None)
    return reference, spectrum_record(reference, lowpass, args.spectrum_lowpass_width,
                                      source=str(args.spectrum_reference))


def check_equalized(tomograms, reference, lowpass_angstrom=None, log=print) -> list:
    """Names of training tomograms whose spectrum shape does not follow the reference (a warning each).

    Compared below the low-pass (and below Nyquist), after removing the overall scale: a tomogram
    equalized to the reference deviates by a few %, an unequalized one by tens of %.
    """
    suspicious = []
    for tomo in tomograms:
        size = tomo.voxel_size or reference.voxel_size
        if not size:
            continue
        spectrum = radial_spectrum(tomo.data, size, workers=default_workers())
        top = 0.5 / size
        if lowpass_angstrom:
            top = min(top, 0.8 / lowpass_angstrom)
        top = min(top, reference.max_frequency)
        inside = (spectrum.frequency >= max(reference.frequency[0], 4 * spectrum.frequency[0])) & \
                 (spectrum.frequency <= top)
        if inside.sum() < 3:
            continue
        ratio = spectrum.amplitude[inside] / np.maximum(reference.at(spectrum.frequency[inside]), 1e-30)
        deviation = float(np.median(np.abs(ratio / np.median(ratio) - 1)))
        if deviation > EQUALIZED_TOLERANCE:
            suspicious.append(tomo.name)
            log(f"warning: the spectrum of {tomo.name} deviates from the reference by {100 * deviation:.0f} % "
                "(median): it does not look equalized to --spectrum-reference. Train on tomograms equalized "
                "with 'deepict equalize' to that reference, or the stored spectrum will misguide inference.")
    return suspicious


def run_train3d(args) -> int:
    names = _class_names(args, len(args.coords or args.masks))
    radii = _sphere_radii(args, names) if args.coords else []
    config = TrainConfig(
        classes=names, depth=args.depth, initial_features=args.initial_features, batch_norm=not args.no_batch_norm,
        encoder_dropout=args.encoder_dropout, decoder_dropout=args.decoder_dropout, patch_size=args.patch_size,
        batch_size=args.batch_size, epochs=args.epochs, iterations_per_epoch=args.iterations_per_epoch,
        learning_rate=args.learning_rate, loss=args.loss, positive_fraction=args.positive_fraction,
        val_fraction=args.val_fraction, patience=args.patience, augment=not args.no_augment, seed=args.seed,
        device=args.device, label_kind="spheres" if args.coords else "masks",
        sphere_radius=dict(zip(names, radii)) if args.coords else {})
    config.validate()
    with claimed_outputs(("--out", args.out)):
        info = _train3d(args, config, radii)
    best = max((h["val_dice"] or 0 for h in info.history), default=0)
    print(json.dumps({"model": args.out, "classes": info.classes, "epochs": len(info.history),
                      "best_val_dice": best, "voxel_size": info.voxel_size, "has_spectrum": info.spectrum is not None}))
    return 0


def _train3d(args, config: TrainConfig, radii: list):
    from deepict.train.train3d import train
    reference, spectrum = _spectrum_reference(args)
    tomograms = load_training_tomograms(args.tomograms, coords=args.coords, masks=args.masks, radii=radii,
                                        voxel_size=args.voxel_size)
    if reference is not None:
        check_equalized(tomograms, reference, args.spectrum_lowpass_angstrom)
    apply_threads(args)
    return train(tomograms, config, args.out, resume=args.resume, spectrum=spectrum)


def _inference_options(args):
    from deepict.infer.picking import InferenceOptions
    return InferenceOptions(window=args.window, margin=args.margin, batch_size=args.batch_size, device=args.device,
                            voxel_size=args.voxel_size, ignore_voxel_size=args.ignore_voxel_size,
                            equalize=args.equalize)


def _cluster_parameters(args):
    """The post-processing parameters, checked before any inference (the engine checks them only afterwards)."""
    from deepict.nn.model_files import read_model_info
    from deepict.infer.picking import resolve_cluster_parameters
    if args.class_name is not None and not args.class_name.strip():
        raise ParameterError("--class-name is empty: give one of the model's classes (deepict model-info lists them)")
    min_distance = getattr(args, "min_distance", None)  # pick only
    if min_distance is not None and not min_distance >= 0:
        raise ParameterError(f"--min-distance must be 0 or more voxels, got {min_distance:g}")
    parameters = resolve_cluster_parameters(
        read_model_info(args.model), threshold=args.threshold, min_size=args.min_size, max_size=args.max_size,
        connectivity=args.connectivity, border=args.border if len(args.border) == 3 else args.border[0],
        context_mode=args.context_mode, context_distance=args.context_distance)
    parameters.validate()
    return parameters


def run_pick(args) -> int:
    from deepict.infer.picking import pick_particles
    parameters = _cluster_parameters(args)
    with claimed_outputs(("--out", args.out), ("--probability-map", args.probability_map)):
        apply_threads(args)
        pick_particles(args.model, args.tomogram, args.out, parameters, class_name=args.class_name,
                       context_path=args.context, min_distance=args.min_distance,
                       probability_map=args.probability_map, options=_inference_options(args))
    return 0


def run_segment3d(args) -> int:
    from deepict.infer.picking import segment_structures
    parameters = _cluster_parameters(args)
    with claimed_outputs(("--out", args.out), ("--probability-map", args.probability_map)):
        apply_threads(args)
        segment_structures(args.model, args.tomogram, args.out, parameters, class_name=args.class_name,
                           context_path=args.context, probability_map=args.probability_map,
                           options=_inference_options(args))
    return 0


def run_import_model(args) -> int:
    from deepict.nn.model_files import import_published_checkpoint, save_model
    with claimed_outputs(("--out", args.out)):
        network, info = import_published_checkpoint(args.checkpoint or args.checkpoint_path, args.voxel_size)
        save_model(args.out, network, info)
    print(json.dumps({"model": args.out, "classes": info.classes, "architecture": info.architecture,
                      "voxel_size": info.voxel_size, "source": info.source}))
    return 0

