"""``deepict train2d`` and ``deepict segment2d``: compartment (cytosol, organelle) segmentation with the 2D U-Net."""

from __future__ import annotations

import argparse

from deepict.infer.compartments import DEFAULT_BATCH_SIZE
from deepict.errors import ParameterError
from deepict.io.outputs import claimed_outputs
from deepict.train.config import LOSS_NAMES, Train2DConfig
from deepict.cli.options import add_device_options, apply_threads, positive_int

# torch and the modules that import it are imported inside the handlers, so that building the
# parser (every ``deepict`` call) does not pay for torch.

_DEFAULTS = Train2DConfig()


def _device(args):
    from deepict.nn.devices import select_device

    device = select_device(args.device)
    apply_threads(args)
    return device


def register(subparsers) -> None:
    train = subparsers.add_parser(
        "train2d", formatter_class=argparse.RawDescriptionHelpFormatter,
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
                    "improvement (counted after the first half of the epochs). On three 256x256x128 tomograms at "
                    "13.5 Å/voxel the defaults take up to about 15 minutes on two CPU cores: cytosol is learned "
                    "within 20 epochs (AUPRC 0.98), organelles need about 100 (AUPRC 0.95).",
        epilog="example:\n  deepict train2d --tomograms A.mrc B.mrc C.mrc --masks A_cytosol.mrc B_cytosol.mrc "
               "C_cytosol.mrc.gz --class-name cytosol --out cytosol2d.pt\n"
               "  deepict train2d --tomograms A.mrc --masks A_labels.mrc --remap '2,3,5:1' --class-name organelles "
               "--out organelles2d.pt")
    train.add_argument("--tomograms", nargs="+", required=True, metavar="MRC",
                       help="training tomograms (MRC), all at the same voxel size")
    train.add_argument("--masks", nargs="+", required=True, metavar="MRC",
                       help="one mask per tomogram, same order, same size and voxel size (MRC or .mrc.gz): 1 = the "
                            "compartment, 0 = elsewhere; or label maps together with --remap")
    train.add_argument("--out", required=True, metavar="MODEL",
                       help="model file to write (e.g. cytosol2d.pt); the resumable state goes to MODEL.last.pt")
    train.add_argument("--class-name", default=_DEFAULTS.class_name,
                       help="name of the compartment, stored in the model (default: %(default)s)")
    train.add_argument("--remap", default=None, metavar="MAPPING",
                       help="turn label maps into 0/1 masks: '.:1' = every non-zero label -> 1; '2,3,5:1' = labels "
                            "2, 3 and 5 -> 1, all others 0; '1:0,12:0,.:1' = labels 1 and 12 -> 0, every other "
                            "non-zero label -> 1 (default: the masks are already 0/1)")
    train.add_argument("--val-tomograms", nargs="+", default=[], metavar="MRC",
                       help="which of --tomograms to hold out for validation (path or file name) "
                            "(default: the last one when several are given, else a held-out z range)")
    train.add_argument("--epochs", type=positive_int, default=_DEFAULTS.epochs,
                       help="maximum number of epochs (default: %(default)s)")
    train.add_argument("--tiles-per-epoch", type=positive_int, default=_DEFAULTS.tiles_per_epoch,
                       help="random training tiles per epoch (default: %(default)s)")
    train.add_argument("--patience", type=int, default=_DEFAULTS.patience,
                       help="stop after this many epochs without a better validation Dice; 0 = never "
                            "(default: %(default)s)")
    train.add_argument("--warmup-epochs", type=int, default=None,
                       help="no early stopping and no learning-rate cut before this epoch (default: half of --epochs)")
    train.add_argument("--tile-size", type=positive_int, default=_DEFAULTS.tile_size,
                       help="training tile edge in pixels, a multiple of 16 (DeePiCt: 288; default: %(default)s, "
                            "7x cheaper per tile, so many more training steps fit in a CPU budget; prediction "
                            "uses larger tiles)")
    train.add_argument("--z-stride", type=positive_int, default=_DEFAULTS.z_stride,
                       help="use every n-th slice for training (default: %(default)s)")
    train.add_argument("--batch-size", type=positive_int, default=_DEFAULTS.batch_size,
                       help="tiles per optimisation step (default: %(default)s)")
    train.add_argument("--learning-rate", type=float, default=_DEFAULTS.learning_rate,
                       help="Adam learning rate (DeePiCt: 1e-4 for 50-100 GPU epochs; default: %(default)g)")
    train.add_argument("--lr-patience", type=int, default=_DEFAULTS.lr_patience,
                       help="halve the learning rate after this many epochs without a better validation Dice "
                            "(down to 1/32 of it); 0 = constant (default: %(default)s)")
    train.add_argument("--loss", default=_DEFAULTS.loss, choices=LOSS_NAMES,
                       help="training loss on the logits: bce_dice (binary cross-entropy + Dice, learns fastest), dice "
                            "(DeePiCt's) or generalized_dice (default: %(default)s)")
    train.add_argument("--depth", type=positive_int, default=_DEFAULTS.depth,
                       help="U-Net resolution levels (DeePiCt: 5; default: %(default)s)")
    train.add_argument("--initial-features", type=positive_int, default=_DEFAULTS.initial_features,
                       help="filters of the first level, doubled per level (DeePiCt: 16; default: %(default)s)")
    train.add_argument("--init", default=_DEFAULTS.init, choices=["kaiming", "torch"],
                       help="weight initialisation: kaiming (He; trains much faster without batch norm) or torch's "
                            "default (default: %(default)s)")
    train.add_argument("--crop", type=int, default=_DEFAULTS.crop,
                       help="rim (px) discarded from every tile at prediction, stored in the model "
                            "(default: %(default)s)")
    train.add_argument("--threshold", type=float, default=None,
                       help="mask threshold stored in the model as segment2d's default (DeePiCt: 0.75; default: the "
                            "threshold in 0.05..0.95 that maximises the validation Dice after z smoothing)")
    train.add_argument("--sigma", type=float, default=_DEFAULTS.sigma,
                       help="default z smoothing (Gaussian sigma in slices) stored in the model (default: %(default)s)")
    train.add_argument("--seed", type=int, default=_DEFAULTS.seed,
                       help="random seed: same seed, data and settings give the same tiles (default: %(default)s)")
    train.add_argument("--no-augment", action="store_true",
                       help="do not flip and rotate the training tiles")
    train.add_argument("--resume", action="store_true",
                       help="continue the interrupted training of OUT from OUT.last.pt (its settings are kept; "
                            "--epochs and --patience may be raised); starts afresh if there is no such file")
    add_device_options(train)
    train.set_defaults(handler=run_train2d)

    segment = subparsers.add_parser(
        "segment2d", formatter_class=argparse.RawDescriptionHelpFormatter,
        help="segment a compartment (cytosol, organelles) in a tomogram with a trained 2D U-Net",
        description="Segment a tomogram with a model from 'deepict train2d'. The tomogram is z-scored as a whole; "
                    "every slice (or --z-range) is cut into overlapping tiles whose rims (--crop, from the model) "
                    "are discarded and whose cores are averaged, so every voxel is covered without seams for any "
                    "slice size. The probabilities are smoothed along z with a 1D Gaussian (--sigma slices) and "
                    "thresholded into a 0/1 mask (int8 MRC, with the tomogram's voxel size). Big tomograms are "
                    "streamed slab by slab; outputs appear only once complete.\n\n"
                    "The tomogram must have the voxel size the model was trained at (within 5%); bin or rescale it "
                    "first, or pass --ignore-voxel-size if the header is wrong.",
        epilog="example:\n  deepict segment2d --model cytosol2d.pt --tomogram T.mrc --out T_cytosol.mrc "
               "--probability-map T_cytosol_prob.mrc")
    segment.add_argument("--model", required=True, help="2D model file from 'deepict train2d'")
    segment.add_argument("--tomogram", required=True, help="tomogram to segment (MRC)")
    segment.add_argument("--out", required=True, metavar="MRC", help="binary mask to write (int8 MRC, 1 = compartment)")
    segment.add_argument("--probability-map", default=None, metavar="MRC",
                         help="also write the unsmoothed per-voxel probabilities (float32 MRC)")
    segment.add_argument("--threshold", type=float, default=None,
                         help="probability threshold after smoothing, in [0, 1) (default: the model's, calibrated "
                              "on its validation data at training; DeePiCt used 0.75)")
    segment.add_argument("--sigma", type=float, default=None,
                         help="Gaussian smoothing along z in slices; 0 = none (default: the model's, usually 5)")
    segment.add_argument("--batch-size", type=positive_int, default=DEFAULT_BATCH_SIZE,
                         help="tiles per network call; larger is faster on a GPU but needs more memory "
                              "(default: %(default)s)")
    segment.add_argument("--z-range", nargs=2, type=int, default=None, metavar=("FIRST", "END"),
                         help="only segment slices FIRST..END-1 (0-based); the others are 0 (default: all slices)")
    segment.add_argument("--tile-size", type=positive_int, default=None,
                         help="prediction tile edge, a multiple of 16 (default: chosen from the model's training tile "
                              "up to 512 px to need the least computation)")
    segment.add_argument("--crop", type=int, default=None,
                         help="rim discarded from every tile, px (default: the model's, usually 48)")
    segment.add_argument("--ignore-voxel-size", action="store_true",
                         help="segment even if the tomogram's voxel size differs from the model's by more than 5%%")
    add_device_options(segment)
    segment.set_defaults(handler=run_segment2d)


