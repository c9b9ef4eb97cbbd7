"""Radial amplitude spectra and spectrum equalization ("spectrum matching") of tomograms.

DeePiCt's published networks were trained on tomograms whose Fourier amplitude profile had been
matched to one reference tomogram. This module measures such profiles and applies the matching,
re-implementing the idea of the original ``spectrum_filter/`` scripts (see ``DEEPICT.md`` §2)
without their defects:

* **Physical frequency.** Every Fourier voxel's radius is computed in 1/Å from the per-axis
  frequencies ``fftfreq(n) / voxel_size``, so non-cubic boxes (e.g. 928 × 928 × 464) are binned
  correctly and a reference measured at another voxel size or box size is matched at the same
  physical frequency (the original used index units and matched bins by index).
* **Consistent radial scale.** The profile is sampled at the same radii it is applied at
  (the original applied bin *j* at radius *j*, though it was measured at ≈ 1.5–1.7 *j*).
* **No holes in the filter.** The gain is defined at every frequency, the corners of the Fourier
  cube included; beyond the frequency range of the reference it is held at its last value
  (the original zeroed everything beyond radius B − 1 and mirrored even-sized axes off by one).
* **Real output.** The filtered spectrum is transformed back with an inverse *real* FFT; the result
  is normalised to mean 0 and standard deviation 1 and stored as float32 (the original took the
  complex modulus and did not re-normalise).

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

Spectrum files
--------------
DeePiCt-scipion TSV (written by :func:`write_spectrum`)::

    # voxel_size_angstrom: 13.48
    # box_shape_zyx: 128 256 256
    frequency_per_angstrom<TAB>amplitude
    0.000289763<TAB>12.43
    ...

Original DeePiCt TSV (``extract_spectrum.py``): header ``freq<TAB>intensity`` and B rows
``j<TAB>mean amplitude`` in *index* units of the box it was measured on. It is converted to
physical frequency by :func:`spectrum_from_original`, which needs that box's shape and voxel size.
"""

from __future__ import annotations

import math
import mmap
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import scipy.fft
from scipy.special import expit

from deepict.errors import InputFileError, ParameterError
from deepict.io import atomic_path, check_readable, read_slab, read_volume
from deepict.progress import Progress

#: Header of the frequency column of our spectrum TSV (physical frequency, 1/Å).
FREQUENCY_COLUMN = "frequency_per_angstrom"
#: Header of the amplitude column of our spectrum TSV.
AMPLITUDE_COLUMN = "amplitude"
#: Metadata key of the voxel size in spectrum TSV comments (same key as coordinate tables).
VOXEL_SIZE_KEY = "voxel_size_angstrom"
#: Metadata key of the box shape (z y x voxels) the spectrum was measured on.
BOX_SHAPE_KEY = "box_shape_zyx"

#: Default 10 %–90 % transition width of the low-pass, as a fraction of its cut-off frequency.
DEFAULT_LOWPASS_WIDTH = 0.1
#: When ``deepict pick``/``segment3d`` equalize a tomogram to the model's stored spectrum first:
#: ``auto`` when the model has one, ``on`` always (an error without one), ``off`` never.
EQUALIZE_MODES = ("auto", "on", "off")
#: Default number of FFT threads (scipy ``workers``).
DEFAULT_WORKERS = 2
#: Input gains are computed against an input amplitude floored at this fraction of its maximum,
#: so that (near-)empty shells of the input cannot produce unbounded gains.
AMPLITUDE_FLOOR = 1e-4

#: z slices read and transformed at once.
_SLAB_SLICES = 16
#: File name endings treated as MRC volumes by :func:`load_reference`.
_VOLUME_SUFFIXES = (".mrc", ".rec", ".map", ".st", ".ali", ".mrcs", ".mrc.gz", ".rec.gz", ".map.gz")

Log = Callable[[str], None]
#: Receives the output volume slab by slab: ``write_slab(z0, float32 slab of slices z0:z0+len)``.
SlabWriter = Callable[[int, np.ndarray], None]


def _log_stderr(message: str) -> None:
    print(f"deepict: {message}", file=sys.stderr)


# --------------------------------------------------------------------------------------------
# Spectrum container
# --------------------------------------------------------------------------------------------

