"""Warp / M particle STAR files, one per tomogram in a folder.

Warp / M (``warp``, a folder with one ``<tsId>.star`` per tomogram, unnamed ``data_`` table)
    ``rlnCoordinateX/Y/Z`` in pixels of the output pixel size, 0 = centre of the first voxel (Warp's
    convention, same as the corner frame); ``rlnMicrographName = <tsId>.tomostar``. Run WarpTools
    ``ts_export_particles`` with ``--coords_angpix`` = the output pixel size (Scipion's own Warp
    export writes normalised coordinates instead; these are pixels). ``rlnAngleRot/Tilt/Psi`` = the
    table's RELION angles (Warp and M use RELION's convention), 0 without them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from deepict.errors import InputFileError
from deepict.formats.oriented import RELION_ANGLE_COLUMNS, angles_or_zero, with_read_orientation
from deepict.formats.picks import PickedTomogram, TomogramInfo, check_picks, scale_factor, score_values, table_from
from deepict.formats.staging import Output, check_folder_target, write_all_or_nothing
from deepict.formats.star import read_star, star_text
from deepict.io import CoordinateTable

WARP_COLUMNS = [
    "rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ",
    "rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi",
    "rlnMicrographName", "rlnAutopickFigureOfMerit"]


def warp_file_name(tomogram: TomogramInfo) -> str:
    return f"{tomogram.name}.star"


def warp_micrograph_name(tomogram: TomogramInfo) -> str:
    return f"{tomogram.name}.tomostar"


def write_warp(folder, picks: Sequence[PickedTomogram], output_pixel_size: Optional[float] = None) -> list[Path]:
    """One Warp/M STAR per tomogram, ``<folder>/<tsId>.star``; all appear together or none does."""
    folder = Path(folder)
    checked = check_picks(picks)
    files = {}
    for tomogram, coords in checked:
        xyz = coords.xyz * scale_factor(tomogram, output_pixel_size)
        micrograph = warp_micrograph_name(tomogram)
        rows = [(float(x), float(y), float(z), *map(float, angles), micrograph, float(score))
                for (x, y, z), angles, score in zip(xyz, angles_or_zero(coords), score_values(coords))]
        files[warp_file_name(tomogram)] = star_text(None, WARP_COLUMNS, rows)
    check_folder_target(folder, ".star", "Warp")
    write_all_or_nothing([Output(folder, files)])
    return [folder / name for name in files]


def read_warp(folder, tomograms: Sequence[TomogramInfo], output_pixel_size: Optional[float] = None
              ) -> list[CoordinateTable]:
    """Read ``<folder>/<tsId>.star`` for every tomogram back into tomogram voxels (class = 1)."""
    out = []
    for tomogram in tomograms:
        path = Path(folder) / warp_file_name(tomogram)
        table = read_star(path, None, ["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"])
        rows = list(table)
        names = {str(r.get("rlnMicrographName", warp_micrograph_name(tomogram))) for r in rows}
        if names - {warp_micrograph_name(tomogram)}:
            raise InputFileError(path, f"rlnMicrographName {sorted(names)} does not match "
                                       f"{warp_micrograph_name(tomogram)}", "Check which tomogram the file belongs to.")
        factor = scale_factor(tomogram, output_pixel_size)
        xyz = np.array([(r.rlnCoordinateX, r.rlnCoordinateY, r.rlnCoordinateZ) for r in rows],
                       dtype=np.float64).reshape(-1, 3) / factor
        read = table_from(tomogram, xyz, [r.get("rlnAutopickFigureOfMerit", 0.0) for r in rows], np.ones(len(rows)))
        out.append(with_read_orientation(read, [[float(r.get(name, 0.0)) for name in RELION_ANGLE_COLUMNS]
                                                for r in rows]))
    return out
