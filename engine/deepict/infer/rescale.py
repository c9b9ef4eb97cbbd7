"""Rescaling a volume to another voxel size, anti-aliased and streamed in bounded memory.

The resampling is spectral and separable: along each axis the samples are transformed with a
DCT-II (the spectrum of the volume mirrored at its faces, so the faces cause no wrap-around
ringing), the spectrum is cropped (downsampling: the frequencies the new grid cannot hold are
dropped, which is the anti-aliasing) or padded with zeros (upsampling), and transformed back.
A band-limited signal passes unchanged; nothing is smoothed below the new Nyquist frequency.

Voxel centres map as ``x_in = (x_out + 0.5) * n_in / n_out - 0.5`` per axis: the volume keeps its
physical extent (``n * voxel size``), which is what a rescale from X Å to Y Å means.

Memory stays bounded for any volume size: pass 1 resamples along z, one block of y rows at a time
(all z), into a raw scratch file; pass 2 reads that file in z slabs, resamples each slab in y and x
and streams it to the output. Each block holds about :data:`BLOCK_VOXELS` voxels.
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path

import numpy as np
from scipy import fft

from deepict.io import CoordinateTable, scratch_directory, volume_writer
from deepict.progress import Progress

#: Voxels one block of either pass holds (16 M voxels: 64 MB as float32, a few times that in flight).
BLOCK_VOXELS = 16 * 1024 ** 2


def rescaled_shape(shape_zyx, factor: float) -> tuple[int, int, int]:
    """The shape of a volume rescaled by ``factor`` (input voxel size / output voxel size)."""
    return tuple(max(1, int(round(int(n) * factor))) for n in shape_zyx)


def resample_axis(data: np.ndarray, length: int, axis: int, workers: int = -1) -> np.ndarray:
    """``data`` resampled to ``length`` samples along ``axis`` (DCT-II crop/zero-pad), float32."""
    data = np.asarray(data, dtype=np.float32)
    n_in = data.shape[axis]
    if length == n_in:
        return data
    spectrum = fft.dct(data, type=2, axis=axis, norm="ortho", workers=workers)
    keep = [slice(None)] * data.ndim
    keep[axis] = slice(0, min(n_in, length))
    shape = list(data.shape)
    shape[axis] = length
    resized = np.zeros(shape, dtype=np.float32)
    resized[tuple(keep)] = spectrum[tuple(keep)]
    del spectrum
    out = fft.idct(resized, type=2, axis=axis, norm="ortho", workers=workers)
    out *= np.float32(np.sqrt(length / n_in))  # the orthonormal transforms keep energy, not amplitude
    return out


def resample_array(data: np.ndarray, shape_zyx) -> np.ndarray:
    """A whole (small) array resampled to ``shape_zyx`` in memory, axis by axis."""
    out = np.asarray(data, dtype=np.float32)
    for axis, length in enumerate(shape_zyx):
        out = resample_axis(out, int(length), axis)
    return out


def to_input_voxels(xyz: np.ndarray, input_shape_zyx, rescaled_shape_zyx) -> np.ndarray:
    """Voxel positions (x, y, z columns) on the rescaled grid expressed in the input volume's voxels."""
    ratio = np.array([input_shape_zyx[2] / rescaled_shape_zyx[2], input_shape_zyx[1] / rescaled_shape_zyx[1],
                      input_shape_zyx[0] / rescaled_shape_zyx[0]])
    return to_grid_voxels(xyz, ratio)


def table_at_voxel_size(table: CoordinateTable, voxel_size: float) -> CoordinateTable:
    """A coordinate table of another binning of a tomogram in the voxels of ``voxel_size`` (voxel centres
    mapped by :func:`to_grid_voxels`), its other columns kept."""
    return CoordinateTable(to_grid_voxels(table.xyz, table.voxel_size / voxel_size), table.columns, voxel_size)


def to_grid_voxels(xyz: np.ndarray, ratio) -> np.ndarray:
    """Voxel positions (x, y, z columns) on one grid expressed in the voxels of another grid with the same
    corner: ``ratio`` is the first grid's voxel size over the other's (per axis, or one number)."""
    return (np.asarray(xyz, dtype=float) + 0.5) * ratio - 0.5


