"""Volumes (MRC) on disk.

Volumes are numpy arrays in (z, y, x) order, x being the fastest MRC axis. Plain ``.mrc``
files are memory-mapped so that tomograms larger than RAM can be read slice by slice;
``.mrc.gz`` files are decompressed into memory. Every volume carries its voxel size in Å.
Volumes are written atomically (:func:`~deepict.io.files.atomic_path`).
"""

from __future__ import annotations

import contextlib
import mmap
from pathlib import Path
from typing import Iterator, NamedTuple

import mrcfile
import numpy as np

from deepict.conventions import SLAB_SLICES
from deepict.errors import InputFileError, ParameterError
from deepict.io.files import atomic_path, check_readable

#: MRC data types we read and write (mrcfile maps them to modes 0, 1, 2, 6 and 12).
SUPPORTED_DTYPES = (np.int8, np.int16, np.uint16, np.float16, np.float32, np.uint8)


class Volume(NamedTuple):
    """A volume's voxels (z, y, x) and its voxel size in Å (``None`` when the header has none)."""

    data: np.ndarray
    voxel_size: float | None
    path: str


#: Relative difference between the x, y and z voxel sizes of a header still taken as cubic voxels.
ISOTROPY_TOLERANCE = 1e-3


def _header_voxel_size(mrc, path) -> float | None:
    sizes = tuple(float(mrc.voxel_size[axis]) for axis in ("x", "y", "z"))
    if all(size <= 0 for size in sizes):
        return None
    if min(sizes) <= 0 or max(sizes) - min(sizes) > ISOTROPY_TOLERANCE * max(sizes):
        raise InputFileError(
            path, "has different voxel sizes along x, y, z ({:g}, {:g}, {:g} Å) in its header".format(*sizes),
            "DeePiCt needs cubic voxels: resample the tomogram to one voxel size, or, if the header is wrong, "
            "fix it (e.g. IMOD 'alterheader -del {0:g},{0:g},{0:g}').".format(sizes[0]))
    return float(str(np.float32(sizes[0])))  # the header's float32 as written (26.96, not 26.959999084472656)


def _is_text(path: Path) -> bool:
    """Whether the file starts as text does (no NUL byte, UTF-8): no MRC header does."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(1024)
        head.decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return bool(head) and b"\0" not in head


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
        if _is_text(path):
            raise InputFileError(path, "is a text file (a coordinate table?), not an MRC volume",
                                 "Give the tomogram, mask or map (MRC) here; coordinate tables go to the "
                                 "coordinate options.") from None
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
        check_finite_slab(slab, z0, path)


def check_finite_slab(slab: np.ndarray, z0: int, path) -> None:
    """Raise :class:`InputFileError` if the slab of ``path`` starting at slice ``z0`` holds NaN or infinite voxels."""
    bad = ~np.isfinite(slab)
    if bad.any():
        first = z0 + int(np.argmax(bad.any(axis=(1, 2))))
        count = int(np.count_nonzero(bad))
        raise InputFileError(
            path, f"holds NaN or infinite voxels ({count} in slices {z0}..{z0 + len(slab) - 1}, the first in "
                  f"slice z={first})",
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


#: Voxels read at a time for a streamed volume's header statistics (32 MB as float64).
STATISTICS_VOXELS = 4_000_000


@contextlib.contextmanager
def volume_writer(path, shape_zyx, dtype, voxel_size: float):
    """Stream a volume to disk in z slabs: yields ``write(z0, slab)``; the file appears only on success.

    Slabs are written with ordinary file writes (not a memory map), so a tomogram larger than RAM
    can be produced with memory bounded by one slab. The header's statistics (minimum, maximum, mean,
    rms) are then read back from the file slab by slab (:func:`_write_statistics`).
    """
    shape_zyx = tuple(int(s) for s in shape_zyx)
    dtype = np.dtype(dtype)
    with atomic_path(path) as tmp:
        with mrcfile.new_mmap(str(tmp), shape=shape_zyx, mrc_mode=mrcfile.utils.mode_from_dtype(dtype),
                              overwrite=True) as mrc:
            mrc.voxel_size = float(voxel_size)
            offset = mrc.header.nbytes + mrc.extended_header.nbytes
        plane_bytes = shape_zyx[1] * shape_zyx[2] * dtype.itemsize
        with open(tmp, "r+b") as handle:
            def write(z0: int, slab: np.ndarray) -> None:
                handle.seek(offset + z0 * plane_bytes)
                handle.write(np.ascontiguousarray(slab, dtype=dtype).tobytes())
            yield write
        _write_statistics(tmp, shape_zyx, dtype, offset)


def _write_statistics(path, shape_zyx: tuple, dtype: np.dtype, offset: int) -> None:
    """Set the header's minimum, maximum, mean and rms (standard deviation) of the volume written at ``path``,
    read back a few million voxels at a time (:data:`STATISTICS_VOXELS`): viewers that take their contrast
    from the header showed nothing of streamed outputs (their statistics were left unset)."""
    data = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape_zyx)
    slices = max(1, STATISTICS_VOXELS // (shape_zyx[1] * shape_zyx[2]))
    low, high, total, squares = np.inf, -np.inf, 0.0, 0.0
    for z0 in range(0, shape_zyx[0], slices):
        values = np.asarray(data[z0:z0 + slices], dtype=np.float64).ravel()
        low, high = min(low, values.min()), max(high, values.max())
        total += values.sum()
        squares += values @ values
    del data
    count = float(np.prod(shape_zyx))
    mean = total / count
    with mrcfile.mmap(str(path), mode="r+") as mrc:
        mrc.header.dmin, mrc.header.dmax, mrc.header.dmean = low, high, mean
        mrc.header.rms = np.sqrt(max(squares / count - mean * mean, 0.0))
