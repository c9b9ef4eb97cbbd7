"""Hyper-parameters of 3D training (no torch import: the command line reads its defaults from here)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import ParameterError

#: Names of the training losses (implemented in :mod:`.losses`).
LOSS_NAMES = ("dice", "generalized_dice", "bce_dice")


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
        for name in ("epochs", "iterations_per_epoch", "batch_size", "depth", "initial_features"):
            if getattr(self, name) < 1:
                raise ParameterError(f"{name.replace('_', ' ')} must be at least 1")
        if self.loss not in LOSS_NAMES:
            raise ParameterError(f"unknown loss '{self.loss}': choose one of {', '.join(LOSS_NAMES)}")
