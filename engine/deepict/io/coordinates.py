"""Coordinate tables (CSV) on disk.

Coordinate tables are UTF-8 CSV files (a byte-order mark and quoted fields are fine) with a header
naming at least ``x,y,z`` (0-based voxel indices of the tomogram, x = fastest MRC axis); other
columns are kept as extra columns (``score`` must be numeric, a numeric ``class`` whole). Lines
starting with ``#`` carry metadata such as ``# voxel_size_angstrom: 13.48``. Headerless 3-column
(x, y, z) and DeePiCt 20-column motive lists (x, y, z in columns 8-10, score in column 1) are read
too. A row repeated verbatim is dropped with a warning, so that every command counts each particle
once; two different rows at the same position are refused. Tables are written atomically.
"""

from __future__ import annotations

import csv
import gzip
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deepict.conventions import ANGLE_COLUMNS, CLASS_COLUMN, POSITION_COLUMNS, SCORE_COLUMN, VOXEL_SIZE_KEY
from deepict.errors import InputFileError
from deepict.io.files import atomic_path, check_readable


@dataclass
class CoordinateTable:
    """Particle positions ``xyz`` (N, 3; 0-based voxels, x fastest) with optional extra columns."""

    xyz: np.ndarray
    columns: dict = field(default_factory=dict)
    voxel_size: float | None = None

    def __post_init__(self):
        self.xyz = np.asarray(self.xyz, dtype=np.float64).reshape(-1, 3)
        self.columns = {k: np.asarray(v) for k, v in self.columns.items()}

    def __len__(self):
        return len(self.xyz)

    def column(self, name, default=0.0) -> np.ndarray:
        """An extra column, or a column filled with ``default`` when the table lacks it."""
        if name in self.columns:
            return self.columns[name]
        return np.full(len(self), default)

    def rows(self, selection) -> "CoordinateTable":
        """The table of the rows ``selection`` (a boolean mask or indices) picks, with every column."""
        return CoordinateTable(self.xyz[selection], {k: v[selection] for k, v in self.columns.items()}, self.voxel_size)

    def angles(self) -> np.ndarray | None:
        """(N, 3) orientations as RELION angles ``rot, tilt, psi`` (degrees), or ``None`` without all three columns."""
        if not all(name in self.columns for name in ANGLE_COLUMNS):
            return None
        return np.stack([np.asarray(self.columns[name], dtype=np.float64) for name in ANGLE_COLUMNS], axis=1)


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _parse_column(values: list[str]) -> np.ndarray:
    if all(_is_number(v) for v in values):
        return np.array([float(v) for v in values])
    return np.array(values, dtype=object)


#: Bytes 208-211 of every MRC file spell "MAP ": a volume given where a table is expected.
_MRC_MAP_TAG = slice(208, 212)


def _table_text(path: Path) -> str:
    """The text of a coordinate table; refuses volumes, binary files and text that is not UTF-8."""
    try:
        with (gzip.open(path) if path.suffix == ".gz" else open(path, "rb")) as handle:
            head = handle.read(1024)
            if head[_MRC_MAP_TAG] == b"MAP ":
                raise InputFileError(path, "is an MRC volume, not a coordinate table",
                                     "Give the CSV file of x,y,z coordinates here; volumes go to the "
                                     "tomogram or mask options.")
            raw = head + handle.read()
    except (OSError, EOFError) as exc:  # a damaged .gz (gzip.BadGzipFile is an OSError)
        raise InputFileError(path, f"cannot be decompressed ({exc})",
                             "Give the table uncompressed, or compress it again with gzip.") from None
    if b"\0" in raw:
        raise InputFileError(path, "is a binary file, not a coordinate table (CSV text)",
                             "Give a CSV text file with a header line x,y,z and one particle per line.")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputFileError(
            path, f"is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}: latin-1 or another encoding?)",
            f"Save it as UTF-8, e.g. 'iconv -f latin1 -t utf-8 {path.name} > fixed.csv'.") from None


def _split_row(line: str) -> list[str]:
    """The fields of one line: comma-separated (standard CSV quoting) or separated by whitespace."""
    if "," in line:
        return [cell.strip() for cell in next(csv.reader([line]))]
    return [cell.strip('"') for cell in line.split()]


def _metadata_voxel_size(path: Path, metadata: dict) -> float | None:
    if VOXEL_SIZE_KEY not in metadata:
        return None
    text = metadata[VOXEL_SIZE_KEY]
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (np.isfinite(value) and value > 0):
        raise InputFileError(path, f"its '# {VOXEL_SIZE_KEY}' line holds {text!r}, not a voxel size in Å",
                             f"Write a plain positive number of Å, e.g. '# {VOXEL_SIZE_KEY}: 13.48', or delete "
                             "the line.")
    return value


