"""Equalizing a tomogram's radial amplitude spectrum to a reference ("spectrum matching").

DeePiCt's published networks were trained on tomograms whose Fourier amplitude profile had been
matched to one reference tomogram. This module applies that matching, the idea of the original
``spectrum_filter/`` scripts (see ``DEEPICT.md`` §2), without their defects (for the physical
frequency, see :mod:`.measure`):

* **Consistent radial scale.** The profile is sampled at the same radii it is applied at
  (the original applied bin *j* at radius *j*, though it was measured at ≈ 1.5–1.7 *j*).
* **No holes in the filter.** The gain is defined at every frequency, the corners of the Fourier
  cube included; beyond the frequency range of the reference it is held at its last value
  (the original zeroed everything beyond radius B − 1 and mirrored even-sized axes off by one).
* **Real output.** The filtered spectrum is transformed back with an inverse *real* FFT; the result
  is normalised to mean 0 and standard deviation 1 and stored as float32 (the original took the
  complex modulus and did not re-normalise).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import scipy.fft
from scipy.special import expit

from deepict.conventions import SPECTRUM_LOWPASS_WIDTH, voxel_sizes_differ
from deepict.errors import ParameterError
from deepict.progress import Progress
from deepict.spectrum.measure import (DEFAULT_WORKERS, FFT_SLAB_SLICES, FrequencyGrid, HalfSpectrum, accumulate_profile,
                                      checked_volume, release_mapped_pages, shell_profile, spectrum_metadata)
from deepict.spectrum.profile import RadialSpectrum, checked_voxel_size

#: Default 10 %–90 % transition width of the low-pass (the value lives in conventions).
DEFAULT_LOWPASS_WIDTH = SPECTRUM_LOWPASS_WIDTH

#: Input gains are computed against an input amplitude floored at this fraction of its maximum,
#: so that (near-)empty shells of the input cannot produce unbounded gains.
AMPLITUDE_FLOOR = 1e-4

Log = Callable[[str], None]
#: Receives the output volume slab by slab: ``write_slab(z0, float32 slab of slices z0:z0+len)``.
SlabWriter = Callable[[int, np.ndarray], None]


def log_to_stderr(message: str) -> None:
    print(f"deepict: {message}", file=sys.stderr)


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
                    log: Log | None = log_to_stderr) -> Equalization:
    """Equalize a tomogram's radial amplitude spectrum to a reference (see :func:`equalize`).

    Returns an :class:`Equalization` holding the volume plus the input and output spectra, the
    gain curve and notes; :func:`equalize` returns only the volume.

    ``write_slab(z0, slab)``, if given, receives the output in float32 z slabs (e.g. the writer of
    :func:`~deepict.io.volume_writer`) instead of it being assembled in memory; the
    result's ``data`` is then ``None`` and the peak memory ≈ 1 × the float32 size of the tomogram.
    """
    data = checked_volume(data)
    voxel_size = checked_voxel_size(voxel_size)
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
    if voxel_sizes_differ(reference.voxel_size, voxel_size):
        notes.append(f"the reference was measured at {reference.voxel_size:g} Å/voxel and the tomogram has "
                     f"{voxel_size:g} Å/voxel: handled in physical frequency (1/Å)")

    grid = FrequencyGrid(shape, voxel_size, None)
    half = HalfSpectrum(data, workers, source)
    n = half.size
    sums, counts = accumulate_profile(half, grid)
    input_spectrum = shell_profile(sums, counts, grid, 1.0 / (half.std * math.sqrt(n)), voxel_size,
                              spectrum_metadata(shape, source, "equalization input"))
    gain_frequency = input_spectrum.frequency
    gain = _gain_curve(input_spectrum, reference, lowpass_angstrom, lowpass_width, notes)
    if log is not None:
        for note in notes:
            log(note)

    # Filter one z-plane of the frequency grid at a time, in place; collect the output's profile
    # and its total power (Parseval) on the way.
    out_sums = np.zeros(grid.n_shells)
    power = 0.0
    # Filtering and the inverse transform are the long part on a big tomogram: report their progress.
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
    output_spectrum = shell_profile(out_sums, counts, grid, 1.0 / (std_out * math.sqrt(n)), voxel_size,
                               spectrum_metadata(shape, source, "equalization output"))

    values = scipy.fft.ifft(half.values, axis=0, workers=workers, overwrite_x=True)  # in place
    del half
    if out is None and write_slab is None:
        out = np.empty(shape, dtype=np.float32)
    inverse_scale = np.float32(1.0 / std_out)
    for z0 in range(0, shape[0], FFT_SLAB_SLICES):
        z1 = min(z0 + FFT_SLAB_SLICES, shape[0])
        slab = scipy.fft.irfftn(values[z0:z1], s=shape[1:], axes=(1, 2), workers=workers)
        slab *= inverse_scale
        if out is None:
            write_slab(z0, slab)
        else:
            out[z0:z1] = slab
            release_mapped_pages(out)
        progress.advance(z1 - z0)
    del values
    return Equalization(out, input_spectrum, output_spectrum, gain_frequency, gain, notes)


def equalize(data, voxel_size: float, reference: RadialSpectrum, lowpass_angstrom: float | None = None,
             lowpass_width: float = DEFAULT_LOWPASS_WIDTH, *, out: np.ndarray | None = None,
             workers: int = DEFAULT_WORKERS, source=None, log: Log | None = log_to_stderr) -> np.ndarray:
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
