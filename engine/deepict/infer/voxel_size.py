"""Whether a tomogram has the voxel size a model was trained at (2D and 3D models alike), or is rescaled to it."""

from __future__ import annotations

from deepict.conventions import (MAX_RESCALE_FACTOR, fits_model_voxel_size, rescale_factor, rescale_within_limit,
                                  voxel_size_difference)
from deepict.errors import InputFileError


def check_model_voxel_size(tomogram_voxel_size: float | None, model_voxel_size: float | None, tomogram_path,
                           model_path=None, *, ignore: bool = False, refuse_unknown: bool = True) -> str | None:
    """Refuse a tomogram that cannot be brought to the model's voxel size.

    A tomogram within :data:`deepict.conventions.MODEL_VOXEL_SIZE_TOLERANCE` of the model's voxel
    size is used as it is; one further off is rescaled to it (:func:`rescale_target`), up to
    :data:`deepict.conventions.MAX_RESCALE_FACTOR` either way; beyond that it is refused.

    A voxel size unknown on either side is refused too (``refuse_unknown``, unless ``ignore``), or
    only warned about. Returns a warning text when the check is not made (an unknown voxel size, or
    ``ignore`` given for a mismatch), else ``None``.
    """
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
    if ignore:
        difference = voxel_size_difference(tomogram_voxel_size, model_voxel_size)
        return (f"voxel size {tomogram_voxel_size:g} Å differs from the model's {model_voxel_size:g} Å "
                f"by {100 * difference:.0f}% (applied as is, as asked by --ignore-voxel-size)")
    if not rescale_within_limit(tomogram_voxel_size, model_voxel_size):
        model_name = f"the model {model_path}" if model_path else "the model"
        factor = rescale_factor(tomogram_voxel_size, model_voxel_size)
        raise InputFileError(
            tomogram_path,
            f"its voxel size {tomogram_voxel_size:g} Å would have to be rescaled by {factor:.3g} to the "
            f"{model_voxel_size:g} Å {model_name} was trained at, more than the {MAX_RESCALE_FACTOR:g}x DeePiCt "
            "rescales on the fly",
            f"Bin or rescale the tomogram to within {MAX_RESCALE_FACTOR:g}x of {model_voxel_size:g} Å/voxel first "
            f"(e.g. with IMOD 'binvol'), or train a model at {tomogram_voxel_size:g} Å; override with "
            "--ignore-voxel-size only if the header is wrong.")
    return None


def rescale_target(tomogram_voxel_size: float | None, model_voxel_size: float | None, *,
                   ignore: bool = False) -> float | None:
    """The voxel size a tomogram is rescaled to before prediction, or ``None`` when it is used as it is.

    Call after :func:`check_model_voxel_size` (which refuses what cannot be rescaled).
    """
    if ignore or not tomogram_voxel_size or not model_voxel_size:
        return None
    if fits_model_voxel_size(tomogram_voxel_size, model_voxel_size):
        return None
    return float(model_voxel_size)


def rescale_line(tomogram_path, tomogram_voxel_size: float, target_voxel_size: float, shape_zyx,
                 rescaled_zyx) -> str:
    """The one line saying that a tomogram is rescaled (from X Å to Y Å, the factor, the shapes x, y, z)."""
    return (f"rescaling {tomogram_path} from {tomogram_voxel_size:g} Å to the model's {target_voxel_size:g} Å/voxel "
            f"(factor {rescale_factor(tomogram_voxel_size, target_voxel_size):.3g}: "
            f"{'x'.join(str(n) for n in shape_zyx[::-1])} -> {'x'.join(str(n) for n in rescaled_zyx[::-1])} voxels); "
            "results are given back at the tomogram's own voxel size")
