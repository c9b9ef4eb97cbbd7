"""Smooth centre lines from voxel chains, extended to the filament's ends and sampled at a spacing.

Curves are (K, 3) arrays of (x, y, z) voxel positions sampled every :data:`CURVE_STEP` voxels of arc.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.interpolate import splev, splprep

#: Arc length (voxels) between two consecutive points of a dense curve.
CURVE_STEP = 0.25
#: Standard deviation (voxels) of the skeleton's staircase about the true centre line: sets how
#: much the smoothing spline may depart from the voxels (an interpolating spline follows the steps
#: and its tangents swing by tens of degrees).
SKELETON_NOISE = 0.6
#: Arc length (voxels) over which an end's direction is taken before extending it.
_END_DIRECTION_ARC = 4.0
#: Half-size (voxels) of the window in which an end's depth inside the mask is measured.
_DEPTH_WINDOW = 32


def resample_by_arc(points: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Points every ``step`` of arc along a polyline (the first at its start), and their arc positions."""
    segment = np.linalg.norm(np.diff(points, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(segment)])
    positions = np.arange(0.0, arc[-1] + 1e-9, step)
    return np.stack([np.interp(positions, arc, points[:, i]) for i in range(3)], 1), positions


def smooth_curve(chain: np.ndarray) -> np.ndarray:
    """A smoothing cubic spline through an ordered (M, 3) chain, as a dense curve."""
    keep = np.concatenate([[True], np.any(np.diff(chain, axis=0) != 0, axis=1)])
    chain = chain[keep]
    if len(chain) < 2:
        return chain.astype(float)
    degree = min(3, len(chain) - 1)
    tck, _ = splprep(chain.T, s=len(chain) * SKELETON_NOISE ** 2, k=degree)
    length = float(np.linalg.norm(np.diff(chain, axis=0), axis=1).sum())
    dense = np.stack(splev(np.linspace(0.0, 1.0, max(int(length / CURVE_STEP) * 4, 16)), tck), 1)
    return resample_by_arc(dense, CURVE_STEP)[0]


def _inside(mask: np.ndarray, point: np.ndarray) -> bool:
    index = np.round(point[::-1]).astype(int)
    return bool(np.all(index >= 0) and np.all(index < mask.shape) and mask[tuple(index)])


def _depth(mask: np.ndarray, point: np.ndarray) -> float:
    """Distance (voxels) from ``point`` to the mask's background, measured in a window around it."""
    centre = np.clip(np.round(point[::-1]).astype(int), 0, np.array(mask.shape) - 1)
    low = np.maximum(centre - _DEPTH_WINDOW, 0)
    high = np.minimum(centre + _DEPTH_WINDOW + 1, mask.shape)
    window = mask[tuple(slice(a, b) for a, b in zip(low, high))]
    if not window[tuple(centre - low)]:
        return 0.0
    padded = np.pad(window, 1, constant_values=False)  # the volume's edge ends a filament too
    return float(ndimage.distance_transform_edt(padded)[tuple(centre - low + 1)])


def extend_to_mask_ends(curve: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Prolong both ends of a curve straight on while they stay in ``mask`` (boolean (z, y, x)).

    A skeleton stops about a radius short of a filament's end (and of the volume's edge); each end
    goes on along its direction by at most its depth in the mask plus a voxel, so it reaches the
    end of the filament but does not run along another one it touches.
    """
    if len(curve) < 2:
        return curve
    back = max(1, min(len(curve) - 1, int(round(_END_DIRECTION_ARC / CURVE_STEP))))
    pieces = []
    for end, before in ((curve[0], curve[back]), (curve[-1], curve[-1 - back])):
        direction = end - before
        norm = np.linalg.norm(direction)
        steps = []
        if norm > 0:
            direction /= norm
            limit = _depth(mask, end) + 1.0
            travelled = CURVE_STEP
            while travelled <= limit and _inside(mask, end + travelled * direction):
                steps.append(end + travelled * direction)
                travelled += CURVE_STEP
        pieces.append(np.array(steps).reshape(-1, 3))
    return np.concatenate([pieces[0][::-1], curve, pieces[1]])


def curve_length(curve: np.ndarray) -> float:
    return float(np.linalg.norm(np.diff(curve, axis=0), axis=1).sum()) if len(curve) > 1 else 0.0


def sample_curve(curve: np.ndarray, spacing: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points every ``spacing`` voxels of arc along a dense curve: positions (x, y, z), arc positions, unit tangents.

    The points are centred on the curve (equal margins at both ends), so a filament traced in
    either direction gives the same points.
    """
    length = curve_length(curve)
    count = int(np.floor(length / spacing)) + 1
    margin = (length - (count - 1) * spacing) / 2.0
    segment = np.linalg.norm(np.diff(curve, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(segment)])
    positions = margin + spacing * np.arange(count)
    points = np.stack([np.interp(positions, arc, curve[:, i]) for i in range(3)], 1)
    half = 1.0  # voxels of arc either side for the tangent
    ahead = np.stack([np.interp(np.minimum(positions + half, length), arc, curve[:, i]) for i in range(3)], 1)
    behind = np.stack([np.interp(np.maximum(positions - half, 0.0), arc, curve[:, i]) for i in range(3)], 1)
    tangents = ahead - behind
    tangents /= np.maximum(np.linalg.norm(tangents, axis=1, keepdims=True), 1e-12)
    return points, positions, tangents