def read_coordinates(path) -> CoordinateTable:
    """Read a coordinate CSV (see the module docstring for the accepted layouts).

    Rows repeated verbatim are dropped with a warning on standard error (the Scipion run log).
    """
    path = check_readable(path, "coordinate file")
    metadata = {}
    rows = []  # (line number, fields)
    for number, line in enumerate(_table_text(path).splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            key, _, value = stripped.lstrip("#").partition(":")
            metadata[key.strip()] = value.strip()
            continue
        rows.append((number, _split_row(stripped)))
    voxel_size = _metadata_voxel_size(path, metadata)
    if not rows:
        return CoordinateTable(np.zeros((0, 3)), {}, voxel_size)
    if rows[0][1][0].startswith("data_"):  # a STAR file's first table
        raise InputFileError(path, "is a STAR file (RELION), not a coordinate table",
                             f"Convert it first: deepict import-star --star {path.name} --tomogram TOMOGRAM.mrc "
                             "--out picks/ (one CSV per tomogram; RELION 4 and 5 particles files).")
    headerless = all(_is_number(c) for c in rows[0][1])
    body = rows if headerless else rows[1:]
    fields = [r for _, r in body]
    table = _headerless_table(path, fields, voxel_size) if headerless else \
        _table_with_header(path, rows[0][1], fields, voxel_size)
    _check_standard_columns(path, table)
    return _without_repeated_rows(path, table, [n for n, _ in body])


def _table_with_header(path: Path, first: list[str], body: list[list[str]], voxel_size) -> CoordinateTable:
    header = [h.lower() for h in first]
    missing = [c for c in POSITION_COLUMNS if c not in header]
    if missing:
        raise InputFileError(path, f"the header {first} lacks the column(s) {', '.join(missing)}",
                             "Write a header line x,y,z (0-based voxel coordinates; fields separated by commas, "
                             "tabs or spaces, not semicolons) and the values below it.")
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:
        raise InputFileError(path, f"the header names the column(s) {', '.join(repeated)} more than once",
                             "Give every column its own name.")
    if any(len(r) != len(header) for r in body):
        raise InputFileError(path, "rows have a different number of fields than the header",
                             "Repair the CSV so that every row has one value per header column.")
    columns = {name: _parse_column([r[i] for r in body]) for i, name in enumerate(header)}
    try:
        # The positions leave the extra columns even without rows: a header-only table writes back as read.
        positions = [columns.pop(c) for c in POSITION_COLUMNS]
        xyz = np.stack([p.astype(np.float64) for p in positions], axis=1) if body else np.zeros((0, 3))
    except (TypeError, ValueError) as exc:
        raise InputFileError(path, "x, y or z holds a value that is not a number",
                             "Give numeric voxel coordinates.") from exc
    _check_finite_coordinates(xyz, path)
    return CoordinateTable(xyz, columns, voxel_size)


def _check_standard_columns(path: Path, table: CoordinateTable) -> None:
    """``score`` and the angles must hold finite numbers; a numeric ``class`` column whole numbers (names are fine)."""
    score = table.columns.get(SCORE_COLUMN)
    if score is not None and (score.dtype == object or not np.isfinite(score).all()):
        raise InputFileError(path, "its 'score' column holds values that are not finite numbers",
                             "Give a number for every score (or drop the column: picks then keep file order).")
    for name in ANGLE_COLUMNS:
        angle = table.columns.get(name)
        if angle is not None and (angle.dtype == object or not np.isfinite(angle).all()):
            raise InputFileError(path, f"its '{name}' column holds values that are not finite numbers",
                                 "Give every orientation as RELION angles rot, tilt, psi in degrees.")
    classes = table.columns.get(CLASS_COLUMN)
    if classes is not None and classes.dtype != object and \
            (not np.isfinite(classes).all() or np.any(classes != np.round(classes))):
        raise InputFileError(path, "its 'class' column holds numbers that are not whole",
                             "Give class numbers as whole numbers (1, 2, ...) or class names.")


def _without_repeated_rows(path: Path, table: CoordinateTable, line_numbers: list) -> CoordinateTable:
    """Drop rows repeated verbatim (a warning); refuse two different rows at the same position.

    A repeated particle would count twice everywhere (recall halves in evaluate, export writes it
    twice, training sees it twice), so every command reading the table sees it once.
    """
    first_at = {}
    keep = []
    dropped = []
    for i in range(len(table)):
        position = tuple(table.xyz[i])
        row = position + tuple(values[i] for values in table.columns.values())
        if position not in first_at:
            first_at[position] = (i, row)
            keep.append(i)
            continue
        j, previous = first_at[position]
        if row != previous:
            raise InputFileError(
                path, f"lines {line_numbers[j]} and {line_numbers[i]} hold the same position x,y,z = "
                      f"{', '.join(_fmt(v) for v in position)} with different values",
                "Keep one row per particle: remove the duplicate (was the table merged from two lists?).")
        dropped.append(line_numbers[i])
    if not dropped:
        return table
    shown = ", ".join(map(str, dropped[:5])) + (", ..." if len(dropped) > 5 else "")
    print(f"warning: {path}: {len(dropped)} repeated row(s) (line {shown}) ignored: each particle counts once",
          file=sys.stderr)
    return table.rows(keep)


def _headerless_table(path: Path, rows: list[list[str]], voxel_size) -> CoordinateTable:
    width = len(rows[0])
    if any(len(r) != width for r in rows) or width not in (3, 4, 20):
        raise InputFileError(path, "a headerless table must have 3 (x,y,z), 4 (score,x,y,z) or 20 (motl) columns",
                             "Add a header line naming the x,y,z columns.")
    try:
        values = np.array(rows, dtype=np.float64)
    except ValueError:
        raise InputFileError(path, "a headerless table holds a value that is not a number",
                             "Give numbers only, or add a header line naming the x,y,z columns.") from None
    if width == 3:
        table = CoordinateTable(values, {}, voxel_size)
    elif width == 4:
        table = CoordinateTable(values[:, 1:4], {SCORE_COLUMN: values[:, 0]}, voxel_size)
    else:
        table = CoordinateTable(values[:, 7:10], {SCORE_COLUMN: values[:, 0]}, voxel_size)
    _check_finite_coordinates(table.xyz, path)
    return table


def _check_finite_coordinates(xyz: np.ndarray, path) -> None:
    if not np.isfinite(xyz).all():
        raise InputFileError(path, "holds NaN or infinite coordinates", "Remove or fix those rows.")


#: Why coordinates that lie outside a volume would all fit it with x and z swapped: the usual cause when the columns
#: follow a numpy array's (z, y, x) order.
COLUMNS_IN_ZYX = "Are the columns in z, y, x order? They must be x, y, z (x = the fastest MRC axis)."


def check_coordinates_in_volume(xyz: np.ndarray, shape_zyx, path, swapped_cause: str = COLUMNS_IN_ZYX) -> None:
    """Raise :class:`InputFileError` if any coordinate lies outside a volume of ``shape_zyx``.

    When all of them would fit with x and z swapped, the message gives ``swapped_cause`` as the likely reason:
    a mix-up of the (z, y, x) order of arrays with the (x, y, z) order of coordinates, which otherwise passes
    unnoticed wherever the coordinates happen to fit both ways (RELION 5 then centres them on the wrong centre).
    """
    if len(xyz) == 0:
        return
    outside = _outside(xyz, shape_zyx)
    if outside.any():
        first = xyz[np.argmax(outside)]
        size = tuple(int(s) for s in shape_zyx[::-1])
        problem = f"{int(outside.sum())} coordinate(s) lie outside the tomogram of size x,y,z = {size}, e.g. " \
                  f"{tuple(np.round(first, 2))}"
        if not _outside(xyz, shape_zyx[::-1]).any():
            raise InputFileError(path, f"{problem}, but all would fit with x and z swapped", swapped_cause)
        raise InputFileError(
            path, problem,
            "Coordinates must be 0-based voxels of this tomogram: check the binning / pixel size "
            "they were picked at and that they belong to this tomogram.")


def _outside(xyz: np.ndarray, shape_zyx) -> np.ndarray:
    """Which rows of ``xyz`` lie outside a volume of ``shape_zyx`` (voxel centres 0 .. size - 1, half a voxel kept)."""
    upper = np.array(shape_zyx[::-1], dtype=np.float64) - 0.5
    return np.any((xyz < -0.5) | (xyz > upper), axis=1)


def write_coordinates(path, table: CoordinateTable) -> None:
    """Write a coordinate CSV (header ``x,y,z,<extra columns>``) atomically, with its voxel size."""
    names = list(POSITION_COLUMNS) + list(table.columns)
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as handle:
            if table.voxel_size:
                handle.write(f"# {VOXEL_SIZE_KEY}: {table.voxel_size:g}\n")
            writer = csv.writer(handle, lineterminator="\n")  # as the comment line above, not \r\n
            writer.writerow(names)
            extras = [table.columns[name] for name in table.columns]
            for i, (x, y, z) in enumerate(table.xyz):
                writer.writerow([_fmt(x), _fmt(y), _fmt(z)] + [_fmt(col[i]) for col in extras])


def _fmt(value) -> str:
    if isinstance(value, (float, np.floating)):
        text = f"{float(value):.4f}".rstrip("0").rstrip(".")
        return text if text != "-0" else "0"
    return str(value)
