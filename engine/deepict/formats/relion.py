"""RELION 4 and RELION 5 particle STAR files (one file for all tomograms).

RELION 4 (``relion4``, one file, table ``particles``)
    ``rlnCoordinateX/Y/Z`` = rescaled corner-frame pixels with no +1 (as reliontomo's
    ``convert40_tomo`` writes them); ``rlnTomoParticleId`` 1..N over the whole file,
    ``rlnTomoManifoldIndex`` = ``rlnClassNumber`` = class (Scipion puts the group id there),
    ``rlnRandomSubset`` alternating 1/2 (filament by filament for filaments, :class:`HalfSets`), origins 0, ``rlnAutopickFigureOfMerit`` = score,
    ``rlnDetectorPixelSize`` = the pixel size (Å) of ``rlnCoordinateX/Y/Z``.

RELION 5 (``relion5``, one file, ``# version 50001`` then table ``particles``)
    ``rlnCenteredCoordinateX/Y/ZAngst = (x - size_x / 2) * voxel_size``, with ``x`` the 0-based
    voxel index and ``size_x`` the tomogram size in voxels: RELION 5's tomogram centre is
    ``w0 / 2.0`` (float division, ``TomogramSet::loadTomogram``), i.e. voxel index 32 of a 64-voxel
    axis and 32.5 of a 65-voxel axis. Being in Å, these do not depend on the output pixel size;
    they assume RELION's ``rlnTomoSizeX/Y/Z`` (bin 1) equals the tomogram size times its binning.
    RELION 5 uses them. Also ``rlnCoordinateX/Y/Z`` in output pixels, as for RELION 4: Scipion's
    RELION 5 reader (``convert50_tomo.Reader.gen3dCoordFromStarRow``, used by reliontomo's "import
    3D coordinates from a star file") reads only those, as ``BOTTOM_LEFT_CORNER`` values times
    (coordinates' sampling rate / tomograms' sampling rate), and would put every particle at 0
    without them. No ``rlnTomoParticleId`` column, so Scipion's reader treats the file as RELION 5.
    ``rlnDetectorPixelSize`` as for RELION 4.

``rlnDetectorPixelSize`` is where reliontomo's import takes the coordinates' sampling rate from when
its form's (optional) field is left empty; without it, it takes the tomograms' and puts every
particle of a file written at another output pixel size that many times too far from the corner.

Both: ``rlnAngleRot/Tilt/Psi`` = the table's ``rot, tilt, psi`` (0 without them), and, when a table
has angles, ``rlnAngleTiltPrior``/``rlnAnglePsiPrior``; for filaments also ``rlnHelicalTubeID`` and
``rlnHelicalTrackLengthAngst`` (:mod:`.oriented`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from deepict.conventions import FILAMENT_ID_COLUMN
from deepict.errors import InputFileError
from deepict.formats.classes import class_name_map, class_numbers
from deepict.formats.oriented import (RELION_ANGLE_COLUMNS, RELION_HELICAL_COLUMNS, angles_or_zero,
                                      relion_extra_columns, relion_extra_values, with_read_orientation)
from deepict.formats.picks import (PickedTomogram, TomogramInfo, check_output_pixel_size, check_picks, scale_factor,
                                   score_values, table_from)
from deepict.formats.staging import write_single_file
from deepict.formats.star import read_star, star_text
from deepict.io import CoordinateTable

#: The column that gives the pixel size (Å) of ``rlnCoordinateX/Y/Z``.
COORDINATE_PIXEL_SIZE = "rlnDetectorPixelSize"

RELION4_COLUMNS = [
    "rlnTomoName", "rlnTomoParticleId", "rlnTomoManifoldIndex",
    "rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ",
    "rlnOriginXAngst", "rlnOriginYAngst", "rlnOriginZAngst",
    "rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi",
    "rlnClassNumber", "rlnRandomSubset", "rlnAutopickFigureOfMerit", COORDINATE_PIXEL_SIZE]

RELION5_COLUMNS = [
    "rlnTomoName",
    "rlnCenteredCoordinateXAngst", "rlnCenteredCoordinateYAngst", "rlnCenteredCoordinateZAngst",
    "rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ",
    "rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi",
    "rlnClassNumber", "rlnAutopickFigureOfMerit", COORDINATE_PIXEL_SIZE]

RELION5_VERSION_COMMENT = "# version 50001"


def coordinate_pixel_size(tomogram: TomogramInfo, output_pixel_size: Optional[float]) -> float:
    """The pixel size (Å) the ``rlnCoordinateX/Y/Z`` of ``tomogram``'s particles are written in."""
    return tomogram.voxel_size if output_pixel_size is None else float(output_pixel_size)


