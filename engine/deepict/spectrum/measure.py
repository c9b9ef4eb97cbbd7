"""Measuring the radial amplitude spectrum of a tomogram.

* **Physical frequency.** Every Fourier voxel's radius is computed in 1/Å from the per-axis
  frequencies ``fftfreq(n) / voxel_size``, so non-cubic boxes (e.g. 928 × 928 × 464) are binned
  correctly and a reference measured at another voxel size or box size is matched at the same
  physical frequency (the original used index units and matched bins by index).

Definitions
-----------
*Normalisation.* A volume is normalised to mean 0, std 1 before its spectrum is measured, and the
FFT is scaled by ``1 / sqrt(N)`` (N = number of voxels, "ortho" convention). The amplitude scale is
therefore independent of the box size and of the grey-value scale: unit-variance white noise has a
flat profile at ≈ 0.886 (the mean of a Rayleigh variable, sqrt(pi) / 2).

*Bins.* Fourier shells are ``df`` wide with centres ``k · df`` (k = 1, 2, …); a Fourier voxel of
radius ``f`` belongs to shell ``floor(f / df + 0.5)``. Shell 0 holds only the DC term and is
excluded. By default ``df = 1 / (max(shape) · voxel_size)``, the finest frequency step of the box,
and shells run up to the corner of the Fourier box (``sqrt(3)`` × Nyquist for a cube). Empty shells
(possible for the lowest shells of very elongated boxes) are left out of the profile.

*Half-space.* Real-input FFTs (``rfft``) hold only the ``kx ≥ 0`` half of the spectrum. Voxels that
stand for a pair of Hermitian mirror voxels are counted twice, so the profile is exactly the mean
over the full spectrum.

Memory
------
A tomogram of N voxels needs one complex64 half-spectrum (≈ 4 N bytes, like the float32 volume)
and small per-slab / per-plane buffers: the slabs of the input are read, transformed along y and x
and written into the half-spectrum one slab at a time, the z transform runs in place, the filter
is evaluated one z-plane of the frequency grid at a time and multiplied in place, and the inverse
runs in place along z and slab by slab along y and x. Memory-mapped MRC input is read with file
reads (or its mapped pages are released), so it does not add to the resident memory. The output
is either assembled in a float32 array (peak ≈ 2 × the float32 size of the tomogram) or streamed
to disk slab by slab (``write_slab``; peak ≈ 1 ×, as ``deepict equalize`` does).
"""

from __future__ import annotations

import math
import mmap

import numpy as np
import scipy.fft

from deepict.cpu import cpu_threads
from deepict.errors import InputFileError, ParameterError
from deepict.io import check_finite_slab, read_slab
from deepict.spectrum.profile import BOX_SHAPE_KEY, RadialSpectrum, checked_voxel_size

#: Default number of FFT threads (scipy ``workers``).
DEFAULT_WORKERS = 2

#: z slices read and transformed at once.
FFT_SLAB_SLICES = 16


def checked_volume(data) -> np.ndarray:
    if not hasattr(data, "shape") or not hasattr(data, "dtype"):
        data = np.asarray(data)
    if len(data.shape) != 3:
        raise ParameterError(f"Expected a 3D volume (z, y, x), got an array of shape {tuple(data.shape)}.")
    if min(data.shape) < 2:
        raise ParameterError(f"The volume of shape (z, y, x) = {tuple(data.shape)} is too small: "
                             "every axis needs at least 2 voxels.")
    if not (np.issubdtype(data.dtype, np.floating) or np.issubdtype(data.dtype, np.integer)):
        raise ParameterError(f"Expected a real-valued volume, got data type {data.dtype}.")
    return data


def release_mapped_pages(array) -> None:
    """Hand the resident pages of a file-backed ``np.memmap`` back to the operating system.

    Reading a memory-mapped tomogram slab by slab otherwise leaves every page it touched in the
    process's resident set until the file is closed, adding the whole tomogram's size to the peak
    memory. ``MADV_DONTNEED`` only drops this process's page-table entries: the data stay
    in the page cache (and, for writable shared maps, are still written back), and are re-read on
    the next access. Copy-on-write maps (mode ``'c'``) are left alone, since dropping their pages
    would discard changes. Does nothing for in-memory arrays or where ``madvise`` is unavailable.
    """
    obj = array
    while obj is not None and not isinstance(obj, np.memmap):
        obj = getattr(obj, "base", None)
    if obj is None or getattr(obj, "mode", "c") == "c":
        return
    mapping = getattr(obj, "_mmap", None)
    advice = getattr(mmap, "MADV_DONTNEED", None)
    if mapping is None or advice is None or not hasattr(mapping, "madvise"):
        return
    try:
        mapping.madvise(advice)
    except (OSError, ValueError):
        pass


