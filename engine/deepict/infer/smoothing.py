"""DeePiCt's 2D post-processing: smoothing probabilities along z, then a threshold into a 0/1 mask."""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy.ndimage import gaussian_filter1d

from deepict.conventions import SLAB_SLICES
from deepict.errors import ParameterError

#: Rows processed at once by the streaming post-processing (with 928-px rows and a 72-slice
#: window: 17 MB of float32).
SMOOTH_ROWS = 64


def smoothing_radius(sigma: float) -> int:
    """How many slices on each side the z Gaussian reaches (scipy's default truncation, 4 sigma)."""
    return int(4.0 * float(sigma) + 0.5) if sigma > 0 else 0


def _check_post(sigma: float, threshold: float) -> None:
    if not sigma >= 0:
        raise ParameterError(f"the z smoothing sigma must be >= 0, not {sigma}")
    if not 0 <= threshold < 1:
        raise ParameterError(f"the threshold must lie in [0, 1), not {threshold}")


def smooth_and_threshold_slabs(read: Callable[[int, int, int, int], np.ndarray], shape, sigma: float,
                               threshold: float, write: Callable[[int, np.ndarray], None],
                               slab: int = SLAB_SLICES, rows: int | None = None) -> int:
    """Streaming form of :func:`smooth_and_threshold` for volumes that do not fit in memory.

    ``read(z0, z1, y0, y1)`` returns probabilities ``[z0:z1, y0:y1, :]`` of a volume of ``shape``
    (z, y, x); ``write(z0, mask_slab)`` receives the uint8 0/1 result ``slab`` slices at a time, in
    z order. Each slab is smoothed band of ``rows`` rows (default :data:`SMOOTH_ROWS`) by band, with a margin of
    :func:`smoothing_radius` slices on each side, so the result equals smoothing the whole volume
    at once while memory stays at a few tens of MB. Returns the number of positive voxels.
    """
    _check_post(sigma, threshold)
    rows = SMOOTH_ROWS if rows is None else rows
    depth, height = int(shape[0]), int(shape[1])
    margin = smoothing_radius(sigma)
    positive = 0
    for z0 in range(0, depth, slab):
        z1 = min(depth, z0 + slab)
        a, b = max(0, z0 - margin), min(depth, z1 + margin)
        mask = np.empty((z1 - z0,) + tuple(int(n) for n in shape[1:]), dtype=np.uint8)
        for y0 in range(0, height, rows):
            y1 = min(height, y0 + rows)
            block = np.asarray(read(a, b, y0, y1), dtype=np.float32)
            if margin and block.shape[0] > 1:
                block = gaussian_filter1d(block, sigma, axis=0, mode="reflect")
            np.greater(block[z0 - a:z1 - a], threshold, out=mask[:, y0:y1].view(bool))
        positive += int(np.count_nonzero(mask))
        write(z0, mask)
    return positive


def smooth_and_threshold(probability: np.ndarray, sigma: float, threshold: float) -> np.ndarray:
    """DeePiCt's 2D post-processing: 1D Gaussian along z (``sigma`` slices, reflecting ends), then ``> threshold``.

    ``probability`` is a (z, y, x) array (it may be memory-mapped); returns a uint8 0/1 volume.
    ``sigma`` 0 skips the smoothing.
    """
    probability = probability if hasattr(probability, "shape") else np.asarray(probability)
    if len(probability.shape) != 3:
        raise ParameterError(f"expected a (z, y, x) probability volume, got shape {tuple(probability.shape)}")
    out = np.empty(probability.shape, dtype=np.uint8)

    def write(z0, mask):
        out[z0:z0 + len(mask)] = mask

    smooth_and_threshold_slabs(lambda a, b, c, d: probability[a:b, c:d], probability.shape, sigma, threshold, write)
    return out
