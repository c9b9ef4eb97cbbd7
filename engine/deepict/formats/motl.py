"""DeePiCt motive lists (20-column CSV), one per tomogram.

DeePiCt motive list (``motl``, 20 comma-separated columns, no header, one file per tomogram)
    col 1 score, 2/3 x/y, 4 index (1-based), 8/9/10 x/y/z, 20 class, others 0 — as DeePiCt's
    ``build_tom_motive_list`` writes (0-based values, no +1). Rows keep the input order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from deepict.errors import InputFileError, ParameterError
from deepict.formats.classes import class_map_path, class_map_text, class_name_map, class_numbers
from deepict.formats.picks import (PickedTomogram, TomogramInfo, check_picks, format_number, scale_factor,
                                   score_values, table_from)
from deepict.formats.staging import Output, check_file_target, check_folder_target, write_all_or_nothing
from deepict.io import CoordinateTable

MOTL_COLUMNS = 20


def motl_file_name(tomogram: TomogramInfo) -> str:
    return f"{tomogram.name}.csv"


def motl_rows(tomogram: TomogramInfo, coords: CoordinateTable, output_pixel_size: Optional[float] = None,
              names: Optional[dict] = None) -> np.ndarray:
    """The (N, 20) motive list; ``names`` numbers class names (see :func:`class_name_map`)."""
    xyz = coords.xyz * scale_factor(tomogram, output_pixel_size)
    table = np.zeros((len(coords), MOTL_COLUMNS), dtype=np.float64)
    table[:, 0] = score_values(coords)
    table[:, 1:3] = xyz[:, :2]
    table[:, 3] = np.arange(1, len(coords) + 1)
    table[:, 7:10] = xyz
    table[:, 19] = class_numbers(coords, names)
    return table


def _motl_text(table: np.ndarray) -> str:
    return "".join(",".join(str(int(v)) if j in (3, 19) else format_number(v) for j, v in enumerate(row)) + "\n"
                   for row in table)


def write_motl(path, picks: Sequence[PickedTomogram], output_pixel_size: Optional[float] = None) -> list[Path]:
    """DeePiCt 20-column motive lists.

    ``path`` ending in ``.csv`` with a single tomogram: that file. Otherwise ``path`` is a folder
    receiving ``<tsId>.csv`` per tomogram (all or none).
    """
    checked = check_picks(picks)
    names = class_name_map(checked)
    path = Path(path)
    texts = {motl_file_name(t): _motl_text(motl_rows(t, c, output_pixel_size, names)) for t, c in checked}
    class_map = Output(class_map_path(path), class_map_text(names))
    if path.suffix.lower() == ".csv":
        if len(checked) != 1:
            raise ParameterError(f"A motl file holds one tomogram; {len(checked)} were given. "
                                 "Give a folder as output to get one <tsId>.csv per tomogram.")
        outputs = [Output(path, next(iter(texts.values()))), class_map]
        for output in outputs:
            check_file_target(output.path, "motl")
        written = [path]
    else:
        check_folder_target(path, ".csv", "motl")
        check_file_target(class_map.path, "motl")
        outputs = [Output(path, texts), class_map]
        written = [path / name for name in texts]
    write_all_or_nothing(outputs)
    return written + ([class_map.path] if class_map.content is not None else [])


def read_motl_file(path) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "motive list not found", "Check the path.")
    rows = [line.strip().split(",") for line in path.read_text().splitlines() if line.strip()]
    try:
        table = np.array(rows, dtype=np.float64) if rows else np.zeros((0, MOTL_COLUMNS))
    except ValueError as exc:
        raise InputFileError(path, f"not a numeric 20-column motive list ({exc})", "Give a DeePiCt motl CSV.") from exc
    if table.ndim != 2 or table.shape[1] != MOTL_COLUMNS:
        raise InputFileError(path, f"expected {MOTL_COLUMNS} columns per row", "Give a DeePiCt motl CSV.")
    return table


def read_motl(path, tomograms: Sequence[TomogramInfo], output_pixel_size: Optional[float] = None
              ) -> list[CoordinateTable]:
    """Read motive list(s) written by :func:`write_motl` back into tomogram voxels."""
    path = Path(path)
    paths = [path] if path.suffix.lower() == ".csv" else [path / motl_file_name(t) for t in tomograms]
    if len(paths) != len(tomograms):
        raise ParameterError("A single motl file belongs to exactly one tomogram.")
    out = []
    for file, tomogram in zip(paths, tomograms):
        table = read_motl_file(file)
        xyz = table[:, 7:10] / scale_factor(tomogram, output_pixel_size)
        out.append(table_from(tomogram, xyz, table[:, 0], table[:, 19]))
    return out