def _read_particles(path, tomograms: Sequence[TomogramInfo], position_columns: tuple,
                    to_voxels: Callable[[TomogramInfo, np.ndarray, Optional[np.ndarray]], np.ndarray]
                    ) -> list[CoordinateTable]:
    """The particles of a RELION particles STAR, one table per ``tomograms`` entry (by ``rlnTomoName``).

    ``to_voxels(tomogram, positions, pixel_sizes)`` turns the (N, 3) values of ``position_columns`` into
    tomogram voxels; ``pixel_sizes`` are the rows' ``rlnDetectorPixelSize`` (None where the file has none).
    """
    table = read_star(Path(path), "particles", ["rlnTomoName", *position_columns])
    helical = all(name in table.getColumnNames() for name in RELION_HELICAL_COLUMNS)
    has_pixel_size = COORDINATE_PIXEL_SIZE in table.getColumnNames()
    grouped: dict = {}
    for row in table:
        grouped.setdefault(str(row.rlnTomoName), []).append(
            (tuple(getattr(row, column) for column in position_columns),
             row.get("rlnAutopickFigureOfMerit", 0.0), row.get("rlnClassNumber", 1),
             tuple(float(row.get(name, 0.0)) for name in RELION_ANGLE_COLUMNS),
             tuple(row.get(name, 0) for name in RELION_HELICAL_COLUMNS),
             float(row.get(COORDINATE_PIXEL_SIZE, 0.0))))
    unknown = sorted(set(grouped) - {t.name for t in tomograms})
    if unknown:
        raise InputFileError(path, f"holds particles of tomogram(s) {unknown} (rlnTomoName) that were not given "
                                   f"(given: {[t.name for t in tomograms]})",
                             "Give those tomograms too, named by their tsId (the file name without extension, or "
                             "--tomo-name).")
    out = []
    for tomogram in tomograms:
        entries = grouped.get(tomogram.name, [])
        positions = np.array([e[0] for e in entries], dtype=np.float64).reshape(-1, 3)
        pixel_sizes = np.array([e[5] for e in entries], dtype=np.float64) if has_pixel_size else None
        read = table_from(tomogram, to_voxels(tomogram, positions, pixel_sizes), [e[1] for e in entries],
                          [e[2] for e in entries])
        out.append(with_read_orientation(read, [e[3] for e in entries],
                                         [e[4][0] for e in entries] if helical else None,
                                         [e[4][1] for e in entries]))
    return out


def relion4_rows(picks: Sequence[PickedTomogram], output_pixel_size: Optional[float] = None) -> list[tuple]:
    rows = []
    particle_id = 0
    checked = check_picks(picks)
    names = class_name_map(checked)
    extra = relion_extra_columns([coords for _, coords in checked])
    halves = HalfSets()
    for tomogram, coords in checked:
        factor = scale_factor(tomogram, output_pixel_size)
        pixel_size = coordinate_pixel_size(tomogram, output_pixel_size)
        xyz = coords.xyz * factor
        classes = class_numbers(coords, names)
        for (x, y, z), angles, score, cls, half, more in zip(xyz, angles_or_zero(coords), score_values(coords),
                                                             classes, halves.of(coords),
                                                             relion_extra_values(coords, extra)):
            particle_id += 1
            rows.append((tomogram.name, particle_id, int(cls), float(x), float(y), float(z), 0.0, 0.0, 0.0,
                         *map(float, angles), int(cls), int(half), float(score), pixel_size, *more))
    return rows


class HalfSets:
    """``rlnRandomSubset`` of the particles of an export, table after table: alternating 1, 2 particle by particle,
    but one half for all the segments of a filament (``filament_id``), alternating filament by filament. Segments
    of one tube overlap: in both halves they would correlate the half-maps and inflate the FSC."""

    def __init__(self):
        self.count = 0  # particles, or filaments, given a half so far

    def of(self, coords: CoordinateTable) -> np.ndarray:
        start = self.count
        if FILAMENT_ID_COLUMN in coords.columns and len(coords):
            _, index = np.unique(np.asarray(coords.columns[FILAMENT_ID_COLUMN]), return_inverse=True)
            self.count += int(index.max()) + 1
        else:
            index = np.arange(len(coords))
            self.count += len(coords)
        return 1 + (start + index) % 2


