"""Dynamo tables (``.tbl``) and their tomogram index (``.doc``).

Dynamo (``dynamo``, ``<out>.tbl`` + ``<out>.doc``)
    40 numeric columns, 1-based column meaning: 1 tag (1..N), 2 aligned = 1, 3 averaged = 1,
    4-6 shifts 0, 7-9 tdrot, tilt, narot (Dynamo's ZXZ angles of the table's RELION angles,
    :func:`deepict.orientations.relion_to_dynamo`; 0 without them), 10 cc = score, 13 ftype = 1,
    14/15 tilt range (default -60/60),
    20 tomogram index (1-based line of the ``.doc`` file, which maps index -> tomogram path),
    22 class, 24-26 x y z. Like Scipion's dynamo plugin, x y z are the 0-based corner-frame values
    **without +1** even though Dynamo itself is 1-based — consistent with every Scipion plugin, a
    half-voxel-scale difference that sub-tomogram alignment absorbs. The ``.doc`` points at the
    tomograms the picks were made on, so the ``.tbl`` is always in their voxels: an output pixel
    size other than the tomograms' voxel size is refused (the pair would disagree).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from deepict.conventions import voxel_sizes_differ
from deepict.errors import InputFileError, ParameterError
from deepict.formats.classes import class_map_path, class_map_text, class_name_map, class_numbers
from deepict.formats.oriented import angles_or_zero, with_read_orientation
from deepict.formats.picks import (PickedTomogram, TomogramInfo, check_picks, format_number, scale_factor,
                                   score_values, table_from)
from deepict.formats.staging import Output, check_file_target, write_all_or_nothing
from deepict.io import CoordinateTable
from deepict.orientations import dynamo_to_relion, relion_to_dynamo

DYNAMO_COLUMNS = 40


def dynamo_doc_path(tbl_path) -> Path:
    return Path(tbl_path).with_suffix(".doc")


def dynamo_rows(picks: Sequence[PickedTomogram], output_pixel_size: Optional[float] = None,
                tilt_range: tuple = (-60.0, 60.0)) -> np.ndarray:
    """The (N, 40) Dynamo table (see the module docstring for the columns)."""
    blocks = []
    tag = 0
    checked = check_picks(picks)
    names = class_name_map(checked)
    for index, (tomogram, coords) in enumerate(checked, start=1):
        n = len(coords)
        block = np.zeros((n, DYNAMO_COLUMNS), dtype=np.float64)
        block[:, 0] = np.arange(tag + 1, tag + n + 1)
        block[:, 1] = 1
        block[:, 2] = 1
        angles = angles_or_zero(coords)
        if np.any(angles != 0):
            block[:, 6:9] = np.stack(relion_to_dynamo(*angles.T), axis=1)
        block[:, 9] = score_values(coords)
        block[:, 12] = 1
        block[:, 13], block[:, 14] = float(tilt_range[0]), float(tilt_range[1])
        block[:, 19] = index
        block[:, 21] = class_numbers(coords, names)
        block[:, 23:26] = coords.xyz * scale_factor(tomogram, output_pixel_size)
        blocks.append(block)
        tag += n
    return np.concatenate(blocks) if blocks else np.zeros((0, DYNAMO_COLUMNS))


_DYNAMO_INTEGER_COLUMNS = {0, 1, 2, 12, 19, 21}


def write_dynamo(path, picks: Sequence[PickedTomogram], output_pixel_size: Optional[float] = None,
                 tilt_range: tuple = (-60.0, 60.0)) -> list[Path]:
    """Dynamo ``.tbl`` at ``path`` and the ``.doc`` (index -> tomogram path) beside it."""
    path = Path(path)
    if path.suffix != ".tbl":
        raise ParameterError(f"A Dynamo table must end in .tbl, got {path.name}.")
    checked = check_picks(picks)
    missing = [t.name for t, _ in checked if not t.path]
    if missing:
        raise ParameterError(f"Dynamo's .doc file needs the tomogram file path of {missing}.")
    _check_dynamo_pixel_size(checked, output_pixel_size)
    table = dynamo_rows(checked, output_pixel_size, tilt_range)
    lines = [" ".join(str(int(v)) if j in _DYNAMO_INTEGER_COLUMNS else format_number(v) for j, v in enumerate(row))
             for row in table]
    # Absolute, links kept: the path given (a Scipion project's link to the tomogram), not where a link ends.
    doc = [f"{i} {os.path.abspath(t.path)}" for i, (t, _) in enumerate(checked, start=1)]
    outputs = [Output(path, "".join(line + "\n" for line in lines)),
               Output(dynamo_doc_path(path), "".join(line + "\n" for line in doc)),
               Output(class_map_path(path), class_map_text(class_name_map(checked)))]
    for output in outputs:
        check_file_target(output.path, "Dynamo")
    write_all_or_nothing(outputs)
    return [output.path for output in outputs if output.content is not None]


def _check_dynamo_pixel_size(picks: Sequence[PickedTomogram], output_pixel_size: Optional[float]) -> None:
    """The .doc names the picked tomograms, so the .tbl must be in their voxels (else the pair disagrees)."""
    if output_pixel_size is None:
        return
    for tomogram, _ in picks:
        if voxel_sizes_differ(output_pixel_size, tomogram.voxel_size):
            raise ParameterError(
                f"Dynamo's .doc points at {tomogram.path} ({tomogram.voxel_size:g} Å/voxel), so its .tbl must be in "
                f"those voxels, not in {output_pixel_size:g} Å pixels: export Dynamo without an output pixel size "
                "(the tomograms' voxel size).")


def read_dynamo_doc(path) -> dict:
    """``{tomogram index: path}`` from a Dynamo ``.doc`` file."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "Dynamo .doc file not found", "It is written next to the .tbl file.")
    mapping = {}
    for line in path.read_text().splitlines():
        if line.strip():
            index, _, volume = line.strip().partition(" ")
            try:
                mapping[int(index)] = volume.strip()
            except ValueError:
                raise InputFileError(path, f"bad line {line!r}", "Each line must be 'index path'.") from None
    return mapping


