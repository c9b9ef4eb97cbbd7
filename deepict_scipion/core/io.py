"""Volumes (MRC) and coordinate tables on disk.

Volumes are numpy arrays in (z, y, x) order, x being the fastest MRC axis. Plain ``.mrc``
files are memory-mapped so that tomograms larger than RAM can be read slice by slice;
``.mrc.gz`` files are decompressed into memory. Every volume carries its voxel size in Å.

Every write is atomic: the data go to a temporary file in the target folder which is renamed
over the target only once complete, so an interrupted run never leaves a half-written file
where a finished one is expected.

Coordinate tables are CSV files with a header naming at least ``x,y,z`` (0-based voxel indices
of the tomogram, x = fastest MRC axis); other columns are kept as extra columns. Lines starting
with ``#`` carry metadata such as ``# voxel_size_angstrom: 13.48``. Headerless 3-column
(x, y, z) and DeePiCt 20-column motive lists (x, y, z in columns 8-10, score in column 1) are read too.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import mmap
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, NamedTuple

import mrcfile
import numpy as np

from .errors import InputFileError

#: MRC data types we read and write (mrcfile maps them to modes 0, 1, 2, 6 and 12).
SUPPORTED_DTYPES = (np.int8, np.int16, np.uint16, np.float16, np.float32, np.uint8)

#: How many z slices are touched at once when scanning a memory-mapped volume.
SLAB_SLICES = 32


class Volume(NamedTuple):
    """A volume's voxels (z, y, x) and its voxel size in Å (``None`` when the header has none)."""

    data: np.ndarray
    voxel_size: float | None
    path: str


def _header_voxel_size(mrc) -> float | None:
    size = float(mrc.voxel_size.x)
    return size if size > 0 else None


def read_volume(path, check_finite: bool = True) -> Volume:
    """Open an MRC volume (``.mrc``, ``.rec``, ``.map`` memory-mapped; ``.mrc.gz`` in memory).

    Raises :class:`InputFileError` for missing, truncated or corrupt files, unsupported data
    types, stacks, and (if ``check_finite``) NaN or infinite voxels.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "file not found", "Check the path, or import the tomogram again.")
    try:
        if path.suffix == ".gz":
            with mrcfile.open(str(path), mode="r", permissive=False) as mrc:
                data = np.asarray(mrc.data)
                voxel_size = _header_voxel_size(mrc)
        else:
            mrc = mrcfile.mmap(str(path), mode="r", permissive=False)
            data = mrc.data
            voxel_size = _header_voxel_size(mrc)
    except (ValueError, OSError, EOFError) as exc:
        raise InputFileError(
            path, f"not a readable MRC file ({exc})",
            "The file is corrupt or truncated: copy or reconstruct it again.") from exc
    if data is None or data.ndim != 3:
        raise InputFileError(path, f"expected a 3D volume, found data of shape {getattr(data, 'shape', None)}",
                             "Give a single tomogram, not an image stack or a 2D image.")
    if data.dtype.type not in SUPPORTED_DTYPES:
        raise InputFileError(path, f"unsupported MRC data type {data.dtype}",
                             "Convert the volume to float32, float16, int8, int16 or uint16 MRC.")
    if check_finite:
        check_finite_volume(data, path)
    return Volume(data, voxel_size, str(path))


def read_voxel_size(path) -> float | None:
    """The voxel size in Å stored in an MRC header, or ``None`` if the header has none."""
    return read_volume(path, check_finite=False).voxel_size


def read_slab(data: np.ndarray, z0: int, z1: int) -> np.ndarray:
    """Slices ``z0:z1`` of a volume as a new float32 array.

    Memory-mapped volumes are read with ordinary file reads rather than through the mapping, so
    that scanning a tomogram larger than RAM does not leave it resident in the process.
    """
    z0, z1 = max(0, z0), min(data.shape[0], z1)
    if isinstance(data, np.memmap) and isinstance(data.base, mmap.mmap) and data.flags.c_contiguous:
        plane = data.shape[1] * data.shape[2]
        raw = np.fromfile(data.filename, dtype=data.dtype, count=(z1 - z0) * plane,
                          offset=data.offset + z0 * plane * data.dtype.itemsize)
        return raw.reshape(z1 - z0, data.shape[1], data.shape[2]).astype(np.float32)
    return np.array(data[z0:z1], dtype=np.float32)


def iter_slabs(data: np.ndarray, slices: int = SLAB_SLICES) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(z0, float32 slab)`` pieces of a (possibly memory-mapped) volume along z."""
    for z0 in range(0, data.shape[0], slices):
        yield z0, read_slab(data, z0, z0 + slices)


