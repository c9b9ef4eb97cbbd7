"""From a segmentation to clean filament bodies: the binary mask, its pieces, small holes filled, erosion.

Everything here works on boolean (z, y, x) arrays; lengths are in voxels (the caller converts Å).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from deepict.errors import InputFileError
from deepict.io import iter_slabs

#: 26-connectivity: voxels touching by a face, an edge or a corner belong together.
CONNECTIVITY_26 = np.ones((3, 3, 3), dtype=bool)


def binary_mask(data: np.ndarray, threshold: float | None = None, path="the map") -> np.ndarray:
    """A boolean copy of a (possibly memory-mapped) volume, read slab by slab.

    ``threshold=None``: every voxel above 0 (a mask; NaN voxels are background); otherwise voxels ``>= threshold``
    of a probability map, which must hold values in [0, 1] (else :class:`InputFileError` naming ``path``: a
    tomogram given as a map traced hundreds of filaments in its noise).
    """
    out = np.empty(data.shape, dtype=bool)
    low, high = np.inf, -np.inf
    for z0, slab in iter_slabs(data):
        out[z0:z0 + len(slab)] = slab > 0 if threshold is None else slab >= threshold
        if threshold is not None:
            low, high = min(low, float(np.nanmin(slab))), max(high, float(np.nanmax(slab)))
    if threshold is not None and not (0 <= low and high <= 1):
        raise InputFileError(path, f"is not a probability map: its values run from {low:g} to {high:g}, not within "
                                   "[0, 1]",
                             "Give a map of pick or segment3d (--probability-map), or a binary mask with --mask.")
    return out


def label_pieces(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """26-connected pieces of ``mask``: labels in the smallest integer type that holds them, and their count.

    uint16 labels take half the memory of int32 for a whole tomogram (0.8 instead of 1.6 GB at
    928x928x464); a mask with more pieces than that falls back to int32.
    """
    try:
        labels = np.empty(mask.shape, dtype=np.uint16)
        count = ndimage.label(mask, structure=CONNECTIVITY_26, output=labels)
    except RuntimeError:  # more than 65535 pieces
        labels = np.empty(mask.shape, dtype=np.int32)
        count = ndimage.label(mask, structure=CONNECTIVITY_26, output=labels)
    return labels, int(count)


def fill_small_holes(body: np.ndarray, max_hole_area: float) -> np.ndarray:
    """Fill, slice by slice along each of the three axes, the 2D holes of at most ``max_hole_area`` voxels.

    A hollow tube's lumen shows as a ring in the slices across it; filling it puts the skeleton on
    the tube's axis. Larger holes are left: the space enclosed by crossing filaments is not filament.
    """
    filled = body.copy()
    for axis in range(3):
        moved = np.moveaxis(filled, axis, 0)
        for index in np.flatnonzero(moved.any(axis=(1, 2))):
            # a hole lies within the plane's foreground bounding box: label only that
            rows, columns = np.flatnonzero(moved[index].any(axis=1)), np.flatnonzero(moved[index].any(axis=0))
            plane = moved[index, rows[0]:rows[-1] + 1, columns[0]:columns[-1] + 1]
            if min(plane.shape) < 3:
                continue
            background, count = ndimage.label(~plane)
            if count < 2:
                continue
            sizes = np.bincount(background.ravel())
            border = np.unique(np.concatenate([background[0], background[-1], background[:, 0], background[:, -1]]))
            small = sizes <= max_hole_area
            small[0] = False
            small[border] = False
            if small.any():
                plane |= small[background]
    return filled


def erode(body: np.ndarray, radius: float) -> np.ndarray:
    """Erode by about ``radius`` voxels (alternating 6- and 26-neighbourhoods, a cheap ball).

    Erosion separates filaments that only touch, before the skeleton would join them.
    """
    steps = int(round(radius))
    if steps < 1:
        return body
    face = ndimage.generate_binary_structure(3, 1)
    out = body
    for step in range(steps):
        out = ndimage.binary_erosion(out, structure=face if step % 2 == 0 else CONNECTIVITY_26)
    return out
