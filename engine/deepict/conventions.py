"""The rules and names that several stages of the engine and the Scipion plugin share, each in one place.

Plain Python (no numpy, no torch), so that the plugin's forms and protocols can import it.
"""

from __future__ import annotations

import re

# --------------------------------------------------------------------------------------------
# Voxel sizes (Å)
# --------------------------------------------------------------------------------------------

#: Relative difference up to which two voxel sizes are the same sampling, written with different
#: rounding (13.48 vs 13.5 Å). Files that describe one tomogram (its mask, its coordinates, picks
#: and their ground truth, an export and its tomograms, a spectrum and its tomogram) must agree
#: within it; any rescaling (binning, resampling) is far larger.
SAME_VOXEL_SIZE_TOLERANCE = 0.01

#: Relative difference between a tomogram's voxel size and the one a model was trained at (or
#: between the tomograms of one training) still accepted: structures look alike at scales 5 % apart.
MODEL_VOXEL_SIZE_TOLERANCE = 0.05


def voxel_size_difference(size: float, reference: float) -> float:
    """``|size - reference| / reference``: how far ``size`` lies from ``reference``, as a fraction."""
    return abs(size - reference) / reference


def voxel_sizes_differ(a: float | None, b: float | None) -> bool:
    """Whether two voxel sizes are both known (not ``None``/0) and not the same sampling."""
    return bool(a and b) and abs(a - b) > SAME_VOXEL_SIZE_TOLERANCE * max(a, b)


def fits_model_voxel_size(size: float, model_size: float) -> bool:
    """Whether a tomogram of voxel ``size`` may be given to a model trained at ``model_size``."""
    return voxel_size_difference(size, model_size) <= MODEL_VOXEL_SIZE_TOLERANCE


#: Largest factor (either way) by which a tomogram is rescaled to a model's voxel size on the fly:
#: beyond it, a 4x-binned tomogram has lost the detail the model looks for (or an upsampled one is
#: mostly interpolation, 64x the voxels).
MAX_RESCALE_FACTOR = 4.0


def rescale_factor(size: float, target_size: float) -> float:
    """How many times larger a tomogram's extent in voxels becomes when rescaled from ``size`` to ``target_size`` Å."""
    return size / target_size


def rescale_within_limit(size: float, target_size: float) -> bool:
    """Whether rescaling from ``size`` to ``target_size`` Å stays within :data:`MAX_RESCALE_FACTOR` either way."""
    factor = rescale_factor(size, target_size)
    return 1.0 / MAX_RESCALE_FACTOR <= factor <= MAX_RESCALE_FACTOR


# --------------------------------------------------------------------------------------------
# Coordinate tables and spectrum tables
# --------------------------------------------------------------------------------------------

#: Columns of a coordinate table holding a particle's position (0-based voxels, x = fastest MRC axis).
POSITION_COLUMNS = ("x", "y", "z")
#: Optional column of a coordinate table: the particle's score (picks are ranked by it).
SCORE_COLUMN = "score"
#: Optional column of a coordinate table: the particle's class (a whole number or a name).
CLASS_COLUMN = "class"
#: The class name of a one-class training given none (``--class-name``; the train 3D form's *Class names* left empty).
DEFAULT_CLASS_NAME = "particle"
#: What a class name may hold: letters, digits, '_', '-' and '.', first a letter or a digit. A class name is
#: stored in the model and names what it finds: output files (``<tsId>_<class>.mrc``), coordinate tables'
#: class column and copick objects; a space, '/' or ':' breaks some of them.
CLASS_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def default_class_names(count: int) -> list[str]:
    """The class names of a training of ``count`` label sets given none, on the command line and in the forms alike:
    :data:`DEFAULT_CLASS_NAME` for one, ``class1, class2, ...`` for more (the data says nothing of what they are)."""
    return [DEFAULT_CLASS_NAME] if count == 1 else [f"class{i + 1}" for i in range(count)]


#: What ``--class-name`` / the form's *Class names* default to, in their help.
DEFAULT_CLASS_NAMES_TEXT = f"{DEFAULT_CLASS_NAME} for one class, class1, class2, ... for more"


def class_name_problem(name) -> str | None:
    """Why ``name`` cannot be a class name (:data:`CLASS_NAME_PATTERN`), with a valid one to give instead;
    ``None`` when it can."""
    text = str(name)
    if CLASS_NAME_PATTERN.fullmatch(text):
        return None
    if not text.strip():
        return "a class name is empty: give each class a name (e.g. ribosome)"
    suggestion = re.sub(r"[^A-Za-z0-9_.-]+", "_", text.strip()).lstrip("_.-") or "class1"
    return (f"the class name {text!r} may hold only letters, digits, '_', '-' and '.', starting with a letter or "
            f"a digit (it names the model's output files): e.g. {suggestion!r}")


