"""Volumes (MRC) and coordinate tables on disk.

Volumes are numpy arrays in (z, y, x) order, x being the fastest MRC axis. Plain ``.mrc``
files are memory-mapped so that tomograms larger than RAM can be read slice by slice;
``.mrc.gz`` files are decompressed into memory. Every volume carries its voxel size in Å.

Every write is atomic: the data go to a hidden temporary file in the target folder which is
renamed over the target only once complete, so an interrupted run never leaves a half-written
file where a finished one is expected. Outputs get the usual permissions of new files (0666
less the umask). Temporary files and scratch folders carry the host and process id of their
writer, so that a later run removes the ones a killed run left behind.

Coordinate tables are UTF-8 CSV files (a byte-order mark and quoted fields are fine) with a header
naming at least ``x,y,z`` (0-based voxel indices of the tomogram, x = fastest MRC axis); other
columns are kept as extra columns (``score`` must be numeric, a numeric ``class`` whole). Lines
starting with ``#`` carry metadata such as ``# voxel_size_angstrom: 13.48``. Headerless 3-column
(x, y, z) and DeePiCt 20-column motive lists (x, y, z in columns 8-10, score in column 1) are read
too. A row repeated verbatim is dropped with a warning, so that every command counts each particle
once; two different rows at the same position are refused.
"""

from __future__ import annotations

import contextlib
import csv
import glob
import gzip
import mmap
import os
import re
import secrets
import shutil
import socket
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, NamedTuple

import mrcfile
import numpy as np

from deepict.errors import InputFileError, ParameterError

#: MRC data types we read and write (mrcfile maps them to modes 0, 1, 2, 6 and 12).
SUPPORTED_DTYPES = (np.int8, np.int16, np.uint16, np.float16, np.float32, np.uint8)

#: How many z slices are touched at once when scanning a memory-mapped volume.
SLAB_SLICES = 32


class Volume(NamedTuple):
    """A volume's voxels (z, y, x) and its voxel size in Å (``None`` when the header has none)."""

    data: np.ndarray
    voxel_size: float | None
    path: str


#: Relative difference between the x, y and z voxel sizes of a header still taken as cubic voxels.
ISOTROPY_TOLERANCE = 1e-3


def check_readable(path, what: str = "file") -> Path:
    """Refuse a ``path`` that is missing, a folder, or unreadable (permission), naming the cause."""
    path = Path(path)
    if path.is_dir():
        raise InputFileError(path, f"is a folder, not a {what}", f"Give the path of the {what} itself.")
    if not path.is_file():
        raise InputFileError(path, f"{what} not found", "Check the path.")
    try:
        with open(path, "rb"):
            pass
    except PermissionError:
        raise InputFileError(path, "cannot be read: permission denied",
                             "Ask its owner to make it readable (chmod a+r), or copy it to a folder "
                             "you can read.") from None
    return path


def _header_voxel_size(mrc, path) -> float | None:
    sizes = tuple(float(mrc.voxel_size[axis]) for axis in ("x", "y", "z"))
    if all(size <= 0 for size in sizes):
        return None
    if min(sizes) <= 0 or max(sizes) - min(sizes) > ISOTROPY_TOLERANCE * max(sizes):
        raise InputFileError(
            path, "has different voxel sizes along x, y, z ({:g}, {:g}, {:g} Å) in its header".format(*sizes),
            "DeePiCt needs cubic voxels: resample the tomogram to one voxel size, or, if the header is wrong, "
            "fix it (e.g. IMOD 'alterheader -del {0:g},{0:g},{0:g}').".format(sizes[0]))
    return sizes[0]


def read_volume(path, check_finite: bool = True) -> Volume:
    """Open an MRC volume (``.mrc``, ``.rec``, ``.map`` memory-mapped; ``.mrc.gz`` in memory).

    Raises :class:`InputFileError` for missing, unreadable, truncated or corrupt files, unsupported
    data types, images (one z slice), different voxel sizes along x, y, z, and (if ``check_finite``)
    NaN or infinite voxels.
    """
    path = check_readable(path, "volume")
    try:
        if path.suffix == ".gz":
            with mrcfile.open(str(path), mode="r", permissive=False) as mrc:
                data = np.asarray(mrc.data)
                voxel_size = _header_voxel_size(mrc, path)
        else:
            mrc = mrcfile.mmap(str(path), mode="r", permissive=False)
            data = mrc.data
            voxel_size = _header_voxel_size(mrc, path)
    except (ValueError, OSError, EOFError) as exc:
        raise InputFileError(
            path, f"not a readable MRC file ({exc})",
            "The file is corrupt or truncated: copy or reconstruct it again.") from exc
    if data is None or data.ndim != 3:
        raise InputFileError(path, f"expected a 3D volume, found data of shape {getattr(data, 'shape', None)}",
                             "Give a single tomogram, not an image stack or a 2D image.")
    if data.shape[0] == 1:
        raise InputFileError(path, f"is a 2D image (one z slice, shape z, y, x = {data.shape}), not a tomogram",
                             "Give the reconstructed 3D tomogram.")
    if data.dtype.type not in SUPPORTED_DTYPES:
        raise InputFileError(path, f"unsupported MRC data type {data.dtype}",
                             "Convert the volume to float32, float16, int8, int16 or uint16 MRC.")
    if check_finite:
        check_finite_volume(data, path)
    return Volume(data, voxel_size, str(path))


def read_voxel_size(path) -> float | None:
    """The voxel size in Å stored in an MRC header, or ``None`` if the header has none."""
    return read_volume(path, check_finite=False).voxel_size