def _is_plain_file_map(data: np.ndarray) -> bool:
    return isinstance(data, np.memmap) and isinstance(data.base, mmap.mmap) and data.flags.c_contiguous


def _read_rows(data: np.ndarray, y0: int, y1: int) -> np.ndarray:
    """Rows ``y0:y1`` of every z slice (z, y1-y0, x) as float32.

    A memory-mapped volume is read with file reads, so that scanning it does not leave it resident.
    """
    if not _is_plain_file_map(data):
        return np.array(data[:, y0:y1], dtype=np.float32)
    nz, ny, nx = data.shape
    item = data.dtype.itemsize
    block = np.empty((nz, y1 - y0, nx), dtype=np.float32)
    with open(data.filename, "rb") as handle:
        for z in range(nz):
            handle.seek(data.offset + (z * ny + y0) * nx * item)
            block[z] = np.fromfile(handle, dtype=data.dtype, count=(y1 - y0) * nx).reshape(y1 - y0, nx)
    return block


def resample_volume(data: np.ndarray, shape_zyx, out_path, voxel_size: float, *, label: str = "rescaling",
                    block_voxels: int = BLOCK_VOXELS, clip: tuple[float, float] | None = None,
                    dtype=np.float32, log=None) -> None:
    """Write ``data`` (z, y, x; memory-mapped or in memory) resampled to ``shape_zyx`` as the MRC ``out_path``.

    ``voxel_size`` is the output's. ``clip`` bounds the values (a probability map stays in [0, 1]
    despite the small over/undershoot of spectral interpolation at sharp edges). The intermediate
    (z resampled) lives in a scratch folder beside ``out_path`` and is removed afterwards.
    """
    nz, ny, nx = (int(n) for n in data.shape)
    mz, my, mx = (int(n) for n in shape_zyx)
    rows = max(1, min(ny, block_voxels // max(1, max(nz, mz) * nx)))
    slices = max(1, min(mz, block_voxels // max(1, max(ny * nx, my * mx))))
    progress = Progress(label, -(-ny // rows) + -(-mz // slices), "blocks", log)
    with scratch_directory(out_path) as scratch:
        between = Path(scratch) / "z_resampled.raw"  # (mz, ny, nx) float32
        with open(between, "wb") as handle:
            handle.truncate(mz * ny * nx * 4)
        descriptor = os.open(between, os.O_WRONLY)
        try:
            for y0 in range(0, ny, rows):
                y1 = min(ny, y0 + rows)
                block = resample_axis(_read_rows(data, y0, y1), mz, axis=0)
                for z in range(mz):
                    os.pwrite(descriptor, np.ascontiguousarray(block[z]).tobytes(), (z * ny + y0) * nx * 4)
                progress.advance()
        finally:
            os.close(descriptor)
        with volume_writer(out_path, (mz, my, mx), dtype, voxel_size) as write:
            plane = ny * nx
            for z0 in range(0, mz, slices):
                z1 = min(mz, z0 + slices)
                slab = np.fromfile(between, dtype=np.float32, count=(z1 - z0) * plane, offset=z0 * plane * 4)
                slab = resample_axis(resample_axis(slab.reshape(z1 - z0, ny, nx), my, axis=1), mx, axis=2)
                if clip is not None:
                    np.clip(slab, clip[0], clip[1], out=slab)
                write(z0, slab)
                progress.advance()


def resample_mask(data: np.ndarray, shape_zyx, out_path, voxel_size: float) -> None:
    """Write the mask ``data`` (z, y, x; nonzero = inside) on the grid ``shape_zyx`` of the same extent as the
    int8 0/1 MRC ``out_path``: each output voxel takes the value of the input voxel its centre lies in (a mask
    interpolated spectrally would ring at its edges). Streamed by z slices; ``voxel_size`` is the output's."""
    nearest = [np.minimum(((np.arange(m) + 0.5) * int(n) / int(m)).astype(np.int64), int(n) - 1)
               for n, m in zip(data.shape, shape_zyx)]
    with volume_writer(out_path, tuple(int(m) for m in shape_zyx), np.int8, voxel_size) as write:
        for z, source in enumerate(nearest[0]):
            plane = np.asarray(data[int(source)])[np.ix_(nearest[1], nearest[2])]
            write(z, (plane != 0).astype(np.int8)[None])