#: Optional columns of a coordinate table: the particle's orientation, RELION's ZYZ Euler angles in
#: degrees (see deepict.orientations); exports write them as the orientation / priors.
ANGLE_COLUMNS = ("rot", "tilt", "psi")
#: Optional column of a coordinate table: the filament (helical tube) a point was sampled on, 1..K.
FILAMENT_ID_COLUMN = "filament_id"
#: Optional column of a coordinate table: the point's arc position along its filament, in Å from its start.
ARC_LENGTH_COLUMN = "arc_length_angstrom"
#: Metadata key of the voxel size in the ``# key: value`` comments of coordinate and spectrum tables.
VOXEL_SIZE_KEY = "voxel_size_angstrom"

#: Header of a spectrum TSV (``deepict spectrum``): physical frequency in 1/Å, mean Fourier amplitude.
SPECTRUM_FREQUENCY_COLUMN = "frequency_per_angstrom"
SPECTRUM_AMPLITUDE_COLUMN = "amplitude"
SPECTRUM_COLUMNS = (SPECTRUM_FREQUENCY_COLUMN, SPECTRUM_AMPLITUDE_COLUMN)

# --------------------------------------------------------------------------------------------
# Choices of the commands and forms
# --------------------------------------------------------------------------------------------

#: How a 3D model's picks are kept near a context mask (``--context-mode``; the first is the default).
CONTEXT_MODES = ("intersection", "contact", "colocalization")
#: Whether ``deepict pick`` splits clusters of touching particles, one pick per particle, unless told
#: otherwise; the post-processing calibrated after training assumes the same. Off: on the development
#: tomograms no two particles' predicted spheres touch, and splitting recovered no particle there.
SPLIT_TOUCHING = False
#: How much lower a particle model's calibrated threshold is taken for maps averaged over test-time
#: rotations (``--test-time-rotations``), and its floor. The calibration chooses it on single-view maps. With
#: the default network (depth 2, 16 features), on dev vpp_003 / defocus_000 / defocus_001 over two ribosome
#: and one FAS training, 0.1 lower beat 0.2 lower in 7 of the 9 figures (mean F1 0.790 against 0.770; no
#: shift: 0.779); 0.2 had suited the former, less confident depth 3 / 8 features network.
ROTATED_THRESHOLD_SHIFT, ROTATED_THRESHOLD_FLOOR = 0.1, 0.1
#: When ``deepict pick``/``segment3d`` equalize a tomogram to the model's stored spectrum first:
#: ``auto`` when the model has one, ``on`` always (an error without one), ``off`` never.
EQUALIZE_MODES = ("auto", "on", "off")
#: ``train3d --equalize-to`` value that equalizes the training tomograms to their own mean spectrum:
#: the default, since it cost nothing on same-domain data and took defocus picking from F1 0 to 0.8+.
EQUALIZE_TO_MEAN = "auto"
#: ``train3d --equalize-to`` value that trains on the tomograms as they are.
EQUALIZE_TO_NONE = "none"
#: Training losses, sorted (the Scipion forms store the index of the chosen one).
LOSS_NAMES = ("bce_dice", "dice", "generalized_dice")


def averaged_weights(first_epoch: int, last_epoch: int) -> str:
    """A weight-averaged model's weights in words, as the training's log and the Scipion summary name them."""
    if first_epoch == last_epoch:
        return f"the weights of epoch {first_epoch}"
    return f"the mean of the weights of epochs {first_epoch}-{last_epoch}"


# --------------------------------------------------------------------------------------------
# Reading volumes
# --------------------------------------------------------------------------------------------

#: How many z slices are read at once when scanning a (memory-mapped) volume.
SLAB_SLICES = 32

#: Histogram bins of a voxel precision-recall curve (``deepict evaluate --bins``). Here, not in
#: :mod:`deepict.evaluate.metrics`, so that the job declarations need no scipy to read it.
VOXEL_PR_BINS = 1000
#: 10 %–90 % transition width of the equalization low-pass, as a fraction of its cut-off frequency
#: (``--lowpass-width``). Here, not in :mod:`deepict.spectrum`, for the same reason.
SPECTRUM_LOWPASS_WIDTH = 0.1
