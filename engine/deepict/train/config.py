"""Hyper-parameters of 3D and 2D training (no torch import: the command line reads its defaults from here)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from deepict.conventions import DEFAULT_CLASS_NAMES_TEXT, LOSS_NAMES, MAX_RESCALE_FACTOR, class_name_problem
from deepict.infer.compartments import DEFAULT_CROP, DEFAULT_SIGMA
from deepict.infer.masks import parse_remap
from deepict.infer.tiling import check_tile_geometry
from deepict.errors import ParameterError
from deepict.parameters import device_parameter, parameter


#: Weight initialisations of the 2D U-Net: He (Kaiming) normal, or torch's default.
INITIALISATIONS = ("kaiming", "torch")


#: Settings a resumed training (``--resume``) may change: how long it runs, on what, and which weights it keeps at
#: the end. Here, without torch, so that the Scipion plugin decides as the engine does whether Continue resumes.
RESUMABLE_CHANGES = ("epochs", "patience", "device", "weight_averaging")


def check_class_names(names) -> None:
    """Class names are stored in the model and name its outputs: each must be a valid name
    (:func:`deepict.conventions.class_name_problem`), and unique."""
    for name in names:
        problem = class_name_problem(name)
        if problem:
            raise ParameterError(problem)
    if len(set(names)) != len(names):
        raise ParameterError(f"class names must be unique, got {list(names)}")


def check_learning_rate(value) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ParameterError(f"the learning rate must be a number > 0 (e.g. 1e-3), got {value:g}")


#: Epochs of a 3D training when --epochs is not given ...
DEFAULT_EPOCHS = 40
#: ... and when a class is a rare particle: FAS (about 25 per tomogram) picked better after 80 epochs on the
#: development data, ribosomes (about 120) did not (README, *Measured*).
RARE_PARTICLE_EPOCHS = 80
#: A class with fewer annotated particles than this per training tomogram (on average) is a rare particle.
RARE_PARTICLES_PER_TOMOGRAM = 50


def default_epochs(particles_per_tomogram: dict) -> tuple[int, str]:
    """The epochs of a training whose --epochs was not given, and why: ``particles_per_tomogram`` maps each
    class to its mean number of annotated particles per training tomogram (empty for mask trainings)."""
    rare = {name: count for name, count in particles_per_tomogram.items() if count < RARE_PARTICLES_PER_TOMOGRAM}
    if not rare:
        return DEFAULT_EPOCHS, "as the default"
    counts = ", ".join(f"{name} {count:.3g}" for name, count in rare.items())
    return RARE_PARTICLE_EPOCHS, (f"for a rare particle: fewer than {RARE_PARTICLES_PER_TOMOGRAM} annotated per "
                                  f"training tomogram ({counts}), which trains better for longer")


def check_training_voxel_size(value) -> None:
    """The voxel size a training rescales its tomograms to: None (the first tomogram's) or a positive number."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise ParameterError(f"--training-voxel-size must be a positive number of Å, got {value:g}")


def _check_at_least(config, names, minimum: int) -> None:
    for name in names:
        if getattr(config, name) < minimum:
            raise ParameterError(f"{name.replace('_', ' ')} must be at least {minimum}, got {getattr(config, name)}")


@dataclass
class TrainConfig:
    """Hyper-parameters of 3D training; the default network is the published DeePiCt FAS network's (depth 2,
    16 features), which picked best on the development data (README, *Main parameters*)."""

    classes: list = parameter(factory=list, help="name of each class: letters, digits, '_', '-' and '.' (default: "
                                                 f"{DEFAULT_CLASS_NAMES_TEXT})")
    depth: int = parameter(2, help="pooling levels (default %(default)s, as the published networks)")
    initial_features: int = parameter(16, help="channels at full resolution (default %(default)s)")
    batch_norm: bool = parameter(True, help="batch normalisation (default: on)")
    encoder_dropout: float = parameter(0.0, help="dropout rate in the encoder, in [0, 1) (default %(default)s)")
    decoder_dropout: float = parameter(0.0, help="dropout rate in the decoder, in [0, 1) (default %(default)s)")
    patch_size: int = parameter(48, help="training box side (default %(default)s)")
    batch_size: int = parameter(4, help="training boxes per optimiser step (default %(default)s)")
    epochs: int | None = parameter(None, help=f"training epochs (default: {DEFAULT_EPOCHS}, or "
                                              f"{RARE_PARTICLE_EPOCHS} for a rare particle, one with fewer than "
                                              f"{RARE_PARTICLES_PER_TOMOGRAM} annotated per training tomogram, like "
                                              "FAS); the model is the mean of the second half's weights, or with "
                                              "--no-weight-averaging the best validation epoch")
    iterations_per_epoch: int = parameter(25, help="optimiser steps per epoch (default %(default)s)")
    learning_rate: float = parameter(1e-3, help="Adam learning rate, > 0 (default %(default)s)")
    loss: str = parameter("bce_dice", choices=LOSS_NAMES, help="training loss (default %(default)s)")
    positive_fraction: float = parameter(0.7, help="fraction of boxes centred near a label (default %(default)s)")
    val_fraction: float = parameter(0.2, help="width fraction (high x) of each tomogram kept for validation; "
                                              "0 = none (default %(default)s)")
    patience: int = parameter(0, help="early stop after N epochs without gain (0: off)")
    augment: bool = parameter(True, help="flips / rotations / intensity jitter of the training boxes (default: on)")
    coarser_sampling: float = parameter(2.0, help="with augmentation, half of the boxes are low-passed as if "
                                                  "acquired at up to this many times the voxel size, so tomograms "
                                                  "coarser than the model, rescaled to it, are still picked well; "
                                                  f"1 = off, at most {MAX_RESCALE_FACTOR:g} (default %(default)s)")
    seed: int = parameter(0, help="random seed of initialisation, box sampling and augmentation "
                                  "(default %(default)s)")
    weight_averaging: bool = parameter(True, help="the model is the mean of the weights over the second half of the "
                                                  "epochs, which varies less from training to training than the "
                                                  "best validation epoch (default: on)")
    hard_negatives: bool = parameter(True, help="particle trainings: after a quarter, half and three quarters of the "
                                                "epochs the network predicts its training tomograms, and half of the "
                                                "background boxes are then centred where it sees the particle "
                                                "without a label (default: on)")
    device: str = device_parameter()
    label_kind: str = parameter("spheres", derived=True, help="spheres (from coordinates) or masks")
    sphere_radius: dict = parameter(factory=dict, derived=True, help="sphere radius of each class in voxels")

    def validate(self) -> None:
        if self.patch_size % 2 ** self.depth:
            raise ParameterError(f"the patch size ({self.patch_size}) must be divisible by 2^depth = {2 ** self.depth}")
        if not 0 <= self.val_fraction < 0.5:
            raise ParameterError("the validation fraction must be in [0, 0.5)")
        if not 0 <= self.positive_fraction <= 1:
            raise ParameterError("the positive fraction must be in [0, 1]")
        _check_at_least(self, ("iterations_per_epoch", "batch_size", "depth", "initial_features",
                               "patch_size"), 1)
        _check_at_least(self, ("patience",), 0)
        if self.epochs is not None:
            _check_at_least(self, ("epochs",), 1)
        if not 1 <= self.coarser_sampling <= MAX_RESCALE_FACTOR:
            raise ParameterError(f"the coarser-sampling factor must be in [1, {MAX_RESCALE_FACTOR:g}] (1 = off), "
                                 f"got {self.coarser_sampling:g}")
        for name in ("encoder_dropout", "decoder_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise ParameterError(f"the {name.replace('_', ' ')} must be in [0, 1), got {getattr(self, name)}")
        check_learning_rate(self.learning_rate)
        if self.loss not in LOSS_NAMES:
            raise ParameterError(f"unknown loss '{self.loss}': choose one of {', '.join(LOSS_NAMES)}")
        check_class_names(self.classes)
        for name, radius in self.sphere_radius.items():
            if not (math.isfinite(radius) and radius > 0):
                raise ParameterError(f"the sphere radius of {name} must be a number > 0, got {radius:g}")


@dataclass
class Train2DConfig:
    """Parameters of 2D training (plain data; stored in the model file and the checkpoint).

    The defaults suit a short CPU training on a few tomograms: small tiles cost far less per step than
    DeePiCt's, so many more steps fit, and prediction uses larger tiles anyway
    (:func:`deepict.infer.tiling.auto_tile_size`); binary cross-entropy + Dice learns faster and more
    stably than pure Dice (DeePiCt's loss), which can collapse to an empty prediction. Organelles need
    long training; compact compartments such as the cytosol stop early (early stopping is counted after
    the warm-up, by default the first half of the epochs).
    """

    class_name: str = parameter("compartment", help="name of the compartment, stored in the model: letters, "
                                                     "digits, '_', '-' and '.' (default: %(default)s)")
    remap: str | None = parameter(None, help="turn label maps into 0/1 masks: '.:1' = every non-zero label -> 1; "
                                             "'2,3,5:1' = labels 2, 3 and 5 -> 1, all others 0; '1:0,12:0,.:1' = "
                                             "labels 1 and 12 -> 0, every other non-zero label -> 1 (default: the "
                                             "masks are already 0/1)")
    epochs: int = parameter(100, help="maximum number of epochs (default: %(default)s)")
    tiles_per_epoch: int = parameter(128, help="random training tiles per epoch (default: %(default)s)")
    patience: int = parameter(15, help="stop after this many epochs without a better validation Dice; 0 = never "
                                       "(default: %(default)s)")
    warmup_epochs: int | None = parameter(None, help="no early stopping and no learning-rate cut before this epoch "
                                                     "(default: half of the epochs)")
    tile_size: int = parameter(128, help="training tile edge in pixels, a multiple of 16 (DeePiCt: 288; default: "
                                         "%(default)s, much cheaper per tile, so many more training steps fit in a "
                                         "CPU budget; prediction uses larger tiles)")
    z_stride: int = parameter(5, help="use every n-th slice for training (default: %(default)s)")
    batch_size: int = parameter(8, help="tiles per optimisation step (default: %(default)s)")
    learning_rate: float = parameter(1e-3, help="Adam learning rate (DeePiCt: 1e-4 for 50-100 GPU epochs; "
                                                "default: %(default)g)")
    lr_patience: int = parameter(2, help="halve the learning rate after this many epochs without a better "
                                         "validation Dice (down to 1/32 of it); 0 = constant (default: %(default)s)")
    loss: str = parameter("bce_dice", choices=LOSS_NAMES,
                          help="training loss on the logits: bce_dice (binary cross-entropy + Dice, learns fastest), "
                               "dice (DeePiCt's) or generalized_dice (default: %(default)s)")
    depth: int = parameter(5, help="U-Net resolution levels (DeePiCt: 5; default: %(default)s)")
    initial_features: int = parameter(16, help="filters of the first level, doubled per level (DeePiCt: 16; "
                                               "default: %(default)s)")
    crop: int = parameter(DEFAULT_CROP, help="rim (px) discarded from every tile at prediction, stored in the model "
                                             "(default: %(default)s)")
    threshold: float | None = parameter(None, help="mask threshold stored in the model as segment2d's default "
                                                   "(DeePiCt: 0.75; default: the threshold in 0.05..0.95 that "
                                                   "maximises the validation Dice after z smoothing)")
    sigma: float = parameter(DEFAULT_SIGMA, help="default z smoothing (Gaussian sigma in slices) stored in the model "
                                                 "(default: %(default)s)")
    seed: int = parameter(0, help="random seed: same seed, data and settings give the same tiles "
                                  "(default: %(default)s)")
    device: str = device_parameter()
    val_tomograms: list = parameter(factory=list, help="which of the training tomograms to hold out for validation "
                                                       "(path or file name) (default: the last one when several are "
                                                       "given, else a held-out z range)")
    val_slices: int = parameter(16, help="at most this many validation slices per validation tomogram "
                                         "(default: %(default)s)")
    augment: bool = parameter(True, help="flip and rotate the training tiles (default: on)")
    init: str = parameter("kaiming", choices=INITIALISATIONS,
                          help="weight initialisation: kaiming (He; trains much faster without batch norm) or "
                               "torch's default (default: %(default)s)")

    def validate(self) -> None:
        """The rules the command line and the Scipion form check before any work."""
        check_class_names([self.class_name])
        check_learning_rate(self.learning_rate)
        _check_at_least(self, ("epochs", "tiles_per_epoch", "tile_size", "z_stride", "batch_size", "depth",
                               "initial_features", "val_slices"), 1)
        _check_at_least(self, ("patience", "lr_patience", "crop"), 0)
        if self.warmup_epochs is not None and self.warmup_epochs < 0:
            raise ParameterError(f"warmup epochs must be at least 0, got {self.warmup_epochs}")
        if self.loss not in LOSS_NAMES:
            raise ParameterError(f"unknown loss '{self.loss}': choose one of {', '.join(LOSS_NAMES)}")
        if self.threshold is not None and not 0 <= self.threshold < 1:
            raise ParameterError(f"the threshold must lie in [0, 1), not {self.threshold}")
        if not self.sigma >= 0:
            raise ParameterError(f"the z smoothing sigma must be >= 0, not {self.sigma}")
        check_tile_geometry(self.tile_size, None, self.depth)
        if not 0 <= self.crop < 256:
            raise ParameterError(f"the prediction rim must lie in [0, 256) px, not {self.crop}")
        parse_remap(self.remap)
        if self.init not in INITIALISATIONS:
            raise ParameterError(f"unknown initialisation {self.init!r}: use {' or '.join(INITIALISATIONS)}")
