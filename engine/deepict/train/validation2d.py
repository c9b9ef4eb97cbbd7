"""The validation of a 2D training, which also calibrates the model's default mask threshold.

The validation probabilities are smoothed along z as at prediction (a Gaussian of ``sigma`` slices,
applied to the strided validation slices with the sigma scaled by their spacing), and the Dice is taken
at the threshold of :data:`THRESHOLD_GRID` that maximises it. Ranking epochs by this Dice does not depend
on the loss giving calibrated probabilities (DeePiCt's Dice loss does not), and the threshold found is
the model's default.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from deepict.infer.slices2d import predict_array
from deepict.infer.tiling import auto_tile_size
from deepict.train.config import Train2DConfig
from deepict.train.data2d import TrainingSlices

#: Thresholds tried when calibrating the mask threshold on the validation data.
THRESHOLD_GRID = tuple(round(0.05 * i, 2) for i in range(1, 20))


def validate_slices(network, val: list[TrainingSlices], config: Train2DConfig, device) -> tuple[float, float, float]:
    """(best Dice, its threshold, soft Dice loss) over all validation slices."""
    intersection = np.zeros(len(THRESHOLD_GRID))
    predicted = np.zeros(len(THRESHOLD_GRID))
    truth = soft_pt = soft_pp = 0.0
    for part in val:
        tile = auto_tile_size(part.images.shape[1:], config.tile_size, config.crop, config.depth)
        prob = predict_array(network, part.images, tile, config.crop, max(config.batch_size, 4), device)
        target = part.masks.astype(bool)
        truth += float(np.count_nonzero(target))
        soft_pt += float(prob[target].sum())
        soft_pp += float(np.square(prob, dtype=np.float64).sum())
        if config.sigma > 0 and len(part.z) > 1:
            spacing = float(np.mean(np.diff(part.z)))
            prob = gaussian_filter1d(prob, config.sigma / spacing, axis=0, mode="reflect")
        for i, threshold in enumerate(THRESHOLD_GRID):
            hard = prob > threshold
            intersection[i] += np.count_nonzero(hard & target)
            predicted[i] += np.count_nonzero(hard)
    dice = np.where(predicted + truth > 0, 2 * intersection / np.maximum(predicted + truth, 1), 1.0)
    best = int(np.argmax(dice))
    soft = 1 - 2 * soft_pt / max(soft_pp + truth, 1e-6)
    return float(dice[best]), THRESHOLD_GRID[best], soft
