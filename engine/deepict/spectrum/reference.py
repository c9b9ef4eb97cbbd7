"""The reference spectrum of an equalization (measured on a tomogram, read from a spectrum file, or averaged over
several tomograms) and how far another spectrum departs from it."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from deepict.conventions import voxel_sizes_differ
from deepict.errors import InputFileError
from deepict.io import read_volume
from deepict.spectrum.equalize import Log, log_to_stderr
from deepict.spectrum.files import read_spectrum
from deepict.spectrum.measure import DEFAULT_WORKERS, radial_spectrum
from deepict.spectrum.profile import RadialSpectrum, checked_box_shape, checked_voxel_size

#: File name endings treated as MRC volumes by :func:`load_reference`.
_VOLUME_SUFFIXES = (".mrc", ".rec", ".map", ".st", ".ali", ".mrcs", ".mrc.gz", ".rec.gz", ".map.gz")


def is_volume_path(path) -> bool:
    """Whether ``path`` names an MRC volume (by its ending) rather than a spectrum table."""
    return str(path).lower().endswith(_VOLUME_SUFFIXES)


def load_reference(path_or_tomogram, voxel_size: float | None = None, box_shape: Sequence[int] | None = None, *,
                   workers: int = DEFAULT_WORKERS, log: Log | None = log_to_stderr) -> RadialSpectrum:
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
        voxel_size = checked_voxel_size(voxel_size, "reference voxel size")
    if box_shape is not None:
        box_shape = checked_box_shape(box_shape)
    path = Path(path_or_tomogram)
    if not is_volume_path(path):
        return read_spectrum(path, voxel_size, box_shape)
    volume = read_volume(path, check_finite=False)  # finiteness is checked while transforming
    size = voxel_size if voxel_size is not None else volume.voxel_size
    if size is None:
        raise InputFileError(path, "has no voxel size in its header",
                             "Give the reference's voxel size (--reference-voxel-size).")
    if log is not None and voxel_sizes_differ(voxel_size, volume.voxel_size):
        log(f"using the given reference voxel size {voxel_size:g} Å instead of {volume.voxel_size:g} Å "
            f"from the header of {path}")
    spectrum = radial_spectrum(volume.data, size, workers=workers, source=path)
    spectrum.metadata["format"] = "deepict (measured on a tomogram)"
    return spectrum


def mean_spectrum(spectra: Sequence[RadialSpectrum], source: str = "mean spectrum") -> RadialSpectrum:
    """The average shape of several spectra of one voxel size, on the first one's shells.

    Each spectrum is scaled to unit mean amplitude first, so that a tomogram with larger values (another
    normalisation or dose) does not outweigh the others: only the shape of a reference matters.
    """
    if not spectra:
        raise ValueError("no spectra to average")
    first = spectra[0]
    shapes = [s.at(first.frequency) for s in spectra]
    mean = sum(shape / max(float(shape.mean()), 1e-30) for shape in shapes) / len(shapes)
    return RadialSpectrum(first.frequency, mean, first.voxel_size, {**first.metadata, "source": source})


def spectrum_mismatch(spectrum: RadialSpectrum, reference: RadialSpectrum) -> tuple[float, float]:
    """(largest factor, frequency in 1/Å) by which the shape of ``spectrum`` departs from ``reference``.

    The overall scale is removed first (the median ratio), and only the band both resolve is compared:
    from the fourth shell (the lowest shells hold the object's extent, not the microscope) to the
    lower of their highest frequencies. Tomograms of one microscope and defocus stay within about
    1.3x; a defocus tomogram differs from phase-plate data by 10x or more.
    """
    top = min(spectrum.max_frequency, reference.max_frequency)
    inside = (spectrum.frequency >= max(reference.frequency[0], spectrum.frequency[min(3, len(spectrum) - 1)])) \
        & (spectrum.frequency <= top)
    if inside.sum() < 3:
        return 1.0, float(spectrum.frequency[0])
    ratio = spectrum.amplitude[inside] / np.maximum(reference.at(spectrum.frequency[inside]), 1e-30)
    ratio = np.maximum(ratio, 1e-30) / max(float(np.median(ratio)), 1e-30)
    worst = int(np.argmax(np.abs(np.log(ratio))))
    return float(max(ratio[worst], 1 / ratio[worst])), float(spectrum.frequency[inside][worst])