@dataclass
class RadialSpectrum:
    """A rotationally averaged Fourier amplitude profile in physical frequency.

    Attributes:
        frequency: shell centres in 1/Å, strictly increasing, > 0 (DC excluded).
        amplitude: mean Fourier amplitude of each shell (≥ 0), in the normalisation described in
            the module docstring for spectra measured here; any positive scale for spectra read
            from the original DeePiCt format (only the *shape* of a reference matters, because
            equalized output is re-normalised).
        voxel_size: voxel size in Å of the volume it was measured on (``None`` if unknown).
        metadata: free-form strings (``box_shape_zyx``, ``source``, ``format``, …) written as
            ``# key: value`` comments in TSV files.
    """

    frequency: np.ndarray
    amplitude: np.ndarray
    voxel_size: float | None = None
    metadata: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.frequency = np.asarray(self.frequency, dtype=np.float64).ravel()
        self.amplitude = np.asarray(self.amplitude, dtype=np.float64).ravel()
        self.voxel_size = None if self.voxel_size is None else float(self.voxel_size)
        self.metadata = {str(k): str(v) for k, v in self.metadata.items()}
        problem = self.problem()
        if problem:
            raise ValueError(f"invalid radial spectrum: {problem}")

    def problem(self) -> str | None:
        """Why these arrays are not a usable spectrum, or ``None`` if they are."""
        f, a = self.frequency, self.amplitude
        if f.shape != a.shape:
            return f"{f.size} frequencies but {a.size} amplitudes"
        if f.size < 2:
            return f"only {f.size} value(s); at least 2 frequency shells are needed"
        if not (np.isfinite(f).all() and np.isfinite(a).all()):
            return "it holds NaN or infinite values"
        if f[0] <= 0 or np.any(np.diff(f) <= 0):
            return "frequencies must be positive and strictly increasing"
        if np.any(a < 0) or not np.any(a > 0):
            return "amplitudes must be ≥ 0 and not all zero"
        if self.voxel_size is not None and not (math.isfinite(self.voxel_size) and self.voxel_size > 0):
            return f"voxel size {self.voxel_size} is not a positive number"
        return None

    @property
    def max_frequency(self) -> float:
        """Highest shell centre in 1/Å."""
        return float(self.frequency[-1])

    def __len__(self) -> int:
        return int(self.frequency.size)

    def at(self, frequency) -> np.ndarray:
        """Amplitude linearly interpolated at ``frequency`` (1/Å); end values held outside the range."""
        return np.interp(np.asarray(frequency, dtype=np.float64), self.frequency, self.amplitude)


@dataclass
class Equalization:
    """Result of :func:`equalize_volume`.

    Attributes:
        data: the equalized volume, float32, mean 0, std 1, same shape as the input (``None``
            when it was streamed to a ``write_slab`` function).
        input_spectrum: profile of the (normalised) input.
        output_spectrum: profile of ``data``, obtained from the filtered spectrum (what
            :func:`radial_spectrum` of ``data`` gives, up to float32 rounding).
        gain_frequency, gain: the radial filter (reference / input × low-pass) at the input's
            shell centres; voxels between centres get linearly interpolated values, the DC term 0.
        notes: remarks also sent to the ``log`` callable (voxel-size mismatch, extrapolation, …).
    """

    data: np.ndarray | None
    input_spectrum: RadialSpectrum
    output_spectrum: RadialSpectrum
    gain_frequency: np.ndarray
    gain: np.ndarray
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------------

def _checked_voxel_size(voxel_size, what: str = "voxel size") -> float:
    try:
        value = float(voxel_size)
    except (TypeError, ValueError):
        raise ParameterError(f"The {what} must be a number of Å, got {voxel_size!r}.") from None
    if not (math.isfinite(value) and value > 0):
        raise ParameterError(f"The {what} must be a positive number of Å, got {voxel_size!r}.")
    return value


def _checked_volume(data) -> np.ndarray:
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


def _checked_box_shape(box_shape) -> tuple[int, int, int]:
    try:
        shape = tuple(int(s) for s in box_shape)
        exact = all(float(s) == int(s) for s in box_shape)
    except (TypeError, ValueError):
        raise ParameterError(f"The reference box must be three voxel counts, got {box_shape!r}.") from None
    if len(shape) != 3 or not exact or min(shape) < 2:
        raise ParameterError(f"The reference box must be three whole voxel counts ≥ 2, got {box_shape!r}.")
    return shape


# --------------------------------------------------------------------------------------------
# Memory-map friendly slab reading and the half-space FFT
# --------------------------------------------------------------------------------------------