def read_array_slab(data, z0: int, z1: int) -> np.ndarray:
    """Slices ``z0:z1`` as a new float32 array (never a view: callers modify it in place).

    A whole memory-mapped MRC volume is read with ordinary file reads (:func:`~.io.read_slab`), so
    it does not stay resident; other arrays (including views of memory maps, whose file offset
    ``np.memmap`` does not track) are copied, and any mapped pages touched are released.
    """
    if isinstance(data, np.memmap) and isinstance(data.base, mmap.mmap):
        return read_slab(data, z0, z1)
    slab = np.array(data[z0:z1], dtype=np.float32)
    release_mapped_pages(data)
    return slab


class HalfSpectrum:
    """Unnormalised real-input FFT of a volume, built slab by slab (see the module docstring).

    ``values`` is the complex64 half-spectrum, shape (nz, ny, nx // 2 + 1), of the volume minus a
    constant offset (which only changes the DC term); ``mean`` and ``std`` are the volume's exact
    statistics (float64 accumulation), so that dividing amplitudes by ``std · sqrt(N)`` gives the
    spectrum of the normalised volume.
    """

    def __init__(self, data, workers: int, source) -> None:
        nz, ny, nx = (int(s) for s in data.shape)
        self.shape = (nz, ny, nx)
        self.size = nz * ny * nx
        self.values = np.empty((nz, ny, nx // 2 + 1), dtype=np.complex64)
        count = 0
        mean = 0.0
        m2 = 0.0
        offset = None
        floating = np.issubdtype(data.dtype, np.floating)
        for z0 in range(0, nz, FFT_SLAB_SLICES):
            z1 = min(z0 + FFT_SLAB_SLICES, nz)
            slab = read_array_slab(data, z0, z1)
            if floating:
                check_finite_slab(slab, z0, source or "input volume")
            # Chan et al. pairwise update of mean and sum of squared deviations, in float64.
            slab_n = slab.size
            slab_mean = float(np.mean(slab, dtype=np.float64))
            slab_m2 = float(np.sum(np.square(slab - np.float32(slab_mean), dtype=np.float64)))
            delta = slab_mean - mean
            total = count + slab_n
            mean += delta * slab_n / total
            m2 += slab_m2 + delta * delta * count * slab_n / total
            count = total
            if offset is None:
                # Removing a rough mean before the float32 FFT keeps a large offset (e.g. uint16
                # data) from drowning the small Fourier coefficients in rounding errors.
                offset = np.float32(slab_mean)
            slab -= offset
            self.values[z0:z1] = scipy.fft.rfftn(slab, axes=(1, 2), workers=workers, overwrite_x=True)
            del slab
        self.values = scipy.fft.fft(self.values, axis=0, workers=workers, overwrite_x=True)  # in place
        self.mean = mean
        self.std = math.sqrt(max(m2 / count, 0.0))
        if not self.std > 0:
            raise InputFileError(source or "input volume", "is constant (standard deviation 0), so it has no spectrum",
                                 "Check that the right file was given and that it is not empty.")


class FrequencyGrid:
    """Physical frequencies (1/Å) of the half-spectrum grid and its radial shells."""

    def __init__(self, shape, voxel_size: float, n_bins: int | None) -> None:
        nz, ny, nx = shape
        self.fz2 = np.square(np.fft.fftfreq(nz, d=voxel_size))
        fy2 = np.square(np.fft.fftfreq(ny, d=voxel_size))
        fx = np.fft.rfftfreq(nx, d=voxel_size)
        self.fyx2 = fy2[:, None] + np.square(fx)[None, :]
        # Half-space weights: columns 0 < kx < nx/2 stand for themselves and their mirror.
        wx = np.full(fx.size, 2.0)
        wx[0] = 1.0
        if nx % 2 == 0:
            wx[-1] = 1.0
        self.weights = np.ascontiguousarray(np.broadcast_to(wx, self.fyx2.shape)).ravel()
        corner = math.sqrt(self.fz2.max() + fy2.max() + fx[-1] ** 2)
        if n_bins is None:
            self.df = 1.0 / (max(shape) * voxel_size)
        else:
            if int(n_bins) != n_bins or n_bins < 2:
                raise ParameterError(f"The number of frequency shells must be a whole number ≥ 2, got {n_bins!r}.")
            self.df = corner / int(n_bins)
        self.n_shells = int(math.floor(corner / self.df + 0.5)) + 1  # including shell 0 (DC)
        self.corner = corner

    def radius(self, kz: int) -> np.ndarray:
        """Radii in 1/Å of the z-plane ``kz`` of the half-spectrum (float64, shape (ny, nx//2+1))."""
        return np.sqrt(self.fz2[kz] + self.fyx2)

    def shell(self, radius: np.ndarray) -> np.ndarray:
        """Shell index of each radius (flattened)."""
        index = (radius.ravel() / self.df + 0.5).astype(np.intp)
        np.minimum(index, self.n_shells - 1, out=index)
        return index

    def centres(self) -> np.ndarray:
        return np.arange(self.n_shells, dtype=np.float64) * self.df


def accumulate_profile(half: HalfSpectrum, grid: FrequencyGrid) -> tuple[np.ndarray, np.ndarray]:
    """Per-shell (weighted sum of |F|, weighted voxel count) over the half-spectrum."""
    sums = np.zeros(grid.n_shells)
    counts = np.zeros(grid.n_shells)
    for kz in range(half.shape[0]):
        index = grid.shell(grid.radius(kz))
        amplitude = np.abs(half.values[kz]).ravel()
        sums += np.bincount(index, weights=amplitude * grid.weights, minlength=grid.n_shells)
        counts += np.bincount(index, weights=grid.weights, minlength=grid.n_shells)
    return sums, counts


def shell_profile(sums, counts, grid: FrequencyGrid, scale: float, voxel_size, metadata) -> RadialSpectrum:
    """Turn shell sums into a :class:`RadialSpectrum`, dropping the DC shell and empty shells."""
    keep = counts > 0
    keep[0] = False
    amplitude = np.zeros(grid.n_shells)
    amplitude[keep] = sums[keep] / counts[keep] * scale
    return RadialSpectrum(grid.centres()[keep], amplitude[keep], voxel_size, metadata)


def spectrum_metadata(shape, source, kind: str) -> dict[str, str]:
    meta = {BOX_SHAPE_KEY: " ".join(str(int(s)) for s in shape), "format": "deepict",
            "normalisation": "volume mean 0 std 1; amplitude = |FFT| / sqrt(N)", "measured_on": kind}
    if source:
        meta["source"] = str(source)
    return meta


def radial_spectrum(data, voxel_size: float, n_bins: int | None = None, *,
                    workers: int = DEFAULT_WORKERS, source=None) -> RadialSpectrum:
    """Radial mean Fourier amplitude of a volume, in physical frequency.

    Args:
        data: (z, y, x) volume, any real dtype; may be a memory-mapped MRC (read slab by slab,
            never modified).
        voxel_size: voxel size in Å (isotropic).
        n_bins: number of frequency shells between 0 and the corner of the Fourier box. Default:
            shells ``1 / (max(shape) · voxel_size)`` wide (the finest frequency step of the box).
        workers: FFT threads.
        source: file name used in error messages and stored in the metadata.

    Returns:
        A :class:`RadialSpectrum` of the volume normalised to mean 0, std 1 (amplitude =
        |FFT| / sqrt(N), DC excluded, empty shells left out).

    Raises:
        ParameterError: non-3D data, an axis shorter than 2 voxels, a bad voxel size or ``n_bins``.
        InputFileError: NaN/inf voxels or a constant volume.
    """
    data = checked_volume(data)
    voxel_size = checked_voxel_size(voxel_size)
    grid = FrequencyGrid(tuple(int(s) for s in data.shape), voxel_size, n_bins)
    half = HalfSpectrum(data, workers, source)
    sums, counts = accumulate_profile(half, grid)
    scale = 1.0 / (half.std * math.sqrt(half.size))
    del half
    return shell_profile(sums, counts, grid, scale, voxel_size, spectrum_metadata(data.shape, source, "tomogram"))


def default_workers() -> int:
    """FFT threads to use by default: 2, or fewer if the step may use fewer CPU threads (:mod:`deepict.cpu`)."""
    return max(1, min(DEFAULT_WORKERS, cpu_threads()))