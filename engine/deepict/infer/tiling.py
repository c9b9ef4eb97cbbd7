"""Tilers for 3D and 2D prediction: boxes whose cores cover every voxel of an axis.

A box of ``box`` voxels is trusted most in its core, the box minus ``margin`` voxels on each
side: in the margin a convolutional network sees the least context. Two rules place the boxes:

* :func:`window_starts`, the 3D sliding window (:mod:`.sliding_window`): boxes stay inside the
  axis and are blended, so the tomogram's first and last voxels lie on a box's edge. A particle
  cut by the tomogram's edge is then seen as every training patch shows a particle cut by the
  patch's edge, not beside its own mirror image, which no training patch shows. An axis shorter
  than a box is mirrored beyond its end.
* :func:`box_starts`, the 2D tiles of compartment segmentation (:mod:`.slices2d`): each tile's
  rim (``margin``, there called ``crop``) is discarded, so the axis is padded by ``margin`` on
  each side by mirror reflection, and further at its end when it is shorter than one box. Boxes
  start every core length from the start of the padded axis, the last one ending exactly at its
  end. A box's start in padded coordinates is the real coordinate of the first voxel of its core.

Both use no more boxes than needed.
"""

from __future__ import annotations

import numpy as np

from deepict.errors import ParameterError


def window_starts(length: int, box: int, margin: int) -> list[int]:
    """First voxels of blended boxes inside an axis of ``length`` voxels: from 0 to the end, cores joined.

    Consecutive boxes overlap by ``2 margin``, so the core of each begins where the previous one
    ends; the last box ends at the axis's last voxel. An axis shorter than a box gets one box at 0.
    """
    return _starts(max(length - box, 0), _core(box, margin))


def box_starts(length: int, box: int, margin: int) -> list[int]:
    """Starts (in padded coordinates) of the boxes whose cores cover an axis of ``length`` voxels.

    The core of a box starting at ``s`` covers the real voxels ``[s, s + box - 2 margin)``.
    """
    return _starts(padded_length(length, box, margin) - box, _core(box, margin))


def _core(box: int, margin: int) -> int:
    check_box_margin(box, margin)
    return box - 2 * margin


def check_box_margin(box: int, margin: int) -> None:
    """Raise :class:`ParameterError` unless a box of ``box`` voxels keeps a core inside its ``margin`` on each side
    (the rule the Scipion forms check before a run)."""
    if margin < 0:
        raise ParameterError(f"the margin must not be negative, got {margin}")
    if box - 2 * margin < 1:
        raise ParameterError(f"a box of {box} voxels must be larger than twice its margin ({margin}): "
                             "it would keep no core")


def _starts(last: int, step: int) -> list[int]:
    """0, step, 2 step, … and ``last``, where the last box must start."""
    starts = list(range(0, last + 1, step))
    if starts[-1] != last:
        starts.append(last)
    return starts


def padded_length(length: int, box: int, margin: int) -> int:
    """Length of the padded axis: ``margin`` on each side, at least one box."""
    return max(length + 2 * margin, box)


def box_count(shape, box: int, margin: int, starts=None) -> int:
    """How many boxes cover a volume or an image of ``shape``, placed by ``starts`` (default :func:`box_starts`)."""
    starts = starts or box_starts
    return int(np.prod([len(starts(int(n), box, margin)) for n in shape]))


def reflect_indices(indices: np.ndarray, length: int) -> np.ndarray:
    """Map indices outside [0, length) back inside by mirror reflection (no edge repeat)."""
    if length == 1:
        return np.zeros_like(indices)
    period = 2 * (length - 1)
    indices = np.mod(indices, period)
    return np.where(indices >= length, period - indices, indices)


# --------------------------------------------------------------------------------------------
# 2D tiles
# --------------------------------------------------------------------------------------------

def check_tile_geometry(tile: int, crop: int | None, depth: int) -> None:
    """Raise :class:`ParameterError` unless ``tile`` fits the network and leaves a core after ``crop``.

    ``crop`` None checks the tile size only (training tiles keep their rim).
    """
    multiple = 2 ** (depth - 1)
    if tile < multiple or tile % multiple:
        raise ParameterError(f"tile size {tile} must be a positive multiple of {multiple} "
                             f"(2^(depth-1) for a depth-{depth} U-Net)")
    if crop is not None and (crop < 0 or tile - 2 * crop < 1):
        raise ParameterError(f"the discarded rim ({crop} px on each side) leaves nothing of a {tile} px tile: "
                             f"use a rim below {tile // 2} px")


def pad_for_tiles(image: np.ndarray, tile: int, crop: int) -> np.ndarray:
    """Reflect-pad a 2D slice by ``crop`` on every side, and further at the end if it is smaller than a tile."""
    pads = [(crop, padded_length(length, tile, crop) - length - crop) for length in image.shape]
    mode = "reflect" if min(image.shape) > 1 else "edge"
    return np.pad(image, pads, mode=mode)


def auto_tile_size(shape_yx, min_tile: int, crop: int, depth: int, max_tile: int = 512) -> int:
    """The tile size (multiple of ``2^(depth-1)``, from ``min_tile`` to ``max_tile``) needing the least work.

    The network is fully convolutional, so it can be applied to tiles larger than it was
    trained on; a larger tile wastes a smaller fraction on its discarded rim. Work is counted
    as the number of pixels pushed through the network per slice.
    """
    multiple = 2 ** (depth - 1)
    best, best_work = min_tile, None
    for tile in range(min_tile, max(min_tile, max_tile) + 1, multiple):
        if tile - 2 * crop < 1:
            continue
        work = box_count(shape_yx, tile, crop) * tile * tile
        if best_work is None or work < best_work:
            best, best_work = tile, work
    return best
