"""Segmentation losses on logits, for independent (multi-label) sigmoid classes.

All losses take logits of shape (N, C, ...) and binary targets of the same shape, and an
optional ``weight`` tensor (same shape, 0 or 1) that masks out voxels that carry no label
(e.g. the reflect-padded margins of a patch).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from deepict.errors import ParameterError

EPSILON = 1e-6


def _flatten_per_class(tensor: torch.Tensor) -> torch.Tensor:
    """(N, C, ...) -> (C, N * voxels): DeePiCt sums the Dice terms over the whole batch."""
    return tensor.transpose(0, 1).reshape(tensor.shape[1], -1)


def dice_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """DeePiCt's Dice loss: per class 1 - 2·Σpt / (Σp² + Σt²) over the batch, averaged over classes."""
    p = torch.sigmoid(logits)
    if weight is not None:
        p, target = p * weight, target * weight
    p, t = _flatten_per_class(p), _flatten_per_class(target)
    dice = 2 * (p * t).sum(1) / ((p * p).sum(1) + (t * t).sum(1)).clamp_min(EPSILON)
    return 1 - dice.mean()


def generalized_dice_loss(logits: torch.Tensor, target: torch.Tensor,
                          weight: torch.Tensor | None = None) -> torch.Tensor:
    """Generalized Dice (Sudre et al. 2017) over foreground and background of every class.

    Each of the 2·C labels is weighted by the inverse square of its volume, so rare classes
    (small particles) count as much as large ones.
    """
    p = torch.sigmoid(logits)
    p = torch.cat([p, 1 - p], dim=1)
    t = torch.cat([target, 1 - target], dim=1)
    if weight is not None:
        w = torch.cat([weight, weight], dim=1)
        p, t = p * w, t * w
    p, t = _flatten_per_class(p), _flatten_per_class(t)
    label_weight = 1.0 / t.sum(1).clamp_min(1.0) ** 2
    intersection = (label_weight * (p * t).sum(1)).sum()
    union = (label_weight * (p + t).sum(1)).sum()
    return 1 - 2 * intersection / union.clamp_min(EPSILON)


def bce_dice_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Binary cross-entropy plus Dice: BCE gives dense gradients early, Dice handles the class imbalance."""
    bce = F.binary_cross_entropy_with_logits(logits, target, weight=weight, reduction="sum")
    count = weight.sum() if weight is not None else torch.tensor(float(target.numel()))
    return bce / count.clamp_min(1.0) + dice_loss(logits, target, weight)


#: The losses by their names (:data:`deepict.conventions.LOSS_NAMES`).
LOSSES = {"bce_dice": bce_dice_loss, "dice": dice_loss, "generalized_dice": generalized_dice_loss}


def get_loss(name: str):
    """The loss function called ``name`` (one of :data:`LOSSES`)."""
    try:
        return LOSSES[name]
    except KeyError:
        raise ParameterError(f"unknown loss '{name}': choose one of {', '.join(LOSSES)}") from None