def check_finite_volume(data: np.ndarray, path) -> None:
    """Raise :class:`InputFileError` if a float volume holds NaN or infinite voxels."""
    if not np.issubdtype(data.dtype, np.floating):
        return
    for z0, slab in iter_slabs(data):
        if not np.isfinite(slab).all():
            bad = int(np.count_nonzero(~np.isfinite(slab)))
            raise InputFileError(
                path, f"holds NaN or infinite voxels (at least {bad} from slice z={z0})",
                "Fix the reconstruction, or replace the bad voxels (e.g. with the mean) before running DeePiCt.")


#: Voxels read at once when scanning a whole volume (4 M voxels: 32 MB as float64), so scans of
#: big tomograms stay small in memory.
READ_CHUNK_VOXELS = 4 * 1024 ** 2


def slices_per_chunk(shape) -> int:
    """How many z slices of a (z, y, x) volume make one read chunk of about :data:`READ_CHUNK_VOXELS`."""
    return max(1, READ_CHUNK_VOXELS // max(1, int(shape[1]) * int(shape[2])))


def volume_mean_std(data: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of a whole volume, accumulated chunk by chunk in float64."""
    total = 0.0
    total_sq = 0.0
    for _, slab in iter_slabs(data, slices_per_chunk(data.shape)):
        slab = slab.astype(np.float64)
        total += slab.sum()
        slab *= slab
        total_sq += slab.sum()
    n = data.size
    mean = total / n
    std = float(np.sqrt(max(total_sq / n - mean * mean, 0.0)))
    return float(mean), std


def _temporary_sibling(path: Path) -> Path:
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(handle)
    return Path(name)


@contextlib.contextmanager
def atomic_path(path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_sibling(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _as_mrc_dtype(data: np.ndarray) -> np.ndarray:
    if data.dtype == np.bool_:
        return data.astype(np.int8)
    if data.dtype.type in SUPPORTED_DTYPES:
        return data
    return data.astype(np.float32)


def write_volume(path, data: np.ndarray, voxel_size: float) -> None:
    """Write a (z, y, x) array as MRC with its voxel size, atomically."""
    data = _as_mrc_dtype(np.asarray(data))
    with atomic_path(path) as tmp:
        with mrcfile.new(str(tmp), overwrite=True) as mrc:
            mrc.set_data(data)
            mrc.voxel_size = float(voxel_size)
            mrc.update_header_stats()


@contextlib.contextmanager
def volume_writer(path, shape_zyx, dtype, voxel_size: float):
    """Stream a volume to disk in z slabs: yields ``write(z0, slab)``; the file appears only on success.

    Slabs are written with ordinary file writes (not a memory map), so a tomogram larger than RAM
    can be produced with memory bounded by one slab.
    """
    shape_zyx = tuple(int(s) for s in shape_zyx)
    dtype = np.dtype(dtype)
    with atomic_path(path) as tmp:
        with mrcfile.new_mmap(str(tmp), shape=shape_zyx, mrc_mode=mrcfile.utils.mode_from_dtype(dtype),
                              overwrite=True) as mrc:
            mrc.voxel_size = float(voxel_size)
            mrc.header.rms = -1  # statistics are not computed for streamed volumes
            offset = mrc.header.nbytes + mrc.extended_header.nbytes
        plane_bytes = shape_zyx[1] * shape_zyx[2] * dtype.itemsize
        with open(tmp, "r+b") as handle:
            def write(z0: int, slab: np.ndarray) -> None:
                handle.seek(offset + z0 * plane_bytes)
                handle.write(np.ascontiguousarray(slab, dtype=dtype).tobytes())
            yield write


# --------------------------------------------------------------------------------------------
# Coordinate tables
# --------------------------------------------------------------------------------------------

VOXEL_SIZE_KEY = "voxel_size_angstrom"


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


def read_coordinates(path) -> CoordinateTable:
    """Read a coordinate CSV (see the module docstring for the accepted layouts)."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "coordinate file not found", "Check the path.")
    opener = gzip.open if path.suffix == ".gz" else open
    metadata = {}
    rows = []
    with opener(path, "rt", newline="") as handle:
        for line in handle:
            stripped = line.strip()
            if not stripped:
                continue
            if stripped.startswith("#"):
                key, _, value = stripped.lstrip("#").partition(":")
                metadata[key.strip()] = value.strip()
                continue
            delimiter = "," if "," in stripped else None
            rows.append([c.strip() for c in (stripped.split(delimiter) if delimiter else stripped.split())])
    voxel_size = float(metadata[VOXEL_SIZE_KEY]) if VOXEL_SIZE_KEY in metadata else None
    if not rows:
        return CoordinateTable(np.zeros((0, 3)), {}, voxel_size)
    first = rows[0]
    if all(_is_number(c) for c in first):
        return _headerless_table(path, rows, voxel_size)
    header = [h.lower() for h in first]
    missing = [c for c in ("x", "y", "z") if c not in header]
    if missing:
        raise InputFileError(path, f"the header {first} lacks the column(s) {missing}",
                             "Write a header line with x,y,z (0-based voxel coordinates) and the values below it.")
    body = rows[1:]
    if any(len(r) != len(header) for r in body):
        raise InputFileError(path, "rows have a different number of fields than the header",
                             "Repair the CSV so that every row has one value per header column.")
    columns = {name: _parse_column([r[i] for r in body]) for i, name in enumerate(header)}
    try:
        xyz = np.stack([columns.pop(c).astype(np.float64) for c in ("x", "y", "z")], axis=1) if body \
            else np.zeros((0, 3))
    except (TypeError, ValueError) as exc:
        raise InputFileError(path, "x, y or z holds a value that is not a number",
                             "Give numeric voxel coordinates.") from exc
    _check_finite_coordinates(xyz, path)
    return CoordinateTable(xyz, columns, voxel_size)


def _headerless_table(path: Path, rows: list[list[str]], voxel_size) -> CoordinateTable:
    width = len(rows[0])
    if any(len(r) != width for r in rows) or width not in (3, 4, 20):
        raise InputFileError(path, "a headerless table must have 3 (x,y,z), 4 (score,x,y,z) or 20 (motl) columns",
                             "Add a header line naming the x,y,z columns.")
    values = np.array(rows, dtype=np.float64)
    if width == 3:
        table = CoordinateTable(values, {}, voxel_size)
    elif width == 4:
        table = CoordinateTable(values[:, 1:4], {"score": values[:, 0]}, voxel_size)
    else:
        table = CoordinateTable(values[:, 7:10], {"score": values[:, 0]}, voxel_size)
    _check_finite_coordinates(table.xyz, path)
    return table


def _check_finite_coordinates(xyz: np.ndarray, path) -> None:
    if not np.isfinite(xyz).all():
        raise InputFileError(path, "holds NaN or infinite coordinates", "Remove or fix those rows.")


def check_coordinates_in_volume(xyz: np.ndarray, shape_zyx, path) -> None:
    """Raise :class:`InputFileError` if any coordinate lies outside a volume of ``shape_zyx``."""
    if len(xyz) == 0:
        return
    upper = np.array(shape_zyx[::-1], dtype=np.float64) - 0.5
    outside = np.any((xyz < -0.5) | (xyz > upper), axis=1)
    if outside.any():
        first = xyz[np.argmax(outside)]
        raise InputFileError(
            path, f"{int(outside.sum())} coordinate(s) lie outside the tomogram of size "
                  f"x,y,z = {tuple(int(s) for s in shape_zyx[::-1])}, e.g. {tuple(np.round(first, 2))}",
            "Coordinates must be 0-based voxels of this tomogram: check the binning / pixel size "
            "they were picked at and that they belong to this tomogram.")


def write_coordinates(path, table: CoordinateTable) -> None:
    """Write a coordinate CSV (header ``x,y,z,<extra columns>``) atomically, with its voxel size."""
    names = ["x", "y", "z"] + list(table.columns)
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as handle:
            if table.voxel_size:
                handle.write(f"# {VOXEL_SIZE_KEY}: {table.voxel_size:g}\n")
            writer = csv.writer(handle)
            writer.writerow(names)
            extras = [table.columns[name] for name in table.columns]
            for i, (x, y, z) in enumerate(table.xyz):
                writer.writerow([_fmt(x), _fmt(y), _fmt(z)] + [_fmt(col[i]) for col in extras])


def _fmt(value) -> str:
    if isinstance(value, (float, np.floating)):
        text = f"{float(value):.4f}".rstrip("0").rstrip(".")
        return text if text != "-0" else "0"
    return str(value)
