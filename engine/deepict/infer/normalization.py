"""Per-tomogram z-score normalisation: every tomogram is normalised with the mean and standard deviation
of the whole tomogram, at training and at prediction alike."""

from __future__ import annotations

import numpy as np

from deepict.errors import InputFileError
from deepict.io import read_slab, volume_mean_std


def tomogram_zscore(data: np.ndarray, path) -> tuple[float, float]:
    """Mean and standard deviation of a whole tomogram (read in small chunks); refuse a constant one."""
    mean, std = volume_mean_std(data)
    if not std > 0:
        raise InputFileError(path, "is constant (all voxels equal)", "Give a reconstructed tomogram.")
    return mean, std


def normalized_slices(data: np.ndarray, mean: float, std: float, z_indices) -> np.ndarray:
    """The float32 z-scored slices ``z_indices`` of a volume (z, y, x), read one by one."""
    out = np.empty((len(z_indices),) + tuple(data.shape[1:]), dtype=np.float32)
    for i, z in enumerate(z_indices):
        out[i] = (read_slab(data, z, z + 1)[0] - mean) / std
    return out
