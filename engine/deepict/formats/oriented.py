"""What the exports write of a particle's orientation and of the filament it was sampled on.

A coordinate table may carry RELION angles ``rot, tilt, psi`` (degrees; :mod:`deepict.orientations`)
and, for points sampled along filaments (``deepict filaments``), ``filament_id`` and
``arc_length_angstrom``. A table without angles exports the identity orientation (angles 0). RELION
files also get the tilt and psi as priors (``rlnAngleTiltPrior``, ``rlnAnglePsiPrior``: a helical
or local refinement searches near them) and, for filaments, ``rlnHelicalTubeID`` and
``rlnHelicalTrackLengthAngst``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from deepict.conventions import ANGLE_COLUMNS, ARC_LENGTH_COLUMN, FILAMENT_ID_COLUMN
from deepict.io import CoordinateTable

RELION_ANGLE_COLUMNS = ["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"]
RELION_PRIOR_COLUMNS = ["rlnAngleTiltPrior", "rlnAnglePsiPrior"]
RELION_HELICAL_COLUMNS = ["rlnHelicalTubeID", "rlnHelicalTrackLengthAngst"]


def angles_or_zero(coords: CoordinateTable) -> np.ndarray:
    """(N, 3) RELION angles of a table, zeros (the identity) for a table without them."""
    angles = coords.angles()
    return np.zeros((len(coords), 3)) if angles is None else angles


def has_filaments(coords: CoordinateTable) -> bool:
    return FILAMENT_ID_COLUMN in coords.columns


def relion_extra_columns(tables: Sequence[CoordinateTable]) -> list[str]:
    """The prior and helical columns a RELION file of these tables carries (those of any table)."""
    extra = []
    if any(t.angles() is not None for t in tables):
        extra += RELION_PRIOR_COLUMNS
    if any(has_filaments(t) for t in tables):
        extra += RELION_HELICAL_COLUMNS
    return extra


def relion_extra_values(coords: CoordinateTable, extra: Sequence[str]) -> list[tuple]:
    """Per row, the values of ``extra`` columns (0 where the table lacks them)."""
    angles = angles_or_zero(coords)
    values = {"rlnAngleTiltPrior": angles[:, 1], "rlnAnglePsiPrior": angles[:, 2],
              "rlnHelicalTubeID": np.asarray(coords.column(FILAMENT_ID_COLUMN, 0)).astype(np.int64),
              "rlnHelicalTrackLengthAngst": np.asarray(coords.column(ARC_LENGTH_COLUMN, 0.0), dtype=np.float64)}
    columns = [values[name] for name in extra]
    return [tuple(c[i].item() for c in columns) for i in range(len(coords))]


def with_read_orientation(table: CoordinateTable, angles: np.ndarray, filament_ids=None,
                          arc_lengths=None) -> CoordinateTable:
    """A read-back table given the angles it was written with (when any is not 0) and its filament columns."""
    angles = np.asarray(angles, dtype=np.float64).reshape(-1, 3)
    if np.any(angles != 0):
        for i, name in enumerate(ANGLE_COLUMNS):
            table.columns[name] = angles[:, i]
    if filament_ids is not None:
        table.columns[FILAMENT_ID_COLUMN] = np.asarray(filament_ids, dtype=np.int64)
        table.columns[ARC_LENGTH_COLUMN] = np.asarray(arc_lengths, dtype=np.float64)
    return table