def run_train2d(args) -> int:
    from deepict.train.train2d import train_2d
    from deepict.train.state import state_path

    config = Train2DConfig(
        class_name=args.class_name, remap=args.remap, epochs=args.epochs, tiles_per_epoch=args.tiles_per_epoch,
        patience=args.patience, warmup_epochs=args.warmup_epochs, tile_size=args.tile_size, z_stride=args.z_stride,
        batch_size=args.batch_size, learning_rate=args.learning_rate, lr_patience=args.lr_patience, loss=args.loss,
        depth=args.depth, initial_features=args.initial_features, crop=args.crop, threshold=args.threshold,
        sigma=args.sigma, seed=args.seed, device=args.device,
        val_tomograms=list(args.val_tomograms), augment=not args.no_augment, init=args.init)
    config.validate()
    with claimed_outputs(("--out", args.out)):
        summary = train_2d(args.tomograms, args.masks, args.out, config, resume=args.resume,
                           log=lambda text: print(text, flush=True), device=_device(args))
    print(f"model: {summary['model']}  (resumable state: {state_path(args.out)})", flush=True)
    return 0


def run_segment2d(args) -> int:
    from deepict.infer.slices2d import segment_tomogram

    if args.threshold is not None and not 0 <= args.threshold < 1:
        raise ParameterError(f"--threshold must lie in [0, 1), not {args.threshold:g}")
    if args.sigma is not None and not args.sigma >= 0:
        raise ParameterError(f"--sigma must be 0 or more, not {args.sigma:g}")
    with claimed_outputs(("--out", args.out), ("--probability-map", args.probability_map)):
        device = _device(args)
        segment_tomogram(args.model, args.tomogram, args.out, probability_map=args.probability_map,
                         threshold=args.threshold, sigma=args.sigma, batch_size=args.batch_size, device=device,
                         z_range=tuple(args.z_range) if args.z_range else None, tile_size=args.tile_size,
                         crop=args.crop, ignore_voxel_size=args.ignore_voxel_size,
                         log=lambda text: print(text, flush=True))
    return 0