def _release_mapped_pages(array) -> None:
    """Hand the resident pages of a file-backed ``np.memmap`` back to the operating system.

    Reading a memory-mapped tomogram slab by slab otherwise leaves every page it touched in the
    process's resident set until the file is closed, which for a 1.6 GB tomogram adds 1.6 GB to
    the peak memory. ``MADV_DONTNEED`` only drops this process's page-table entries: the data stay
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


def _read_slab(data, z0: int, z1: int) -> np.ndarray:
    """Slices ``z0:z1`` as a new float32 array (never a view: callers modify it in place).

    A whole memory-mapped MRC volume is read with ordinary file reads (:func:`~.io.read_slab`), so
    it does not stay resident; other arrays (including views of memory maps, whose file offset
    ``np.memmap`` does not track) are copied, and any mapped pages touched are released.
    """
    if isinstance(data, np.memmap) and isinstance(data.base, mmap.mmap):
        return read_slab(data, z0, z1)
    slab = np.array(data[z0:z1], dtype=np.float32)
    _release_mapped_pages(data)
    return slab


class _HalfSpectrum:
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
        for z0 in range(0, nz, _SLAB_SLICES):
            z1 = min(z0 + _SLAB_SLICES, nz)
            slab = _read_slab(data, z0, z1)
            if floating and not np.isfinite(slab).all():
                bad = int(np.count_nonzero(~np.isfinite(slab)))
                raise InputFileError(
                    source or "input volume", f"holds NaN or infinite voxels (at least {bad} from slice z={z0})",
                    "Fix the reconstruction, or replace the bad voxels (e.g. with the mean) before equalizing.")
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


class _FrequencyGrid:
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


def _accumulate_profile(half: _HalfSpectrum, grid: _FrequencyGrid) -> tuple[np.ndarray, np.ndarray]:
    """Per-shell (weighted sum of |F|, weighted voxel count) over the half-spectrum."""
    sums = np.zeros(grid.n_shells)
    counts = np.zeros(grid.n_shells)
    for kz in range(half.shape[0]):
        index = grid.shell(grid.radius(kz))
        amplitude = np.abs(half.values[kz]).ravel()
        sums += np.bincount(index, weights=amplitude * grid.weights, minlength=grid.n_shells)
        counts += np.bincount(index, weights=grid.weights, minlength=grid.n_shells)
    return sums, counts


def _profile(sums, counts, grid: _FrequencyGrid, scale: float, voxel_size, metadata) -> RadialSpectrum:
    """Turn shell sums into a :class:`RadialSpectrum`, dropping the DC shell and empty shells."""
    keep = counts > 0
    keep[0] = False
    amplitude = np.zeros(grid.n_shells)
    amplitude[keep] = sums[keep] / counts[keep] * scale
    return RadialSpectrum(grid.centres()[keep], amplitude[keep], voxel_size, metadata)


def _spectrum_metadata(shape, source, kind: str) -> dict[str, str]:
    meta = {BOX_SHAPE_KEY: " ".join(str(int(s)) for s in shape), "format": "deepict",
            "normalisation": "volume mean 0 std 1; amplitude = |FFT| / sqrt(N)", "measured_on": kind}
    if source:
        meta["source"] = str(source)
    return meta


# --------------------------------------------------------------------------------------------
# Public API: measuring
# --------------------------------------------------------------------------------------------

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
    data = _checked_volume(data)
    voxel_size = _checked_voxel_size(voxel_size)
    grid = _FrequencyGrid(tuple(int(s) for s in data.shape), voxel_size, n_bins)
    half = _HalfSpectrum(data, workers, source)
    sums, counts = _accumulate_profile(half, grid)
    scale = 1.0 / (half.std * math.sqrt(half.size))
    del half
    return _profile(sums, counts, grid, scale, voxel_size, _spectrum_metadata(data.shape, source, "tomogram"))


# --------------------------------------------------------------------------------------------
# Public API: equalizing
# --------------------------------------------------------------------------------------------

def lowpass_response(frequency, lowpass_angstrom: float, lowpass_width: float = DEFAULT_LOWPASS_WIDTH) -> np.ndarray:
    """The logistic (sigmoid) low-pass used by :func:`equalize`, at ``frequency`` (1/Å).

    The response is 0.5 at ``fc = 1 / lowpass_angstrom`` and falls from 0.9 to 0.1 between
    ``fc · (1 − w/2)`` and ``fc · (1 + w/2)`` where ``w = lowpass_width`` (a fraction of fc), i.e.
    ``1 / (1 + exp((f − fc) / s))`` with ``s = w · fc / (2 ln 9)``. It never reaches exactly 0.
    """
    fc = 1.0 / lowpass_angstrom
    scale = lowpass_width * fc / (2.0 * math.log(9.0))
    return expit(-(np.asarray(frequency, dtype=np.float64) - fc) / scale)


def _check_lowpass(lowpass_angstrom, lowpass_width, voxel_size: float, shape) -> None:
    if lowpass_angstrom is None:
        return
    try:
        value = float(lowpass_angstrom)
    except (TypeError, ValueError):
        raise ParameterError(f"The low-pass must be a resolution in Å, got {lowpass_angstrom!r}.") from None
    if not (math.isfinite(value) and value > 0):
        raise ParameterError(f"The low-pass must be a positive resolution in Å, got {lowpass_angstrom!r}.")
    nyquist = 2.0 * voxel_size
    if value < nyquist:
        raise ParameterError(
            f"A low-pass at {value:g} Å is finer than the Nyquist limit of the tomogram "
            f"(2 × {voxel_size:g} Å = {nyquist:g} Å): the tomogram is too coarse for this low-pass. "
            f"Give a low-pass of at least {nyquist:g} Å (typically 3–4 × the voxel size), or none.")
    extent = max(shape) * voxel_size
    if value > extent:
        raise ParameterError(
            f"A low-pass at {value:g} Å is longer than the tomogram itself ({extent:g} Å along its longest "
            f"axis): the tomogram is too small for this low-pass, which would remove all its detail. "
            f"Give a low-pass below {extent:g} Å.")
    try:
        width = float(lowpass_width)
    except (TypeError, ValueError):
        raise ParameterError(f"The low-pass width must be a number, got {lowpass_width!r}.") from None
    if not (math.isfinite(width) and 0 < width <= 1):
        raise ParameterError(
            f"The low-pass width is the 10–90 % transition width as a fraction of the cut-off frequency and "
            f"must lie in (0, 1], got {lowpass_width!r}.")


def _gain_curve(input_spectrum: RadialSpectrum, reference: RadialSpectrum, lowpass_angstrom, lowpass_width,
                notes: list[str]) -> np.ndarray:
    """Reference / input amplitude at the input's shell centres, times the low-pass.

    Both profiles are interpolated in physical frequency. Outside the frequency range the
    reference covers, the *ratio* is held at its value at the nearest end of that range (rather
    than the reference amplitude), so frequencies the reference knows nothing about keep the
    input's own spectral shape, continuously scaled, instead of being zeroed (ringing) or boosted.
    """
    f = input_spectrum.frequency
    low, high = reference.frequency[0], reference.frequency[-1]
    if high <= f[0] or low >= f[-1]:
        raise ParameterError(
            f"The reference spectrum covers {low:.4g}–{high:.4g} 1/Å, which does not overlap the frequencies "
            f"of the tomogram ({f[0]:.4g}–{f[-1]:.4g} 1/Å). Check the reference voxel size.")
    clipped = np.clip(f, low, high)
    floor = AMPLITUDE_FLOOR * input_spectrum.amplitude.max()
    gain = reference.at(clipped) / np.maximum(input_spectrum.at(clipped), floor)
    nyquist = 0.5 / input_spectrum.voxel_size if input_spectrum.voxel_size else f[-1]
    if high < nyquist * (1 - 1e-6):
        notes.append(
            f"the reference spectrum ends at {high:.4g} 1/Å ({1 / high:.1f} Å), below the tomogram's Nyquist "
            f"frequency {nyquist:.4g} 1/Å: above it the gain is held at its last value"
            + ("" if lowpass_angstrom else f" (a low-pass of ≥ {1 / high:.0f} Å removes those frequencies)"))
    if low > f[0] * (1 + 1e-6):
        notes.append(f"the reference spectrum starts at {low:.4g} 1/Å ({1 / low:.0f} Å): "
                     "below it the gain is held at its first value")
    if lowpass_angstrom is not None:
        gain = gain * lowpass_response(f, float(lowpass_angstrom), float(lowpass_width))
    return gain


def equalize_volume(data, voxel_size: float, reference: RadialSpectrum, lowpass_angstrom: float | None = None,
                    lowpass_width: float = DEFAULT_LOWPASS_WIDTH, *, out: np.ndarray | None = None,
                    write_slab: SlabWriter | None = None, workers: int = DEFAULT_WORKERS, source=None,
                    log: Log | None = _log_stderr) -> Equalization:
    """Equalize a tomogram's radial amplitude spectrum to a reference (see :func:`equalize`).

    Returns an :class:`Equalization` holding the volume plus the input and output spectra, the
    gain curve and notes; :func:`equalize` returns only the volume.

    ``write_slab(z0, slab)``, if given, receives the output in float32 z slabs (e.g. the writer of
    :func:`~deepict.io.volume_writer`) instead of it being assembled in memory; the
    result's ``data`` is then ``None`` and the peak memory ≈ 1 × the float32 size of the tomogram.
    """
    data = _checked_volume(data)
    voxel_size = _checked_voxel_size(voxel_size)
    if not isinstance(reference, RadialSpectrum):
        raise ParameterError("The reference must be a RadialSpectrum (see load_reference).")
    shape = tuple(int(s) for s in data.shape)
    _check_lowpass(lowpass_angstrom, lowpass_width, voxel_size, shape)
    if out is not None and write_slab is not None:
        raise ParameterError("Give either an output array or a slab writer, not both.")
    if out is not None and (tuple(out.shape) != shape or out.dtype != np.float32):
        raise ParameterError(f"The output array must be float32 of shape {shape}, "
                             f"got {out.dtype} of shape {tuple(out.shape)}.")
    notes: list[str] = []
    if reference.voxel_size is not None and abs(reference.voxel_size - voxel_size) > 1e-3 * voxel_size:
        notes.append(f"the reference was measured at {reference.voxel_size:g} Å/voxel and the tomogram has "
                     f"{voxel_size:g} Å/voxel: handled in physical frequency (1/Å)")

    grid = _FrequencyGrid(shape, voxel_size, None)
    half = _HalfSpectrum(data, workers, source)
    n = half.size
    sums, counts = _accumulate_profile(half, grid)
    input_spectrum = _profile(sums, counts, grid, 1.0 / (half.std * math.sqrt(n)), voxel_size,
                              _spectrum_metadata(shape, source, "equalization input"))
    gain_frequency = input_spectrum.frequency
    gain = _gain_curve(input_spectrum, reference, lowpass_angstrom, lowpass_width, notes)
    if log is not None:
        for note in notes:
            log(note)

    # Filter one z-plane of the frequency grid at a time, in place; collect the output's profile
    # and its total power (Parseval) on the way.
    out_sums = np.zeros(grid.n_shells)
    power = 0.0
    # Filtering and the inverse transform take about a minute on a 928x928x464 tomogram.
    progress = Progress("equalizing", 2 * shape[0], "planes", log or (lambda _line: None), first_line=False)
    for kz in range(shape[0]):
        radius = grid.radius(kz)
        plane_gain = np.interp(radius, gain_frequency, gain).astype(np.float32)
        if kz == 0:
            plane_gain[0, 0] = 0.0  # DC: output mean 0
        plane = half.values[kz]
        plane *= plane_gain
        amplitude = np.abs(plane).ravel()
        weighted = amplitude * grid.weights
        out_sums += np.bincount(grid.shell(radius), weights=weighted, minlength=grid.n_shells)
        power += float(np.dot(weighted, amplitude))
        progress.advance()
    # Parseval: sum over the full spectrum of |F|^2 = N · sum of x^2, and the mean is 0.
    std_out = math.sqrt(power) / n
    if not std_out > 0:
        raise ParameterError("The equalization filter removed the whole signal (all gains are 0); "
                             "check the reference spectrum and the low-pass.")
    output_spectrum = _profile(out_sums, counts, grid, 1.0 / (std_out * math.sqrt(n)), voxel_size,
                               _spectrum_metadata(shape, source, "equalization output"))

    values = scipy.fft.ifft(half.values, axis=0, workers=workers, overwrite_x=True)  # in place
    del half
    if out is None and write_slab is None:
        out = np.empty(shape, dtype=np.float32)
    inverse_scale = np.float32(1.0 / std_out)
    for z0 in range(0, shape[0], _SLAB_SLICES):
        z1 = min(z0 + _SLAB_SLICES, shape[0])
        slab = scipy.fft.irfftn(values[z0:z1], s=shape[1:], axes=(1, 2), workers=workers)
        slab *= inverse_scale
        if out is None:
            write_slab(z0, slab)
        else:
            out[z0:z1] = slab
            _release_mapped_pages(out)
        progress.advance(z1 - z0)
    del values
    return Equalization(out, input_spectrum, output_spectrum, gain_frequency, gain, notes)


def equalize(data, voxel_size: float, reference: RadialSpectrum, lowpass_angstrom: float | None = None,
             lowpass_width: float = DEFAULT_LOWPASS_WIDTH, *, out: np.ndarray | None = None,
             workers: int = DEFAULT_WORKERS, source=None, log: Log | None = _log_stderr) -> np.ndarray:
    """Filter a tomogram so that its radial amplitude spectrum matches a reference.

    The half-spectrum of the input is multiplied by the radial gain
    ``g(f) = A_ref(f) / A_in(f) · L(f)`` where ``A_ref`` and ``A_in`` are the reference and input
    profiles interpolated (linearly) in physical frequency ``f`` (1/Å) and ``L`` the optional
    sigmoid low-pass (:func:`lowpass_response`); the result is transformed back with an inverse
    real FFT and normalised to mean 0, std 1.

    * A reference with another voxel size or box size is matched in physical frequency. Outside
      the reference's frequency range the gain is held at its value at the nearest end of the range
      (see :func:`_gain_curve`); the DC term is set to 0.
    * The input amplitude in the denominator is floored at ``AMPLITUDE_FLOOR`` × its maximum, so
      shells without signal cannot produce unbounded gains.
    * Every Fourier voxel gets the gain of its own radius (no hard zero at the corners of the
      Fourier box, no index-space radius, no mirroring).

    Args:
        data: (z, y, x) volume (any real dtype; memory-mapped MRC data are read slab by slab).
        voxel_size: voxel size of ``data`` in Å.
        reference: target profile (:func:`load_reference`, :func:`radial_spectrum`, :func:`read_spectrum`).
        lowpass_angstrom: cut-off resolution in Å (gain 0.5 at ``1 / lowpass_angstrom``), or ``None``.
            Must lie between 2 × voxel size (Nyquist) and the tomogram's longest extent.
        lowpass_width: 10–90 % transition width of the low-pass as a fraction of its cut-off
            frequency, in (0, 1]; the default 0.1 gives 90 % at 0.95 fc and 10 % at 1.05 fc.
        out: optional float32 array (e.g. a writable memory-mapped MRC) of the same shape to write to.
        workers: FFT threads.
        source: file name used in error messages.
        log: called with each note (e.g. a reference voxel size that differs from the input's);
            ``None`` for silence. Default: print to stderr.

    Returns:
        float32 array, mean 0, std 1 (``out`` if given).

    Memory: ≈ 2 × the float32 size of the tomogram (one complex64 half-spectrum plus the output;
    see :func:`equalize_volume` for streaming the output to disk instead).

    Raises:
        ParameterError: bad voxel size, low-pass or width; a reference that does not overlap the
            tomogram's frequencies.
        InputFileError: NaN/inf voxels or a constant volume.
    """
    return equalize_volume(data, voxel_size, reference, lowpass_angstrom, lowpass_width, out=out,
                           workers=workers, source=source, log=log).data


# --------------------------------------------------------------------------------------------
# Spectrum files
# --------------------------------------------------------------------------------------------

def spectrum_from_original(amplitudes, voxel_size: float, box_shape: Sequence[int],
                           metadata: dict[str, str] | None = None) -> RadialSpectrum:
    """Convert an original DeePiCt profile (index-unit shells) to physical frequency.

    The original (``DEEPICT.md`` §2.1) measured a box of shape ``box_shape`` with B = max(shape)/2
    shells over the index-space corner radius ``r_max = sqrt(Σ (n_k / 2)²)``, so shells are
    ``w = r_max / B`` index units wide and row j covers index radii [(j + 1) w, (j + 2) w). Row j is
    placed at its centre ``(j + 1.5) w`` and converted with ``f = r / (max(shape) · voxel_size)``.

    Approximation: the original radius was measured in index units on the raw grid, so for a
    non-cubic box one index step along a short axis is a larger frequency step than along the
    longest axis; the conversion is exact for cubic boxes and along the longest axes, and shells
    of non-cubic boxes mix somewhat higher physical frequencies than the assigned one. The
    amplitude scale (min–max normalised data, unnormalised FFT) differs from ours; it does not
    matter for equalization, whose output is re-normalised. The last row may lie beyond the
    reference's Nyquist frequency (the shells reach the corners of the Fourier box).

    Raises:
        ParameterError: bad voxel size or box shape.
        ValueError: fewer than 2 amplitudes or a row count that does not fit the box (callers
            reading files turn this into :class:`InputFileError`).
    """
    voxel_size = _checked_voxel_size(voxel_size, "reference voxel size")
    shape = _checked_box_shape(box_shape)
    amplitudes = np.asarray(amplitudes, dtype=np.float64).ravel()
    longest = max(shape)
    expected = {longest // 2, (longest + 1) // 2}
    if amplitudes.size not in expected:
        raise ValueError(f"it has {amplitudes.size} rows, but a box of {' × '.join(map(str, shape))} voxels gives "
                         f"max(shape)/2 = {longest / 2:g} rows")
    r_max = math.sqrt(sum((n / 2.0) ** 2 for n in shape))
    width = r_max / (longest / 2.0)
    radius = (np.arange(amplitudes.size) + 1.5) * width
    meta = {BOX_SHAPE_KEY: " ".join(str(s) for s in shape),
            "format": "deepict-original (index shells converted to 1/Å; approximate for non-cubic boxes)"}
    meta.update(metadata or {})
    return RadialSpectrum(radius / (longest * voxel_size), amplitudes, voxel_size, meta)


def write_spectrum(path, spectrum: RadialSpectrum) -> None:
    """Write a spectrum as our TSV (metadata comments, header, one row per shell), atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="\n") as handle:
            handle.write("# DeePiCt-scipion radial amplitude spectrum\n")
            if spectrum.voxel_size is not None:
                handle.write(f"# {VOXEL_SIZE_KEY}: {spectrum.voxel_size:g}\n")
            for key, value in spectrum.metadata.items():
                if key != VOXEL_SIZE_KEY:
                    handle.write(f"# {key}: {' '.join(value.split())}\n")
            handle.write(f"{FREQUENCY_COLUMN}\t{AMPLITUDE_COLUMN}\n")
            for f, a in zip(spectrum.frequency, spectrum.amplitude):
                handle.write(f"{f:.9g}\t{a:.9g}\n")


