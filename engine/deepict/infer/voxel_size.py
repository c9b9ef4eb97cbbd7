"""Whether a tomogram has the voxel size a model was trained at (2D and 3D models alike)."""

from __future__ import annotations

from deepict.conventions import fits_model_voxel_size, voxel_size_difference
from deepict.errors import InputFileError


def check_model_voxel_size(tomogram_voxel_size: float | None, model_voxel_size: float | None, tomogram_path,
                           model_path=None, *, ignore: bool = False, refuse_unknown: bool = True) -> str | None:
    """Refuse a tomogram whose voxel size lies too far from the model's.

    "Too far" is :data:`deepict.conventions.MODEL_VOXEL_SIZE_TOLERANCE`.

    A voxel size unknown on either side is refused too (``refuse_unknown``, unless ``ignore``), or
    only warned about. Returns a warning text when the check is not made (an unknown voxel size, or
    ``ignore`` given for a mismatch), else ``None``.
    """
    model_name = f"the model {model_path}" if model_path else "the model"
    if not tomogram_voxel_size or not model_voxel_size:
        if refuse_unknown and not ignore:
            if not model_voxel_size:
                raise InputFileError(
                    model_path or "model", "records no voxel size (its training tomograms had none in their headers)",
                    "Train it again with --voxel-size, or apply it anyway with --ignore-voxel-size if you know the "
                    "tomogram has the training sampling.")
            raise InputFileError(tomogram_path, "has no voxel size in its header (0 Å)",
                                 f"Give it with --voxel-size (the model was trained at {model_voxel_size:g} Å), or "
                                 "fix the header.")
        return ("voxel size unknown (tomogram: {}, model: {}); cannot check that the tomogram matches the model"
                .format(tomogram_voxel_size or "none in header", model_voxel_size or "not recorded"))
    if fits_model_voxel_size(tomogram_voxel_size, model_voxel_size):
        return None
    difference = voxel_size_difference(tomogram_voxel_size, model_voxel_size)
    if ignore:
        return (f"voxel size {tomogram_voxel_size:g} Å differs from the model's {model_voxel_size:g} Å "
                f"by {100 * difference:.0f}% (ignored as asked)")
    factor = model_voxel_size / tomogram_voxel_size
    raise InputFileError(
        tomogram_path,
        f"its voxel size {tomogram_voxel_size:g} Å differs from the {model_voxel_size:g} Å {model_name} was trained "
        f"at ({100 * difference:.0f}% off; structures look different at another scale)",
        f"Rescale or bin the tomogram by {factor:.3g} to {model_voxel_size:g} Å/voxel (e.g. with IMOD 'binvol' or "
        f"the Scipion tomogram resize protocol), or train a model at {tomogram_voxel_size:g} Å; override with "
        "--ignore-voxel-size only if the header is wrong.")