def require_voxel_size(volume: Volume, given: float | None = None, option: str = "--voxel-size") -> float:
    """The voxel size to use for ``volume``: ``given`` (the user's ``option``), else its header's.

    Refuses a volume whose header has none (0) when the user gave none: guessing would silently
    mis-scale everything measured in Å (and a model trained on it would record no voxel size).
    """
    if given is not None:
        if not (np.isfinite(given) and given > 0):
            raise ParameterError(f"{option} must be a positive number of Å, got {given:g}")
        return float(given)
    if volume.voxel_size is None:
        raise InputFileError(volume.path, "has no voxel size in its header (0 Å)",
                             f"Give it with {option} (in Å), or fix the header "
                             "(e.g. IMOD 'alterheader -del 13.48,13.48,13.48').")
    return volume.voxel_size


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


# --------------------------------------------------------------------------------------------
# Atomic writes and scratch folders
# --------------------------------------------------------------------------------------------

TEMPORARY_SUFFIX = ".part"
SCRATCH_PREFIX = ".deepict-"
#: ``<host>-<pid>`` of the process owning a temporary file or scratch folder, inside its name.
_OWNER = re.compile(r"\.(?P<host>[A-Za-z0-9_]+)-(?P<pid>[0-9]+)\.[a-z0-9_]+(?:\.part)?$")
#: Bytes of the output name kept in a temporary name.
_NAME_KEEP = 180


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname())


def _owner_tag() -> str:
    return f"{_host()}-{os.getpid()}"


def _left_by_dead_process(name: str) -> bool:
    """Whether a temporary named ``name`` belongs to a process of this host that no longer runs.

    Temporaries of other hosts (a shared file system) and of running processes are never touched.
    """
    match = _OWNER.search(name)
    if not match or match["host"] != _host() or int(match["pid"]) == os.getpid():
        return False
    try:
        os.kill(int(match["pid"]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):
        pass  # another user's process runs under that id
    return False


def remove_stale_temporaries(folder) -> None:
    """Remove the temporary files and scratch folders that killed runs (SIGKILL, power loss) left in ``folder``."""
    folder = Path(folder)
    with contextlib.suppress(OSError):
        for stale in [*folder.glob(f".*{TEMPORARY_SUFFIX}"), *folder.glob(f"{SCRATCH_PREFIX}*")]:
            if not _left_by_dead_process(stale.name):
                continue
            with contextlib.suppress(OSError):
                if stale.is_dir() and not stale.is_symlink():
                    shutil.rmtree(stale)
                else:
                    stale.unlink()


def _create_temporary(path: Path) -> Path:
    """A new empty hidden file beside ``path``, created with the umask's permissions (unlike mkstemp's 0600)."""
    # File names are limited to 255 bytes: keep the start of a long output name.
    name = path.name.encode()[:_NAME_KEEP].decode(errors="ignore")
    while True:
        tmp = path.with_name(f".{name}.{_owner_tag()}.{secrets.token_hex(4)}{TEMPORARY_SUFFIX}")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue


@contextlib.contextmanager
def atomic_path(path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary file is removed whatever ends the block (errors, KeyboardInterrupt, SystemExit);
    leftovers of killed earlier runs in that folder are removed first. The output gets the
    permissions of any new file (0666 less the umask).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent)
    tmp = None
    try:
        tmp = _create_temporary(path)
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp is not None and tmp.exists():
            tmp.unlink()


class _ScratchDirectory(tempfile.TemporaryDirectory):
    def __enter__(self) -> Path:
        return Path(self.name)


def scratch_directory(beside) -> tempfile.TemporaryDirectory:
    """A hidden scratch folder in the folder of the output ``beside`` (same file system, owner in its name).

    Use it as ``with scratch_directory(out) as folder:`` (a :class:`Path`, removed on exit), or keep the
    object (``.name``, ``.cleanup()``) like a :class:`tempfile.TemporaryDirectory`. Scratch folders that
    killed earlier runs left in that folder are removed first.
    """
    parent = Path(beside).resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(parent)
    return _ScratchDirectory(prefix=f"{SCRATCH_PREFIX}scratch.{_owner_tag()}.", dir=parent)


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
    headerless = all(_is_number(c) for c in rows[0][1])
    body = rows if headerless else rows[1:]
    fields = [r for _, r in body]
    table = _headerless_table(path, fields, voxel_size) if headerless else \
        _table_with_header(path, rows[0][1], fields, voxel_size)
    _check_standard_columns(path, table)
    return _without_repeated_rows(path, table, [n for n, _ in body])


def _table_with_header(path: Path, first: list[str], body: list[list[str]], voxel_size) -> CoordinateTable:
    header = [h.lower() for h in first]
    missing = [c for c in ("x", "y", "z") if c not in header]
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
        xyz = np.stack([columns.pop(c).astype(np.float64) for c in ("x", "y", "z")], axis=1) if body \
            else np.zeros((0, 3))
    except (TypeError, ValueError) as exc:
        raise InputFileError(path, "x, y or z holds a value that is not a number",
                             "Give numeric voxel coordinates.") from exc
    _check_finite_coordinates(xyz, path)
    return CoordinateTable(xyz, columns, voxel_size)


def _check_standard_columns(path: Path, table: CoordinateTable) -> None:
    """``score`` must hold finite numbers; a numeric ``class`` column whole numbers (names are fine)."""
    score = table.columns.get("score")
    if score is not None and (score.dtype == object or not np.isfinite(score).all()):
        raise InputFileError(path, "its 'score' column holds values that are not finite numbers",
                             "Give a number for every score (or drop the column: picks then keep file order).")
    classes = table.columns.get("class")
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
    return CoordinateTable(table.xyz[keep], {k: v[keep] for k, v in table.columns.items()}, table.voxel_size)


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