def _split(line: str) -> list[str]:
    return [c.strip() for c in line.split("\t")] if "\t" in line else line.split()


def _parse_float(text: str, path, row: int, column: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise InputFileError(path, f"row {row}: the {column} value {text!r} is not a number",
                             "Repair or re-create the spectrum file.") from None


def read_spectrum(path, voxel_size: float | None = None, box_shape: Sequence[int] | None = None) -> RadialSpectrum:
    """Read a spectrum TSV in our format or in the original DeePiCt format (see the module docstring).

    Args:
        path: the TSV file.
        voxel_size: Å; required for the original format (it has no frequencies, only shell
            indices); for our format only a fallback when the file does not name its voxel size.
        box_shape: voxel counts of the box the original spectrum was measured on (any order);
            required for the original format, ignored for ours.

    Raises:
        InputFileError: missing file, unreadable or binary file, unknown header, missing columns,
            non-numeric / NaN / negative values, too few rows, an original-format file without
            voxel size or box shape, or whose row count does not fit the box.
    """
    path = check_readable(path, "spectrum file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (UnicodeDecodeError, OSError) as exc:
        raise InputFileError(path, f"is not a readable text spectrum table ({exc.__class__.__name__})",
                             "Give a spectrum TSV (from 'deepict spectrum' or DeePiCt's extract_spectrum.py) "
                             "or an MRC tomogram ending in .mrc.") from None
    metadata: dict[str, str] = {}
    rows: list[tuple[int, list[str]]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            key, sep, value = stripped.lstrip("#").partition(":")
            if sep:
                metadata[key.strip()] = value.strip()
            continue
        rows.append((number, _split(stripped)))
    if not rows:
        raise InputFileError(path, "holds no spectrum table",
                             "Give a spectrum TSV with a header and one row per shell.")
    header = [h.lower() for h in rows[0][1]]
    body = rows[1:]
    if body and all(len(fields) == len(header) + 1 for _, fields in body):
        body = [(n, fields[1:]) for n, fields in body]  # a leading row-index column (pandas to_csv)
    if any(len(fields) != len(header) for _, fields in body):
        line = next(n for n, fields in body if len(fields) != len(header))
        raise InputFileError(path, f"line {line} has a different number of fields than the header {rows[0][1]}",
                             "Repair the table so that every row has one value per header column.")
    if FREQUENCY_COLUMN in header or AMPLITUDE_COLUMN in header:
        missing = [c for c in (FREQUENCY_COLUMN, AMPLITUDE_COLUMN) if c not in header]
        if missing:
            raise InputFileError(path, f"the header {rows[0][1]} lacks the column(s) {', '.join(missing)}",
                                 f"A DeePiCt-scipion spectrum needs the columns {FREQUENCY_COLUMN} and "
                                 f"{AMPLITUDE_COLUMN}.")
        fi, ai = header.index(FREQUENCY_COLUMN), header.index(AMPLITUDE_COLUMN)
        freq = [_parse_float(fields[fi], path, n, FREQUENCY_COLUMN) for n, fields in body]
        amp = [_parse_float(fields[ai], path, n, AMPLITUDE_COLUMN) for n, fields in body]
        size_text = metadata.get(VOXEL_SIZE_KEY)
        file_voxel = None
        if size_text is not None:
            try:
                file_voxel = float(size_text)
            except ValueError:
                raise InputFileError(path, f"the '{VOXEL_SIZE_KEY}' comment {size_text!r} is not a number",
                                     "Fix or remove that comment line.") from None
        meta = {k: v for k, v in metadata.items() if k != VOXEL_SIZE_KEY}
        meta["file"] = str(path)
        size = file_voxel if file_voxel else voxel_size
        return _spectrum_or_error(path, lambda: RadialSpectrum(freq, amp, size, meta))
    if "intensity" in header:
        ii = header.index("intensity")
        amp = [_parse_float(fields[ii], path, n, "intensity") for n, fields in body]
        if voxel_size is None or box_shape is None:
            raise InputFileError(
                path, "is an original DeePiCt spectrum (columns freq, intensity), whose shells are in index units "
                      "of the tomogram it was extracted from",
                "Give that tomogram's voxel size and box shape (--reference-voxel-size and --reference-box "
                "X Y Z) so that it can be converted to physical frequency.")
        meta = {"file": str(path)}
        return _spectrum_or_error(path, lambda: spectrum_from_original(amp, voxel_size, box_shape, meta))
    raise InputFileError(
        path, f"has an unrecognised header {rows[0][1]}",
        f"Expected '{FREQUENCY_COLUMN}<TAB>{AMPLITUDE_COLUMN}' (deepict spectrum) or 'freq<TAB>intensity' "
        "(DeePiCt extract_spectrum.py).")


def _spectrum_or_error(path, build: Callable[[], RadialSpectrum]) -> RadialSpectrum:
    try:
        return build()
    except ValueError as exc:
        problem = str(exc).removeprefix("invalid radial spectrum: ")
        raise InputFileError(
            path, f"is not a usable spectrum: {problem}",
            "Re-create it with 'deepict spectrum', or check the reference box and voxel size.") from None


def is_volume_path(path) -> bool:
    """Whether ``path`` names an MRC volume (by its ending) rather than a spectrum table."""
    return str(path).lower().endswith(_VOLUME_SUFFIXES)


def load_reference(path_or_tomogram, voxel_size: float | None = None, box_shape: Sequence[int] | None = None, *,
                   workers: int = DEFAULT_WORKERS, log: Log | None = _log_stderr) -> RadialSpectrum:
    """The reference spectrum for :func:`equalize`, from a tomogram or a spectrum TSV.

    Args:
        path_or_tomogram: an MRC tomogram (``.mrc``, ``.rec``, ``.map``, ``.st``, ``.ali``,
            ``.mrcs``, optionally ``.gz``): its spectrum is measured with :func:`radial_spectrum`;
            any other file is read as a spectrum TSV in our or the original DeePiCt format
            (:func:`read_spectrum`).
        voxel_size: Å. For a tomogram it overrides the header's voxel size (a note is logged when
            they differ) and is required when the header has none. Required for an original
            DeePiCt TSV; a fallback for our TSV.
        box_shape: voxel counts (any order) of the tomogram an original DeePiCt TSV was extracted
            from; required for that format, otherwise ignored.
        workers: FFT threads.
        log: receives notes; ``None`` for silence.

    Raises:
        InputFileError: missing, unreadable or invalid files (see :func:`read_spectrum` and
            :func:`~deepict.io.read_volume`), a tomogram without voxel size.
        ParameterError: a bad voxel size or box shape.
    """
    if voxel_size is not None:
        voxel_size = _checked_voxel_size(voxel_size, "reference voxel size")
    if box_shape is not None:
        box_shape = _checked_box_shape(box_shape)
    path = Path(path_or_tomogram)
    if not is_volume_path(path):
        return read_spectrum(path, voxel_size, box_shape)
    volume = read_volume(path, check_finite=False)  # finiteness is checked while transforming
    size = voxel_size if voxel_size is not None else volume.voxel_size
    if size is None:
        raise InputFileError(path, "has no voxel size in its header",
                             "Give the reference's voxel size (--reference-voxel-size).")
    if voxel_size is not None and volume.voxel_size and log is not None \
            and abs(volume.voxel_size - voxel_size) > 1e-3 * voxel_size:
        log(f"using the given reference voxel size {voxel_size:g} Å instead of {volume.voxel_size:g} Å "
            f"from the header of {path}")
    spectrum = radial_spectrum(volume.data, size, workers=workers, source=path)
    spectrum.metadata["format"] = "deepict (measured on a tomogram)"
    return spectrum


def default_workers() -> int:
    """FFT threads to use by default: 2, or fewer if fewer CPUs are available to this process."""
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        available = os.cpu_count() or 1
    return max(1, min(DEFAULT_WORKERS, available))
