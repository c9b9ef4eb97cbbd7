"""Training targets: solid spheres around particle coordinates, or binary structure masks.

Targets are (C, Z, Y, X) uint8 arrays, one independent channel per class (multi-label: a voxel
may belong to several classes).
"""

from __future__ import annotations

import numpy as np

from deepict.conventions import voxel_sizes_differ
from deepict.errors import InputFileError, ParameterError
from deepict.io import read_volume


def sphere_offsets(radius: float) -> np.ndarray:
    """Integer (dz, dy, dx) offsets of the voxels of a solid ball of ``radius`` voxels."""
    r = int(np.floor(radius))
    grid = np.mgrid[-r:r + 1, -r:r + 1, -r:r + 1].reshape(3, -1).T
    return grid[(grid ** 2).sum(axis=1) <= radius ** 2]


def paint_spheres(target: np.ndarray, xyz: np.ndarray, radius: float) -> np.ndarray:
    """Set to 1 the voxels of ``target`` (Z, Y, X) within ``radius`` of any coordinate (x, y, z)."""
    if radius <= 0:
        raise ParameterError(f"the sphere radius must be positive, got {radius}")
    if len(xyz) == 0:
        return target
    centres = np.rint(np.asarray(xyz)[:, ::-1]).astype(np.int64)  # (z, y, x)
    voxels = (centres[:, None, :] + sphere_offsets(radius)[None]).reshape(-1, 3)
    inside = np.all((voxels >= 0) & (voxels < np.array(target.shape)), axis=1)
    voxels = voxels[inside]
    target[voxels[:, 0], voxels[:, 1], voxels[:, 2]] = 1
    return target


def sphere_targets(shape_zyx, coordinates: list, radii: list) -> np.ndarray:
    """(C, Z, Y, X) uint8 targets with one sphere channel per (coordinates, radius) pair."""
    targets = np.zeros((len(coordinates),) + tuple(shape_zyx), dtype=np.uint8)
    for channel, (xyz, radius) in enumerate(zip(coordinates, radii)):
        paint_spheres(targets[channel], xyz, radius)
    return targets


def mask_targets(mask_paths: list, shape_zyx, tomogram_path, voxel_size: float | None) -> np.ndarray:
    """(C, Z, Y, X) uint8 targets from binary masks (any non-zero voxel is foreground).

    Each mask must have the tomogram's shape and (when both carry one) its voxel size, and hold
    at least one foreground voxel.
    """
    targets = np.zeros((len(mask_paths),) + tuple(shape_zyx), dtype=np.uint8)
    for channel, path in enumerate(mask_paths):
        mask = read_volume(path)
        if mask.data.shape != tuple(shape_zyx):
            raise InputFileError(
                path, f"has shape (z, y, x) {mask.data.shape} but its tomogram {tomogram_path} has {tuple(shape_zyx)}",
                "Give the mask that was made on this tomogram, at the same binning.")
        if voxel_sizes_differ(mask.voxel_size, voxel_size):
            raise InputFileError(
                path, f"has voxel size {mask.voxel_size:g} Å but its tomogram {tomogram_path} has {voxel_size:g} Å",
                "Give the mask made on this tomogram, or fix the header voxel size.")
        targets[channel] = np.asarray(mask.data) != 0
        if not targets[channel].any():
            raise InputFileError(path, "has no foreground (non-zero) voxel",
                                 "Give a mask that marks the structure to learn.")
    return targets
