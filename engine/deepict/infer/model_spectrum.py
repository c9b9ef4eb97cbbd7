"""The reference spectrum a 3D or 2D model stores, and equalizing a tomogram to it before prediction.

A model trained on spectrum-equalized tomograms (``train3d`` / ``train2d --equalize-to``, or tomograms
equalized beforehand and ``--spectrum-reference``) stores that reference (``ModelInfo.spectrum``, see
:func:`spectrum_record`); pick, segment3d and segment2d equalize each tomogram to it on the fly
(``--equalize auto``, the default), streamed to a temporary file. A 3D model also stores the mean
spectrum of its training tomograms (``ModelInfo.training_spectrum``), against which a tomogram that
is not equalized is checked (:func:`warn_if_unlike_training`).
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from deepict.conventions import EQUALIZE_MODES
from deepict.errors import InputFileError, ParameterError
from deepict.io import read_volume, scratch_directory, volume_writer
from deepict.nn.model_files import ModelInfo, read_model_info
from deepict.spectrum import (DEFAULT_LOWPASS_WIDTH, RadialSpectrum, default_workers, equalize_volume,
                              radial_spectrum, spectrum_mismatch)


def spectrum_record(spectrum: RadialSpectrum, lowpass_angstrom: float | None = None,
                    lowpass_width: float = DEFAULT_LOWPASS_WIDTH, source: str | None = None) -> dict:
    """``ModelInfo.spectrum`` (plain data) for a reference spectrum the training tomograms were equalized to.

    ``lowpass_angstrom`` / ``lowpass_width`` are the low-pass applied with that equalization; the
    same low-pass is applied when a tomogram is equalized on the fly at inference.
    """
    return {"frequency": [float(f) for f in spectrum.frequency],
            "amplitude": [float(a) for a in spectrum.amplitude],
            "voxel_size": spectrum.voxel_size,
            "lowpass_angstrom": None if lowpass_angstrom is None else float(lowpass_angstrom),
            "lowpass_width": float(lowpass_width),
            "source": source or spectrum.metadata.get("file") or spectrum.metadata.get("source")}


def model_reference_spectrum(info: ModelInfo, model_path=None) -> RadialSpectrum | None:
    """The reference spectrum stored in a model (``None`` if it has none)."""
    record = info.spectrum
    if record is None:
        return None
    try:
        return RadialSpectrum(record["frequency"], record["amplitude"], record.get("voxel_size"),
                              {"source": f"reference spectrum of {model_path}"})
    except (KeyError, TypeError, ValueError) as exc:
        raise InputFileError(model_path or "model", f"holds a damaged reference spectrum ({exc})",
                             "Train the model again with --spectrum-reference, or use --equalize off.") from None


def should_equalize(info: ModelInfo, mode: str, model_path=None) -> bool:
    """Whether a tomogram is equalized to the model's spectrum before prediction (see EQUALIZE_MODES)."""
    if mode not in EQUALIZE_MODES:
        raise ParameterError(f"--equalize must be one of {', '.join(EQUALIZE_MODES)}, got {mode!r}")
    if mode == "off":
        return False
    if info.spectrum is None:
        if mode == "on":
            raise ParameterError(
                f"--equalize on: the model {model_path} stores no reference spectrum (it was trained without "
                "--equalize-to or --spectrum-reference). Equalize the tomogram yourself with 'deepict equalize', "
                "or use --equalize auto or off.")
        return False
    return True


def equalize_to_model(info: ModelInfo, model_path, tomogram, voxel_size: float, tomogram_path, out_path,
                       log) -> None:
    """Stream the tomogram equalized to the model's reference spectrum (and low-pass) to ``out_path``."""
    reference = model_reference_spectrum(info, model_path)
    record = info.spectrum
    lowpass = record.get("lowpass_angstrom")
    with volume_writer(out_path, tomogram.shape, np.float32, voxel_size) as write_slab:
        equalize_volume(tomogram, voxel_size, reference, lowpass_angstrom=lowpass,
                        lowpass_width=record.get("lowpass_width") or DEFAULT_LOWPASS_WIDTH, write_slab=write_slab,
                        workers=default_workers(), source=tomogram_path, log=lambda m: log(f"note: {m}"))
    log(f"equalized {tomogram_path} to the model's reference spectrum"
        + (f" (low-pass {lowpass:g} Å)" if lowpass else ""))


#: A tomogram whose spectrum departs from the training tomograms' by more than this factor at some
#: frequency is reported as unlike the training data (one microscope and defocus stay within about
#: 1.3x; defocus-only tomograms differ from phase-plate ones by 10x or more).
SPECTRUM_MISMATCH_WARNING = 3.0
#: Edge of the central box whose spectrum is compared (enough shells, a bounded cost on any tomogram).
_MISMATCH_BOX = 256


def warn_if_unlike_training(info: ModelInfo, data, voxel_size: float, tomogram_path, log) -> None:
    """Warn when the tomogram's spectrum is far from the training tomograms' (``ModelInfo.training_spectrum``)."""
    record = info.training_spectrum
    if record is None or not voxel_size:
        return
    box = tuple(slice(max(0, (n - _MISMATCH_BOX) // 2), max(0, (n - _MISMATCH_BOX) // 2) + _MISMATCH_BOX)
                for n in data.shape)
    training = RadialSpectrum(record["frequency"], record["amplitude"], record.get("voxel_size"))
    factor, frequency = spectrum_mismatch(radial_spectrum(np.asarray(data[box], np.float32), voxel_size,
                                                          workers=default_workers()), training)
    if factor > SPECTRUM_MISMATCH_WARNING:
        log(f"warning: the spectrum of {tomogram_path} differs from the training tomograms' by {factor:.0f}x (at "
            f"{1 / frequency:.0f} Å): it looks unlike the training data (another microscope, defocus or filter) and "
            "the model may find little in it. Train with --equalize-to auto (Train 3D: 'Equalize to the tomograms' "
            "mean spectrum'), so that new tomograms are equalized to the training data.")


@contextmanager
def equalized_for_model(model_path, tomogram_path, mode: str, beside, log,
                        voxel_size: float | None = None) -> Iterator[str]:
    """The tomogram to give the model: ``tomogram_path`` itself, or (when :func:`should_equalize`)
    a copy equalized to the model's reference spectrum in a scratch folder beside ``beside``, deleted
    on leaving. ``voxel_size`` (Å) overrides the tomogram's header. For ``segment2d``, which reads its
    tomogram from a file."""
    info = read_model_info(model_path)
    if not should_equalize(info, mode, model_path):
        yield tomogram_path
        return
    scratch = scratch_directory(beside)
    try:
        volume = read_volume(tomogram_path)
        equalized = str(Path(scratch.name) / Path(tomogram_path).name)
        equalize_to_model(info, model_path, volume.data, voxel_size or volume.voxel_size or info.voxel_size or 1.0,
                          tomogram_path, equalized, log)
        volume = None  # release the memory map before the scratch folder goes
        yield equalized
    finally:
        scratch.cleanup()
