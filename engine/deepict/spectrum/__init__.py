"""Radial amplitude spectra and spectrum equalization ("spectrum matching") of tomograms.

One module per job: :mod:`.profile` (the :class:`RadialSpectrum` container), :mod:`.measure`
(measuring it: the half-space FFT and its radial shells), :mod:`.equalize` (matching a tomogram to
a reference), :mod:`.files` (our spectrum TSV and the original DeePiCt one) and :mod:`.reference`
(a reference from a tomogram or a file). Their public names are importable from here.
"""

from deepict.conventions import EQUALIZE_MODES, VOXEL_SIZE_KEY
from deepict.conventions import SPECTRUM_AMPLITUDE_COLUMN as AMPLITUDE_COLUMN
from deepict.conventions import SPECTRUM_FREQUENCY_COLUMN as FREQUENCY_COLUMN
from deepict.spectrum.equalize import (AMPLITUDE_FLOOR, DEFAULT_LOWPASS_WIDTH, Equalization, equalize, equalize_volume,
                                       lowpass_response)
from deepict.spectrum.files import read_spectrum, spectrum_from_original, write_spectrum
from deepict.spectrum.measure import DEFAULT_WORKERS, default_workers, radial_spectrum
from deepict.spectrum.profile import BOX_SHAPE_KEY, RadialSpectrum
from deepict.spectrum.reference import is_volume_path, load_reference, mean_spectrum, spectrum_mismatch

__all__ = ["AMPLITUDE_COLUMN", "AMPLITUDE_FLOOR", "BOX_SHAPE_KEY", "DEFAULT_LOWPASS_WIDTH", "DEFAULT_WORKERS",
           "EQUALIZE_MODES", "Equalization", "FREQUENCY_COLUMN", "RadialSpectrum", "VOXEL_SIZE_KEY",
           "default_workers", "equalize", "equalize_volume", "is_volume_path", "load_reference", "lowpass_response",
           "mean_spectrum", "spectrum_mismatch",
           "radial_spectrum", "read_spectrum", "spectrum_from_original", "write_spectrum"]
