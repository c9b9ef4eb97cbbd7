"""Calibrating an ensemble's post-processing on its members' training data.

An ensemble's averaged map is smoother than each member's, so the threshold and minimum cluster
size its members chose need not suit it. Given the members' training tomograms and coordinates,
the same validation slabs that training set aside (the high-x part, ``val_fraction`` of the width)
are predicted by the model and the post-processing is chosen there exactly as after a training
(:func:`~deepict.train.train3d.calibrate_on_training_tomograms`); the tomograms are equalized to
the model's reference spectrum first, as training equalized them.
"""

from __future__ import annotations

from typing import Callable

from deepict.errors import ParameterError
from deepict.infer.model_spectrum import model_reference_spectrum
from deepict.io import read_coordinates, volume_mean_std
from deepict.nn.ensemble import shared_validation_split
from deepict.nn.model_files import ModelInfo
from deepict.progress import Progress
from deepict.spectrum import DEFAULT_LOWPASS_WIDTH, default_workers, equalize_volume
from deepict.train.config import TrainConfig
from deepict.train.data3d import load_training_tomograms
from deepict.train.train3d import apply_calibration, calibrate_on_training_tomograms, padded_tomogram


def recalibrate(network, info: ModelInfo, tomogram_paths: list, coords: list, device,
                voxel_size: float | None = None, log: Callable[[str], None] = print) -> dict | None:
    """Calibrate ensemble ``network``'s post-processing on its members' training tomograms and make it ``info``'s
    (in place).

    The members' shared validation split (:func:`~deepict.nn.ensemble.shared_validation_split`) says where the
    validation slabs lie; ``coords``: one CSV per tomogram. Returns the calibration, or ``None`` where the data
    hold too few particles (the post-processing is then left as it was).
    """
    if info.label_kind != "spheres" or len(info.classes) != 1 or not info.sphere_radius:
        raise ParameterError("only one-class particle models (trained on coordinates) have a calibrated "
                             f"post-processing; this model has classes {info.classes} ({info.label_kind})")
    if len(coords) != len(tomogram_paths):
        raise ParameterError(f"{len(tomogram_paths)} tomogram(s) but {len(coords)} coordinate file(s): give one "
                             "CSV per tomogram, in the same order")
    if not any(len(read_coordinates(path)) for path in coords):  # before minutes of prediction, not after
        raise ParameterError(f"{', '.join(str(path) for path in coords)} hold no coordinates: calibrating needs the "
                             "annotated particles of the networks' training tomograms (their --coords files)")
    config = TrainConfig(classes=list(info.classes), label_kind=info.label_kind,
                         sphere_radius=dict(info.sphere_radius), **shared_validation_split(info))
    tomograms = load_training_tomograms(tomogram_paths, coords=[coords], radii=[info.sphere_radius[info.classes[0]]],
                                        voxel_size=voxel_size, training_voxel_size=info.voxel_size, log=log)
    reference = model_reference_spectrum(info)
    if reference is not None:
        record = info.spectrum
        progress = Progress("equalizing the training tomograms to the model's reference spectrum", len(tomograms),
                            "tomograms", log)
        for tomo in tomograms:
            tomo.data = equalize_volume(tomo.data, tomo.voxel_size, reference, record.get("lowpass_angstrom"),
                                        record.get("lowpass_width") or DEFAULT_LOWPASS_WIDTH,
                                        workers=default_workers(), source=tomo.name, log=None).data
            progress.advance()
    padded = [padded_tomogram(tomo, config.patch_size) for tomo in tomograms]
    stats = [volume_mean_std(tomo.data) for tomo in padded]
    calibration = calibrate_on_training_tomograms(network.to(device), padded, stats, config, device, log)
    if calibration is None:
        log("the post-processing stays as it was: the training kept no validation slabs (--val-fraction 0) or "
            "they hold too few annotated particles")
    apply_calibration(info, calibration)
    return calibration
