"""Keep the coordinates of any picker that lie where a context mask says (cytosol, membranes, a drawn region).

A coordinate table (0-based voxels of its tomogram) is split into the rows kept and the rows
rejected by a context mask; the voxels of the mask above 0 are the context (a binary mask's 1s, a
label map's labels). The modes are those of :mod:`deepict.infer.clusters`, for points:

* ``intersection`` — the point lies in the mask (the distance is not used);
* ``contact`` — the point lies in the mask or within the distance of it;
* ``colocalization`` — the point lies within the distance of the mask's surface, inside or outside
  (particles at the border of a compartment, on or beside a membrane; particles deep inside a
  compartment are rejected). For a thin mask (a membrane segmentation) it keeps what ``contact`` keeps.

The distance of a point to a set of voxels is 0 when the point lies in one of them, else the
Euclidean distance from the point to the nearest voxel centre, in Å. The surface is the mask's
voxels with a face neighbour outside the mask; the edges of the volume are no surface (a compartment
cut by the tomogram's border does not end there).

The mask may have another voxel size than the coordinates (another binning of the same tomogram):
both volumes span the same field of view, so a coordinate ``x`` (voxels of size ``c``) lies at
``(x + 0.5) * c / m - 0.5`` voxels of the mask (size ``m``). A mask whose extent (size × voxel size)
differs from the tomogram's, or that does not hold every coordinate, is refused: it is not a mask
of that tomogram.

The mask is read in blocks around the points (whole x rows, a block of z slices and y rows plus a
halo of the distance), so a 928 × 928 × 464 mask needs memory for one block, not the volume; the
distances are exact (a k-d tree over the surface voxels of the block).
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from deepict.conventions import CONTEXT_MODES, SAME_VOXEL_SIZE_TOLERANCE
from deepict.errors import InputFileError, ParameterError
from deepict.io import CoordinateTable, Volume

#: Edge, in mask voxels, of the z-by-y blocks of the mask read at once (plus their halo).
BLOCK = 64
_FACES = ndimage.generate_binary_structure(3, 1)


@dataclass
class ContextSplit:
    """The rows of a coordinate table kept and rejected by a context mask."""

    kept: CoordinateTable
    rejected: CoordinateTable


def split_by_context(table: CoordinateTable, coords_voxel_size: float, mask: Volume, mask_voxel_size: float,
                     mode: str, distance_angstrom: float, coords_path="coordinates",
                     tomogram_shape_zyx=None) -> ContextSplit:
    """Split ``table`` (voxels of size ``coords_voxel_size``) by the context ``mask`` (see the module docstring).

    ``tomogram_shape_zyx``: the size of the coordinates' tomogram, to check that the mask covers it.
    Every row goes to exactly one side, in input order, with all its columns.
    """
    keep = context_keeps(table.xyz, coords_voxel_size, mask, mask_voxel_size, mode, distance_angstrom,
                         coords_path, tomogram_shape_zyx)
    return ContextSplit(kept=_rows(table, keep, coords_voxel_size), rejected=_rows(table, ~keep, coords_voxel_size))


def _rows(table: CoordinateTable, selected: np.ndarray, voxel_size: float) -> CoordinateTable:
    return CoordinateTable(table.xyz[selected], {k: v[selected] for k, v in table.columns.items()}, voxel_size)


def context_keeps(xyz: np.ndarray, coords_voxel_size: float, mask: Volume, mask_voxel_size: float, mode: str,
                  distance_angstrom: float, coords_path="coordinates", tomogram_shape_zyx=None) -> np.ndarray:
    """Whether each point (N, 3; x, y, z voxels) is kept by the context mask: a boolean (N,)."""
    if mode not in CONTEXT_MODES:
        raise ParameterError(f"unknown context mode '{mode}': use one of {', '.join(CONTEXT_MODES)}")
    if not (np.isfinite(distance_angstrom) and distance_angstrom >= 0):
        raise ParameterError(f"the context distance must be 0 or more Å, got {distance_angstrom:g}")
    shape = tuple(int(s) for s in mask.data.shape)
    if tomogram_shape_zyx is not None:
        check_mask_extent(mask, mask_voxel_size, tomogram_shape_zyx, coords_voxel_size)
    points = mask_voxels(np.asarray(xyz, np.float64).reshape(-1, 3), coords_voxel_size, mask_voxel_size)
    _check_inside(points, shape, mask, mask_voxel_size, coords_path, coords_voxel_size)
    keep = np.zeros(len(points), bool)
    if not len(points):
        return keep
    radius = 0.0 if mode == "intersection" else distance_angstrom / mask_voxel_size
    zyx = points[:, ::-1]
    voxel = np.clip(np.floor(zyx + 0.5).astype(np.int64), 0, np.array(shape) - 1)
    halo = int(np.floor(radius + 0.5)) + 1  # every voxel centre within the radius, and its face neighbours
    for members in _blocks(voxel):
        low = np.maximum(voxel[members].min(axis=0) - halo, 0)
        high = np.minimum(voxel[members].max(axis=0) + halo + 1, shape)
        inside = read_block(mask.data, low, high)
        local = voxel[members] - low
        in_mask = inside[tuple(local.T)]
        if mode == "intersection":
            keep[members] = in_mask
            continue
        surface = inside & ~ndimage.binary_erosion(inside, _FACES, border_value=1)
        # an outside point's nearest mask voxel is a surface voxel, so both modes need the surface only
        near = _within(zyx[members] - low, surface, radius) | surface[tuple(local.T)]
        keep[members] = near | in_mask if mode == "contact" else near
    return keep


def mask_voxels(xyz: np.ndarray, coords_voxel_size: float, mask_voxel_size: float) -> np.ndarray:
    """Coordinates (voxels of ``coords_voxel_size``) in voxels of a mask of the same field of view."""
    return (xyz + 0.5) * (coords_voxel_size / mask_voxel_size) - 0.5


def _blocks(voxel_zyx: np.ndarray):
    """Indices of the points in each z-by-y block of :data:`BLOCK` voxels that holds any."""
    block = voxel_zyx[:, :2] // BLOCK
    order = np.lexsort((block[:, 1], block[:, 0]))
    bounds = np.flatnonzero(np.any(np.diff(block[order], axis=0) != 0, axis=1)) + 1
    return np.split(order, bounds)


def read_block(data: np.ndarray, low, high) -> np.ndarray:
    """``data[low:high] > 0`` (z, y, x bounds) as booleans, read plane by plane.

    Memory-mapped volumes are read with file reads of whole rows (not through the mapping), so a scan
    leaves no mask pages resident; a plane is converted to booleans as soon as it is read.
    """
    (z0, y0, x0), (z1, y1, x1) = (int(v) for v in low), (int(v) for v in high)
    out = np.empty((z1 - z0, y1 - y0, x1 - x0), bool)
    nx = data.shape[2]
    from_file = isinstance(data, np.memmap) and isinstance(data.base, mmap.mmap) and data.flags.c_contiguous
    for k, z in enumerate(range(z0, z1)):
        if from_file:
            offset = data.offset + ((z * data.shape[1] + y0) * nx) * data.dtype.itemsize
            rows = np.fromfile(data.filename, dtype=data.dtype, count=(y1 - y0) * nx, offset=offset)
            out[k] = rows.reshape(y1 - y0, nx)[:, x0:x1] > 0
        else:
            out[k] = np.asarray(data[z, y0:y1, x0:x1]) > 0
    return out


def _within(points_zyx: np.ndarray, voxels: np.ndarray, radius: float) -> np.ndarray:
    """Whether each point lies within ``radius`` (voxels) of a true voxel's centre of ``voxels``."""
    if not voxels.any():
        return np.zeros(len(points_zyx), bool)
    distance, _ = cKDTree(np.argwhere(voxels)).query(points_zyx, k=1, distance_upper_bound=radius * (1 + 1e-9))
    return np.isfinite(distance)


