"""How well traced filaments match known centre lines (the benchmark's and the tests' measure).

Distances are in voxels. A traced filament is the polyline through its sampled points in arc order.
  * recall: fraction of the true centre-line length within ``tolerance`` of a traced polyline;
  * precision: fraction of the sampled points within ``tolerance`` of a true centre line;
  * orientation error: angle (polarity ignored) between a point's (tilt, psi) axis and the true
    tangent at the nearest true centre-line point, for the points within ``tolerance``;
  * spacing: median distance between consecutive points of a filament;
  * shared ids: traced filaments holding points of two or more true filaments (at least two points
    each; a point near a crossing goes to the true filament whose direction it shares).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from deepict.conventions import ARC_LENGTH_COLUMN, FILAMENT_ID_COLUMN
from deepict.io import CoordinateTable
from deepict.orientations import angle_between_axes, tilt_psi_to_direction

_STEP = 0.25


def _densify(points: np.ndarray) -> np.ndarray:
    if len(points) < 2:
        return points
    out = [points[:1]]
    for a, b in zip(points[:-1], points[1:]):
        n = max(int(np.ceil(np.linalg.norm(b - a) / _STEP)), 1)
        out.append(a + (b - a) * (np.arange(1, n + 1) / n)[:, None])
    return np.concatenate(out)


def _tangents(line: np.ndarray) -> np.ndarray:
    return np.gradient(line, axis=0) if len(line) > 1 else np.array([[1.0, 0.0, 0.0]])


def score_trace(table: CoordinateTable, centre_lines: list, spacing: float, tolerance: float = 1.5) -> dict:
    """Recall, precision, median orientation error (degrees), spacing and shared ids (see the module docstring)."""
    true_points = np.concatenate(centre_lines) if centre_lines else np.zeros((0, 3))
    true_tangents = np.concatenate([_tangents(c) for c in centre_lines]) if centre_lines else np.zeros((0, 3))
    true_ids = np.concatenate([np.full(len(c), i) for i, c in enumerate(centre_lines)]) if centre_lines else \
        np.zeros(0, dtype=int)
    ids = np.asarray(table.column(FILAMENT_ID_COLUMN, 0), dtype=np.int64)
    arc = np.asarray(table.column(ARC_LENGTH_COLUMN, 0.0), dtype=float)
    traced, gaps = [], []
    for filament in np.unique(ids):
        rows = np.flatnonzero(ids == filament)
        points = table.xyz[rows[np.argsort(arc[rows], kind="stable")]]
        traced.append(_densify(points))
        gaps.extend(np.linalg.norm(np.diff(points, axis=0), axis=1).tolist())
    result = {"true_filaments": len(centre_lines), "traced_filaments": int(len(np.unique(ids))),
              "points": len(table)}
    if len(true_points) == 0 or len(table) == 0:
        return {**result, "recall": 0.0 if len(true_points) else 1.0, "precision": 0.0 if len(table) else 1.0,
                "median_orientation_error_deg": None, "median_spacing_voxels": None, "spacing_error": None,
                "shared_ids": 0}
    traced_tree = cKDTree(np.concatenate(traced))
    recall = float(np.mean(traced_tree.query(true_points)[0] <= tolerance))
    true_tree = cKDTree(true_points)
    distance, nearest = true_tree.query(table.xyz)
    matched = distance <= tolerance
    precision = float(np.mean(matched))
    axes = tilt_psi_to_direction(table.column("tilt"), table.column("psi"))
    errors = angle_between_axes(axes[matched], true_tangents[nearest[matched]])
    shared = 0
    for filament in np.unique(ids):
        rows = np.flatnonzero(ids == filament)
        owners = []
        for row in rows:
            candidates = true_tree.query_ball_point(table.xyz[row], tolerance)
            if candidates:
                angles = angle_between_axes(axes[row], true_tangents[candidates])
                owners.append(true_ids[candidates[int(np.argmin(angles))]])
        counts = np.bincount(np.asarray(owners, dtype=int)) if owners else np.zeros(0)
        shared += int(np.sum(counts >= 2) >= 2)
    median_gap = float(np.median(gaps)) if gaps else None
    return {**result, "recall": recall, "precision": precision,
            "median_orientation_error_deg": float(np.median(errors)) if len(errors) else None,
            "median_spacing_voxels": median_gap,
            "spacing_error": abs(median_gap / spacing - 1.0) if median_gap else None,
            "shared_ids": shared}
