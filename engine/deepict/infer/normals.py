"""Orient picks by their context: the normal of the context surface (a membrane, the nuclear envelope) at each pick.

A nuclear pore sits in a hole of the envelope with its axis along the envelope's normal; a membrane
protein stands on its membrane. The orientation of such a pick is the normal of the context mask
near it, found by a local plane fit: the context voxels within a sphere around the pick, of radius
the distance to the nearest context voxel plus a neighbourhood radius (so the fit sees the envelope
*around* a pore, not only its nearest rim), give a covariance matrix whose least eigenvector is
the normal. The fit uses all the voxels of a thick mask (the envelope's two membranes and the
space between), not only a surface, so it holds for any mask thinner than the neighbourhood.

A mask does not say which side is which (cytoplasm or nucleus), so the polarity is a fixed rule:
the normal points to +z (to +y when it lies in the xy plane, then to +x). Orientations are RELION
ZYZ angles putting a reference's z axis along the normal (:mod:`deepict.orientations`), ``rot`` 0
(the spin about the normal is not known).

The mask is read in blocks around each pick (:func:`deepict.infer.context_filter.read_block`), so
memory stays that of a neighbourhood for any tomogram size.
"""

from __future__ import annotations

import numpy as np

from deepict.conventions import ANGLE_COLUMNS
from deepict.infer.context_filter import read_block
from deepict.orientations import direction_to_euler

#: Smallest neighbourhood radius, in voxels: a plane fit over fewer voxels follows the voxel steps.
MIN_RADIUS = 4.0
#: The neighbourhood radius as a multiple of a cluster's equivalent-sphere radius: the fit spans
#: the surface beyond the particle's own footprint.
RADIUS_PER_CLUSTER_RADIUS = 2.0


def neighbourhood_radius(cluster_size) -> np.ndarray:
    """Neighbourhood radius (voxels) for clusters of ``cluster_size`` voxels (see the module docstring)."""
    equivalent = np.cbrt(3.0 * np.asarray(cluster_size, np.float64) / (4.0 * np.pi))
    return np.maximum(RADIUS_PER_CLUSTER_RADIUS * equivalent, MIN_RADIUS)


def context_normals(xyz, context: np.ndarray, radius) -> np.ndarray:
    """Unit normals (N, 3; x, y, z) of the context mask (z, y, x; > 0 = context) at points (N, 3; x, y, z voxels).

    ``radius``: the neighbourhood radius in voxels (one value, or one per point). A point whose
    neighbourhood holds fewer than 3 context voxels (an empty mask) gets NaN.
    """
    points = np.asarray(xyz, np.float64).reshape(-1, 3)
    radii = np.broadcast_to(np.asarray(radius, np.float64), (len(points),))
    normals = np.full((len(points), 3), np.nan)
    for index, (point, reach) in enumerate(zip(points, radii)):
        nearest = _nearest_distance(point[::-1], context, reach)
        if nearest is None:
            continue
        voxels = _voxels_within(point[::-1], context, nearest + reach)
        if len(voxels) >= 3:
            normals[index] = _with_polarity(_plane_normal(voxels))[::-1]
    return normals


def orientation_columns(xyz, context: np.ndarray, cluster_size) -> dict:
    """``{rot, tilt, psi}`` columns orienting each point along the context's normal (NaN where undefined)."""
    normals = context_normals(xyz, context, neighbourhood_radius(cluster_size))
    angles = np.full((len(normals), 3), np.nan)
    defined = np.all(np.isfinite(normals), axis=1)
    if defined.any():
        angles[defined] = np.stack(direction_to_euler(normals[defined]), axis=1)
    return {name: angles[:, i] for i, name in enumerate(ANGLE_COLUMNS)}


def _bounds(centre_zyx, halo: float, shape) -> tuple[np.ndarray, np.ndarray]:
    low = np.maximum(np.floor(centre_zyx - halo).astype(np.int64), 0)
    high = np.minimum(np.ceil(centre_zyx + halo).astype(np.int64) + 1, shape)
    return low, high


def _nearest_distance(centre_zyx, context: np.ndarray, start: float) -> float | None:
    """Distance (voxels) from a point to the nearest context voxel's centre; ``None`` if there is none."""
    shape = np.array(context.shape)
    halo = max(start, 1.0)
    while True:
        low, high = _bounds(centre_zyx, halo, shape)
        voxels = np.argwhere(read_block(context, low, high)) + low
        covers = bool(np.all(low == 0) and np.all(high == shape))
        if len(voxels):
            nearest = float(np.sqrt(((voxels - centre_zyx) ** 2).sum(axis=1)).min())
            if nearest <= halo or covers:  # beyond the halo, a nearer voxel may lie outside the block
                return nearest
        elif covers:
            return None
        halo *= 2.0


def _voxels_within(centre_zyx, context: np.ndarray, radius: float) -> np.ndarray:
    low, high = _bounds(centre_zyx, radius, np.array(context.shape))
    voxels = np.argwhere(read_block(context, low, high)) + low
    return voxels[((voxels - centre_zyx) ** 2).sum(axis=1) <= radius ** 2]


def _plane_normal(voxels_zyx: np.ndarray) -> np.ndarray:
    """The least principal axis (z, y, x) of a cloud of voxels: the normal of the plane fitting them best."""
    centred = voxels_zyx - voxels_zyx.mean(axis=0)
    _, vectors = np.linalg.eigh(centred.T @ centred)
    return vectors[:, 0]


def _with_polarity(normal_zyx: np.ndarray) -> np.ndarray:
    """The normal turned to +z (then +y, then +x) — the fixed polarity rule."""
    for component in normal_zyx:  # z first
        if abs(component) > 1e-9:
            return normal_zyx if component > 0 else -normal_zyx
    return normal_zyx