def read_dynamo_table(path) -> np.ndarray:
    """The numeric (N, >=26) array of a Dynamo ``.tbl``."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "Dynamo table not found", "Check the path.")
    try:
        with open(path) as handle:
            rows = [line.split() for line in handle if line.strip()]
        table = np.array(rows, dtype=np.float64) if rows else np.zeros((0, DYNAMO_COLUMNS))
    except ValueError as exc:
        raise InputFileError(path, f"not a numeric Dynamo table ({exc})", "Give a .tbl file.") from exc
    if table.ndim != 2 or (len(table) and table.shape[1] < 26):
        raise InputFileError(path, "a Dynamo table needs at least 26 columns per row", "Give a .tbl file.")
    return table


def read_dynamo(path, tomograms: Sequence[TomogramInfo], output_pixel_size: Optional[float] = None
                ) -> list[CoordinateTable]:
    """Read a ``.tbl`` back; column 20 is the 1-based index into ``tomograms``."""
    table = read_dynamo_table(path)
    indices = table[:, 19].astype(np.int64) if len(table) else np.zeros(0, dtype=np.int64)
    bad = sorted(set(indices.tolist()) - set(range(1, len(tomograms) + 1)))
    if bad:
        raise InputFileError(path, f"refers to tomogram index(es) {bad} but {len(tomograms)} tomogram(s) were given",
                             "Give the tomograms in the order of the .doc file.")
    out = []
    for i, tomogram in enumerate(tomograms, start=1):
        rows = table[indices == i]
        xyz = rows[:, 23:26] / scale_factor(tomogram, output_pixel_size)
        angles = np.stack(dynamo_to_relion(*rows[:, 6:9].T), axis=1) if np.any(rows[:, 6:9] != 0) else rows[:, 6:9]
        out.append(with_read_orientation(table_from(tomogram, xyz, rows[:, 9], rows[:, 21]), angles))
    return out