def check_mask_extent(mask: Volume, mask_voxel_size: float, tomogram_shape_zyx, coords_voxel_size: float) -> None:
    """Refuse a ``mask`` that does not span the field of view of a tomogram of ``tomogram_shape_zyx`` voxels of
    ``coords_voxel_size`` (up to one voxel of the coarser and the 1 % rule): not a mask of that tomogram."""
    mask_extent = np.array(mask.data.shape, float) * mask_voxel_size
    tomogram_extent = np.array(tomogram_shape_zyx, float) * coords_voxel_size
    tolerance = max(mask_voxel_size, coords_voxel_size) + SAME_VOXEL_SIZE_TOLERANCE * tomogram_extent
    if np.any(np.abs(mask_extent - tomogram_extent) > tolerance):
        raise InputFileError(
            mask.path, f"its extent x,y,z = {_angstrom(mask_extent)} Å ({_size(mask.data.shape)} voxels of "
                       f"{mask_voxel_size:g} Å) is not the tomogram's {_angstrom(tomogram_extent)} Å "
                       f"({_size(tomogram_shape_zyx)} voxels of {coords_voxel_size:g} Å)",
            "Give the mask made on this tomogram (at any binning), or correct the voxel sizes if a header is wrong.")


def _check_inside(points_xyz, shape_zyx, mask: Volume, mask_voxel_size, coords_path, coords_voxel_size) -> None:
    upper = np.array(shape_zyx[::-1], float) - 0.5
    outside = np.any((points_xyz < -0.5 - 1e-6) | (points_xyz > upper + 1e-6), axis=1)
    if outside.any():
        raise InputFileError(
            mask.path, f"does not cover {int(outside.sum())} of the {len(points_xyz)} coordinates of {coords_path} "
                       f"(mask x,y,z = {_size(shape_zyx)} voxels of {mask_voxel_size:g} Å, coordinates at "
                       f"{coords_voxel_size:g} Å)",
            "Give the mask of the coordinates' tomogram, or correct the voxel size of the coordinates or the mask.")


def _size(shape_zyx) -> str:
    return " x ".join(str(int(s)) for s in tuple(shape_zyx)[::-1])


def _angstrom(extent_zyx) -> str:
    return " x ".join(f"{v:.0f}" for v in tuple(extent_zyx)[::-1])
