"""Hyper-parameters of 3D and 2D training (no torch import: the command line reads its defaults from here)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from deepict.infer.compartments import DEFAULT_CROP, DEFAULT_SIGMA
from deepict.errors import ParameterError

#: Names of the training losses (implemented in :mod:`.losses`).
LOSS_NAMES = ("dice", "generalized_dice", "bce_dice")


def check_class_names(names) -> None:
    """Class names are stored in the model and name its outputs: each must be non-blank and unique."""
    for name in names:
        if not str(name).strip():
            raise ParameterError("a class name is empty: give each class a name (e.g. --class-name ribosome)")
    if len(set(names)) != len(names):
        raise ParameterError(f"class names must be unique, got {list(names)}")


def check_learning_rate(value) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ParameterError(f"the learning rate must be a number > 0 (e.g. 1e-3), got {value:g}")


def _check_at_least(config, names, minimum: int) -> None:
    for name in names:
        if getattr(config, name) < minimum:
            raise ParameterError(f"{name.replace('_', ' ')} must be at least {minimum}, got {getattr(config, name)}")


@dataclass
class TrainConfig:
    """Hyper-parameters of 3D training (defaults chosen for CPU-friendly particle picking)."""

    classes: list
    depth: int = 3
    initial_features: int = 8
    batch_norm: bool = True
    encoder_dropout: float = 0.0
    decoder_dropout: float = 0.1
    patch_size: int = 48
    batch_size: int = 4
    epochs: int = 40
    iterations_per_epoch: int = 25
    learning_rate: float = 1e-3
    loss: str = "bce_dice"
    positive_fraction: float = 0.7
    val_fraction: float = 0.2
    patience: int = 0
    augment: bool = True
    seed: int = 0
    device: str = "auto"
    label_kind: str = "spheres"
    sphere_radius: dict = field(default_factory=dict)

    def validate(self) -> None:
        if self.patch_size % 2 ** self.depth:
            raise ParameterError(f"the patch size ({self.patch_size}) must be divisible by 2^depth = {2 ** self.depth}")
        if not 0 <= self.val_fraction < 0.5:
            raise ParameterError("the validation fraction must be in [0, 0.5)")
        if not 0 <= self.positive_fraction <= 1:
            raise ParameterError("the positive fraction must be in [0, 1]")
        _check_at_least(self, ("epochs", "iterations_per_epoch", "batch_size", "depth", "initial_features",
                               "patch_size"), 1)
        _check_at_least(self, ("patience",), 0)
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
    """Training parameters (plain data; stored in the model file and the checkpoint).

    The defaults are chosen for a few minutes of CPU on a few 256x256x128 tomograms at 13.5 Å
    (320 optimiser steps of 8 tiles): 128 px tiles cost 2.4x less per step than 192 px and 7.5x
    less than DeePiCt's 288 px tiles (depth-5, 16-filter U-Net), so far more steps fit in the
    budget; prediction uses larger tiles anyway (:func:`.compartments.auto_tile_size`). Measured
    on the simulated VPP tomograms after 240 steps, binary cross-entropy + Dice at a learning rate
    of 1e-3 learned fastest (validation AUPRC cytosol 0.90, organelles 0.43) and stably; pure Dice
    (DeePiCt's loss) reached 0.86 / about 0.4 at 3e-4 and sometimes collapsed to an empty
    prediction at 1e-3; 192 px tiles (batch 4, same cost) learned organelles far slower (0.11).
    Organelles need long training: with 20 epochs (and early stopping) their AUPRC on vpp_003 was
    0.19, with 100 epochs 0.95 (validation Dice still creeping up at epoch 97; 17 CPU minutes on
    three tomograms). 256 px tiles learned no faster per CPU second. Cytosol reached AUPRC 0.98
    within 20 epochs; early stopping (counted after the first half of the epochs) ends such runs.
    """

    class_name: str = "compartment"
    remap: str | None = None            #: label remapping (see :func:`.compartments.parse_remap`)
    epochs: int = 100                   #: organelles need them (see above); compact compartments stop early
    tiles_per_epoch: int = 128
    patience: int = 15                  #: epochs without validation improvement before stopping (0 = never)
    warmup_epochs: int | None = None    #: no early stop or learning-rate cut before; None = half of ``epochs``
    tile_size: int = 128                #: DeePiCt: 288; see the note above on the CPU budget
    z_stride: int = 5
    batch_size: int = 8
    learning_rate: float = 1e-3         #: DeePiCt: 1e-4 (for 50-100 epochs on a GPU)
    lr_patience: int = 2                #: halve the learning rate after this many stalled epochs (0 = never)
    loss: str = "bce_dice"              #: DeePiCt: dice
    depth: int = 5
    initial_features: int = 16
    crop: int = DEFAULT_CROP            #: rim discarded from every tile at prediction
    threshold: float | None = None      #: mask threshold stored in the model; None = calibrated on validation
    sigma: float = DEFAULT_SIGMA
    seed: int = 0
    device: str = "auto"
    val_tomograms: list = field(default_factory=list)
    val_slices: int = 16                #: at most this many validation slices per validation tomogram
    augment: bool = True
    init: str = "kaiming"               #: weight initialisation: kaiming (He, for ReLU) or torch (torch's default)

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
