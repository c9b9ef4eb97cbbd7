"""Spectrum equalization of training tomograms: which reference, and the options that choose it.

``train3d`` and ``train2d`` equalize their tomograms in memory (``--equalize-to``: ``auto`` = their mean
spectrum, or a reference tomogram / spectrum TSV) and store the reference in the model, so that
inference equalizes every new tomogram to it; ``train3d --spectrum-reference`` instead records the
reference that the tomograms were equalized to beforehand.
"""

from __future__ import annotations

from typing import Iterable

from deepict.conventions import EQUALIZE_TO_MEAN, EQUALIZE_TO_NONE
from deepict.errors import ParameterError
from deepict.infer.model_spectrum import spectrum_record
from deepict.spectrum import RadialSpectrum, default_workers, load_reference, mean_spectrum


def training_equalization(spectrum_reference_path, equalize_to) -> str | None:
    """What the training tomograms are equalized to now: ``auto``, a reference file, or ``None``.

    ``none`` (or no value) trains on the tomograms as they are, and so does the default ``auto``
    when ``--spectrum-reference`` says they were equalized before; a reference file together with
    ``--spectrum-reference`` is two answers to one question and refused.
    """
    if equalize_to in (None, EQUALIZE_TO_NONE):
        return None
    if spectrum_reference_path:
        if equalize_to == EQUALIZE_TO_MEAN:
            return None
        raise ParameterError("give --spectrum-reference (the tomograms were equalized to it before) or "
                             "--equalize-to REFERENCE (equalize them now), not both")
    return equalize_to


def check_spectrum_options(spectrum_reference_path, equalize_to, lowpass_angstrom, lowpass_width) -> None:
    """The spectrum options of a training: one way to give the reference, and a sensible low-pass."""
    equalize_to = training_equalization(spectrum_reference_path, equalize_to)
    if not (spectrum_reference_path or equalize_to):
        if lowpass_angstrom is not None:
            raise ParameterError("--spectrum-lowpass-angstrom needs --equalize-to or --spectrum-reference")
        return
    if lowpass_angstrom is not None and not lowpass_angstrom > 0:
        raise ParameterError(f"--spectrum-lowpass-angstrom must be a positive resolution in Å, got "
                             f"{lowpass_angstrom:g}")
    if not 0 < lowpass_width <= 1:
        raise ParameterError(f"--spectrum-lowpass-width must lie in (0, 1], got {lowpass_width:g}")


def spectrum_reference(path, lowpass_angstrom, lowpass_width):
    """(reference spectrum, ``ModelInfo.spectrum``) of the reference the training tomograms were equalized
    to, with the low-pass of that equalization; (None, None) without a reference."""
    if not path:
        return None, None
    reference = load_reference(path, workers=default_workers(), log=None)
    return reference, spectrum_record(reference, lowpass_angstrom, lowpass_width, source=str(path))


def training_reference(equalize_to: str, count: int, spectra: Iterable[RadialSpectrum]) -> RadialSpectrum:
    """The reference spectrum of ``--equalize-to``: the mean of the ``count`` training tomograms'
    ``spectra`` (consumed only for ``auto``) or the reference file; its ``metadata["source"]`` names it."""
    if equalize_to == EQUALIZE_TO_MEAN:
        return mean_spectrum(list(spectra), f"mean spectrum of the {count} training tomograms")
    reference = load_reference(equalize_to, workers=default_workers(), log=None)
    reference.metadata["source"] = str(equalize_to)
    return reference
