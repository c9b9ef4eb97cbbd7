"""How a 3D model is applied to a tomogram: the inference parameters the pick and segment3d jobs share.

Declared here, beside the inference that uses them, with their defaults and help (:mod:`deepict.parameters`);
:mod:`deepict.jobs` groups them into the pick and segment3d jobs. Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass

from deepict.conventions import EQUALIZE_MODES, ROTATED_THRESHOLD_FLOOR, ROTATED_THRESHOLD_SHIFT
from deepict.parameters import device_parameter, parameter

#: The inference box's side and blended margin (voxels), for the jobs and for the engine's own predictions
#: (calibration, hard negatives).
DEFAULT_WINDOW, DEFAULT_MARGIN = 128, 12


@dataclass(kw_only=True)
class InferenceOptions:
    """How a 3D model is applied to a tomogram (sliding window, device, voxel size, equalization)."""

    window: int = parameter(DEFAULT_WINDOW, help="inference box side in voxels (default %(default)s; larger is "
                                                 "faster, must be divisible by 2^depth)")
    margin: int = parameter(DEFAULT_MARGIN, help="blended margin of each box in voxels (default %(default)s)")
    batch_size: int = parameter(2, help="boxes per forward pass (default %(default)s)")
    test_time_mirrors: bool = parameter(False, help="average each box's prediction with those of its mirror "
                                                    "images in x, y and both (test-time augmentation): smoother "
                                                    "probabilities at four times the network's time")
    test_time_rotations: bool = parameter(False, help="average each box's prediction with those of the box turned by "
                                                      "90, 180 and 270° about z (test-time augmentation; with the "
                                                      "mirrors, over all eight in-plane symmetries): four times the "
                                                      "network's time (eight with the mirrors). A particle model's "
                                                      f"calibrated threshold is then taken {ROTATED_THRESHOLD_SHIFT:g} "
                                                      f"lower (not below {ROTATED_THRESHOLD_FLOOR:g}) unless a "
                                                      "threshold is given: where the averaged maps were best on the "
                                                      "development data. Picking keeps the calibrated threshold "
                                                      "where the lower one joins a weak network's map into one "
                                                      "cluster")
    device: str = device_parameter()
    voxel_size: float | None = parameter(None, help="voxel size of the tomogram in Å (default: its header)")
    ignore_voxel_size: bool = parameter(False, help="apply the model to the tomogram as it is even if its voxel "
                                                    "size differs from the model's (by default a tomogram more "
                                                    "than 5%% off is rescaled to the model's voxel size, up to 4x "
                                                    "either way, and the results given back at its own)")
    equalize: str = parameter("auto", choices=EQUALIZE_MODES,
                              help="equalize the tomogram to the model's reference spectrum (and low-pass) before "
                                   "prediction: auto = if the model stores one (train3d's default, --equalize-to auto, "
                                   "stores it; so does --spectrum-reference), "
                                   "on = always (error if it has none), off = never, e.g. for tomograms already "
                                   "equalized (default %(default)s). The equalized tomogram is a temporary file "
                                   "next to the output")