def write_relion4(path, picks: Sequence[PickedTomogram], output_pixel_size: Optional[float] = None) -> list[Path]:
    """RELION 4 particles STAR (table ``particles``); coordinates in output pixels."""
    rows = relion4_rows(picks, output_pixel_size)
    columns = RELION4_COLUMNS + relion_extra_columns([coords for _, coords in check_picks(picks)])
    return write_single_file(path, "RELION 4", star_text("particles", columns, rows), picks)


def read_relion4(path, tomograms: Sequence[TomogramInfo], output_pixel_size: Optional[float] = None
                 ) -> list[CoordinateTable]:
    """Read a RELION 4 particles STAR back into tomogram voxels, one table per ``tomograms`` entry.

    The coordinates' pixel size is ``output_pixel_size`` when given, else the rows' ``rlnDetectorPixelSize``
    (as :func:`write_relion4` writes it), else the tomogram's voxel size.
    """
    def to_voxels(tomogram, pixels, pixel_sizes):
        if output_pixel_size is None and pixel_sizes is not None:
            return pixels * (pixel_sizes / tomogram.voxel_size)[:, None]
        return pixels / scale_factor(tomogram, output_pixel_size)

    return _read_particles(path, tomograms, ("rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"), to_voxels)


def relion5_centre(tomogram: TomogramInfo) -> np.ndarray:
    """RELION 5's tomogram centre in 0-based voxel indices (x, y, z): ``size / 2`` (float)."""
    return np.asarray(tomogram.shape, dtype=np.float64) / 2.0


def relion5_rows(picks: Sequence[PickedTomogram], output_pixel_size: Optional[float] = None) -> list[tuple]:
    rows = []
    checked = check_picks(picks)
    names = class_name_map(checked)
    extra = relion_extra_columns([coords for _, coords in checked])
    for tomogram, coords in checked:
        centred = (coords.xyz - relion5_centre(tomogram)) * tomogram.voxel_size
        pixels = coords.xyz * scale_factor(tomogram, output_pixel_size)
        pixel_size = coordinate_pixel_size(tomogram, output_pixel_size)
        for angst, pixel, angles, score, cls, more in zip(centred, pixels, angles_or_zero(coords),
                                                          score_values(coords), class_numbers(coords, names),
                                                          relion_extra_values(coords, extra)):
            rows.append((tomogram.name, *map(float, angst), *map(float, pixel), *map(float, angles), int(cls),
                         float(score), pixel_size, *more))
    return rows


def write_relion5(path, picks: Sequence[PickedTomogram], output_pixel_size: Optional[float] = None) -> list[Path]:
    """RELION 5 particles STAR: ``rlnCenteredCoordinate*Angst`` and ``rlnCoordinate*`` in output pixels."""
    rows = relion5_rows(picks, output_pixel_size)
    columns = RELION5_COLUMNS + relion_extra_columns([coords for _, coords in check_picks(picks)])
    text = star_text("particles", columns, rows, header=f"\n{RELION5_VERSION_COMMENT}\n")
    return write_single_file(path, "RELION 5", text, picks)


def particles_star_format(path) -> str:
    """``relion5`` for a particles STAR file with RELION 5's centred Å columns, else ``relion4`` (which reader of
    :func:`read_relion4` and :func:`read_relion5` it needs)."""
    columns = read_star(Path(path), "particles", ["rlnTomoName"]).getColumnNames()
    return "relion5" if "rlnCenteredCoordinateXAngst" in columns else "relion4"


def read_relion5(path, tomograms: Sequence[TomogramInfo], output_pixel_size: Optional[float] = None
                 ) -> list[CoordinateTable]:
    """Read a RELION 5 particles STAR (centred Å) back into 0-based tomogram voxels."""
    check_output_pixel_size(output_pixel_size)
    return _read_particles(
        path, tomograms, ("rlnCenteredCoordinateXAngst", "rlnCenteredCoordinateYAngst", "rlnCenteredCoordinateZAngst"),
        lambda tomogram, angst, _: angst / tomogram.voxel_size + relion5_centre(tomogram))
