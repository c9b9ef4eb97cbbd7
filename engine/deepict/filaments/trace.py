"""Trace filaments in a segmentation and sample points along their centre lines, with orientations.

Per 26-connected piece of the mask (cropped to its bounding box, so a whole tomogram costs about
the filaments' volume, not the tomogram's): small holes filled slice-wise (a tube's lumen), erosion,
skeleton, branch points cut. Then over the whole tomogram: pieces joined by distance and angle
(so crossing filaments stay apart and a filament cut by a crossing is whole again), smoothed,
prolonged to the mask's ends, filtered by length and sampled at the spacing. All lengths are given
in Å and converted with the voxel size once, here.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import numpy as np
from scipy import ndimage

from deepict.conventions import ANGLE_COLUMNS, ARC_LENGTH_COLUMN, FILAMENT_ID_COLUMN
from deepict.filaments.chains import skeleton_chains
from deepict.filaments.curves import curve_length, extend_to_mask_ends, sample_curve, smooth_curve
from deepict.filaments.joining import join_chains
from deepict.filaments.masks import erode, fill_small_holes, label_pieces
from deepict.filaments.options import FilamentOptions
from deepict.io import CoordinateTable
from deepict.orientations import direction_to_tilt_psi, wrap_degrees
from deepict.progress import Progress, print_line

#: Widest 2D hole (Å across) filled as a filament's lumen: a microtubule's is ~17 nm; the space
#: between crossing filaments is larger and stays empty.
MAX_LUMEN_DIAMETER_ANGSTROM = 300.0
#: Context (Å) around each tile a mask piece is thinned in: wider than the thickest filament's radius
#: (a microtubule's is 125 Å).
SKELETON_HALO_ANGSTROM = 250.0
#: Mask pieces smaller than a 3x3x3 cube are specks of noise, not filaments.
MIN_PIECE_VOXELS_3D = 27
#: The progress of tracing counts each mask piece's work as the voxels of its box plus this fixed cost (filling,
#: erosion and thinning run over the box; a small piece costs about 3 ms, what 7000 box voxels cost), and of
#: smoothing, each filament's as the points of its chain plus this (prolonging its ends measures their depth in
#: two 65-voxel windows, about 90 ms, what 3000 points of spline cost; both measured on a 2-core AMD EPYC,
#: 2026-12-02). Counted in pieces, one huge piece done first made the ETA its time multiplied by the number of
#: pieces left.
PIECE_COST_VOXELS = 7000
FILAMENT_COST_POINTS = 3000


def filament_table(voxel_size: float, xyz=None, columns: Optional[dict] = None) -> CoordinateTable:
    """A coordinate table with the filament columns (rot, tilt, psi, filament id, arc length), possibly empty."""
    names = (*ANGLE_COLUMNS, FILAMENT_ID_COLUMN, ARC_LENGTH_COLUMN)
    columns = columns or {}
    xyz = np.zeros((0, 3)) if xyz is None else xyz
    return CoordinateTable(xyz, {name: np.asarray(columns.get(name, np.zeros(0))) for name in names}, voxel_size)


def _component_chains(mask: np.ndarray, voxel_size: float, options: FilamentOptions,
                      log: Optional[Callable[[str], None]]) -> tuple[list[np.ndarray], list]:
    """Centre-line pieces (x, y, z voxels) of every piece of ``mask`` and whether their ends lie at
    junctions; fills lumens in ``mask`` in place."""
    labels, count = label_pieces(mask)
    boxes = ndimage.find_objects(labels)
    max_hole_area = math.pi * (MAX_LUMEN_DIAMETER_ANGSTROM / voxel_size / 2.0) ** 2
    erosion = options.erosion_angstrom / voxel_size
    halo = int(math.ceil(SKELETON_HALO_ANGSTROM / voxel_size))
    padded_boxes = [None if box is None else tuple(slice(max(s.start - 1, 0), min(s.stop + 1, n))
                                                   for s, n in zip(box, mask.shape)) for box in boxes]
    costs = [_piece_cost(box, padded) for box, padded in zip(boxes, padded_boxes)]
    progress = Progress("tracing mask pieces", count, "pieces", log=log, first_line=False, work=sum(costs))
    chains, junction_ends = [], []
    for label, (padded, cost) in enumerate(zip(padded_boxes, costs), start=1):
        if padded is not None:
            body = labels[padded] == label
            if body.sum() >= MIN_PIECE_VOXELS_3D:
                body = fill_small_holes(body, max_hole_area)
                mask[padded] |= body
                offset = np.array([s.start for s in padded])
                for chain, at_junction in skeleton_chains(erode(body, erosion), halo=halo):
                    chains.append((chain + offset)[:, ::-1].astype(float))
                    junction_ends.append(at_junction)
        progress.advance(work=cost)  # once the piece is done, not before it starts
    del labels
    return chains, junction_ends


def _piece_cost(box, padded_box) -> int:
    """The work of tracing one mask piece, in :data:`PIECE_COST_VOXELS` units, for the progress's ETA; a piece
    whose ``box`` is too small to hold a filament is a speck, skipped at once."""
    if box is None:
        return 0
    if math.prod(s.stop - s.start for s in box) < MIN_PIECE_VOXELS_3D:
        return 1
    return math.prod(s.stop - s.start for s in padded_box) + PIECE_COST_VOXELS


def trace_filaments(mask: np.ndarray, voxel_size: float, options: FilamentOptions,
                    log: Optional[Callable[[str], None]] = None) -> CoordinateTable:
    """Trace the filaments of a boolean (z, y, x) ``mask`` (modified: lumens filled) and sample them.

    Returns a coordinate table (0-based voxels x, y, z) with, per point, RELION angles ``rot, tilt,
    psi`` (the centre line's tangent as tilt/psi; rot free or stepped), ``filament_id`` (1..K) and
    ``arc_length_angstrom`` from the filament's first point. An empty mask gives an empty table.
    """
    options.check(voxel_size)
    spacing = options.spacing_angstrom / voxel_size
    chains, junction_ends = _component_chains(mask, voxel_size, options, log)
    trim = max(1, int(round(options.erosion_angstrom / voxel_size)))
    (log or print_line)(f"joining {len(chains)} piece(s) of centre line")  # a silent stretch on big masks
    joined = join_chains(chains, options.join_distance_angstrom / voxel_size, options.join_angle, trim=trim,
                         junction_ends=junction_ends)
    smoothing = Progress("smoothing the filaments and prolonging them to the mask's ends", len(joined), "filaments",
                         log, work=sum(len(chain) + FILAMENT_COST_POINTS for chain in joined))
    curves = []
    for chain in joined:
        curves.append(extend_to_mask_ends(smooth_curve(chain), mask))
        smoothing.advance(work=len(chain) + FILAMENT_COST_POINTS)
    curves = [c for c in curves if len(c) > 1 and curve_length(c) * voxel_size >= max(options.min_length_angstrom,
                                                                                      options.spacing_angstrom)]
    # stable numbering: filaments in order of their first point (z, y, x)
    curves.sort(key=lambda c: tuple(np.round(min(c[0][::-1].tolist(), c[-1][::-1].tolist()), 3)))
    xyz, columns = [], {name: [] for name in (*ANGLE_COLUMNS, FILAMENT_ID_COLUMN, ARC_LENGTH_COLUMN)}
    upper = np.array(mask.shape[::-1], dtype=float) - 1.0
    for filament_id, curve in enumerate(curves, start=1):
        points, arc, tangents = sample_curve(curve, spacing)
        tilt, psi = direction_to_tilt_psi(tangents)
        xyz.append(np.clip(points, 0.0, upper))
        columns["rot"].append(wrap_degrees(options.rot_step * np.arange(len(points))))
        columns["tilt"].append(tilt)
        columns["psi"].append(psi)
        columns[FILAMENT_ID_COLUMN].append(np.full(len(points), filament_id, dtype=np.int64))
        columns[ARC_LENGTH_COLUMN].append(arc * voxel_size)
    if not xyz:
        return filament_table(voxel_size)
    return filament_table(voxel_size, np.concatenate(xyz), {k: np.concatenate(v) for k, v in columns.items()})
