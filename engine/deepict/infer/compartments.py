"""Compartment segmentation (cytosol, organelles) with the 2D U-Net: shared building blocks.

The 2D pipeline is split into three modules, one job each:

- this module: label masks (checking, remapping to 0/1), per-tomogram z-score normalisation,
  the tiling plan used for prediction, the z-smoothing + threshold post-processing, voxel-size
  checks;
- :mod:`.train2d`: training a :class:`~.networks.UNet2D` from tomograms + masks;
- :mod:`.predict2d`: applying a trained model to a tomogram (probability map and binary mask).

Conventions: volumes are (z, y, x) arrays; the network sees one z slice at a time; every
tomogram is normalised with the mean and standard deviation of the whole tomogram, at
training and at prediction alike.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
from scipy.ndimage import gaussian_filter1d

from deepict.errors import InputFileError, ParameterError
from deepict.io import SLAB_SLICES, read_slab, volume_mean_std

#: Relative voxel-size mismatch above which a tomogram is refused by a model (5 %).
VOXEL_SIZE_TOLERANCE = 0.05

#: A mask's voxel size may differ from its tomogram's by rounding only (0.5 %).
MASK_VOXEL_SIZE_TOLERANCE = 0.005

#: Prediction defaults when a model does not record its own: z smoothing (slices), mask threshold,
#: rim discarded from every tile (px), tiles per forward pass (on a CPU larger batches are not
#: faster; on a GPU raise it).
DEFAULT_SIGMA = 5.0
DEFAULT_THRESHOLD = 0.75
DEFAULT_CROP = 48
DEFAULT_BATCH_SIZE = 2


# --------------------------------------------------------------------------------------------
# Label masks
# --------------------------------------------------------------------------------------------

def parse_remap(text: str | dict | None) -> dict | None:
    """Parse a label remapping into ``{label (int) or '.': 0 or 1}``.

    Accepted forms (DeePiCt's ``preprocessing.remapping.mapping``):

    - ``".:1"``: every non-zero label becomes 1;
    - ``"2,3,5:1"``: labels 2, 3 and 5 become 1, every other label 0;
    - ``"1:0,12:0,.:1"``: labels 1 and 12 become 0, every other non-zero label 1;
    - ``"2:1;3:1"`` (``;`` or spaces separate groups too), or a ready dict.

    Labels not named (and not covered by ``.``) become 0; label 0 stays 0 unless named.
    """
    if text is None or text == "":
        return None
    if isinstance(text, dict):
        items = text.items()
    else:
        items = []
        # groups are "labels:value"; a group's labels are comma separated, groups end at the value
        tokens = str(text).replace(";", " ").split()
        for token in tokens:
            pending = []
            for part in token.split(","):
                if ":" in part:
                    label, _, value = part.partition(":")
                    pending.append(label)
                    items.extend((label_text, value) for label_text in pending)
                    pending = []
                elif part:
                    pending.append(part)
            if pending:
                raise ParameterError(f"label remapping {text!r}: labels {pending} have no ':value'; "
                                     "write e.g. '2,3,5:1' or '.:1' (all non-zero labels -> 1)")
    mapping = {}
    for label, value in items:
        label = str(label).strip()
        try:
            value = int(float(str(value).strip()))
        except ValueError:
            raise ParameterError(f"label remapping {text!r}: value {value!r} is not 0 or 1") from None
        if value not in (0, 1):
            raise ParameterError(f"label remapping {text!r}: labels can only be mapped to 0 or 1, not {value}")
        if label == ".":
            mapping["."] = value
            continue
        try:
            number = float(label)
        except ValueError:
            raise ParameterError(f"label remapping {text!r}: {label!r} is not a label number or '.'") from None
        if number != int(number):
            raise ParameterError(f"label remapping {text!r}: label {label!r} is not an integer")
        mapping[int(number)] = value
    if not mapping:
        raise ParameterError(f"label remapping {text!r} is empty")
    return mapping


def format_remap(mapping: dict | None) -> str | None:
    """The text form of a mapping from :func:`parse_remap` (for model files and logs)."""
    if not mapping:
        return None
    return ",".join(f"{label}:{value}" for label, value in mapping.items())


def remap_labels(labels: np.ndarray, mapping: dict) -> np.ndarray:
    """Apply a :func:`parse_remap` mapping to a label array; returns uint8 0/1."""
    labels = np.asarray(labels)
    other = mapping.get(".", 0)
    out = np.where(labels != 0, np.uint8(other), np.uint8(0)).astype(np.uint8)
    for label, value in mapping.items():
        if label != ".":
            out[labels == label] = value
    return out


def binary_mask(labels: np.ndarray, path, mapping: dict | None = None) -> np.ndarray:
    """The 0/1 mask (uint8) of a mask/label volume, remapped when ``mapping`` is given.

    Without a mapping the volume must hold only 0 and 1 (a binary mask); a label map with
    other values is refused with a hint to give a remapping.
    """
    labels = np.asarray(labels)
    if mapping is not None:
        return remap_labels(labels, mapping)
    values = np.unique(labels)
    if not np.isin(values, (0, 1)).all():
        shown = ", ".join(f"{v:g}" for v in values[:12]) + (" ..." if len(values) > 12 else "")
        raise InputFileError(path, f"is not a binary 0/1 mask (it holds the values {shown})",
                             "For a label map, say which labels form the compartment with a remapping, "
                             "e.g. --remap '.:1' (every non-zero label) or --remap '2,3,5:1'.")
    return (labels == 1).astype(np.uint8)


def check_mask_matches(mask_volume, tomogram_volume) -> None:
    """Raise :class:`InputFileError` naming both files if a mask does not fit its tomogram."""
    mask_shape, tomo_shape = tuple(mask_volume.data.shape), tuple(tomogram_volume.data.shape)
    if mask_shape != tomo_shape:
        raise InputFileError(
            mask_volume.path,
            f"its size x,y,z = {mask_shape[::-1]} differs from that of its tomogram {tomogram_volume.path} "
            f"(x,y,z = {tomo_shape[::-1]})",
            "Give the masks in the same order as the tomograms, made at the same binning.")
    a, b = mask_volume.voxel_size, tomogram_volume.voxel_size
    if a and b and abs(a - b) > MASK_VOXEL_SIZE_TOLERANCE * b:
        raise InputFileError(
            mask_volume.path,
            f"its voxel size {a:g} Å differs from that of its tomogram {tomogram_volume.path} ({b:g} Å)",
            "Give the masks in the same order as the tomograms, made at the same binning (or fix the header).")


# --------------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------------

def tomogram_zscore(data: np.ndarray, path) -> tuple[float, float]:
    """Mean and standard deviation of a whole tomogram (read in small chunks); refuse a constant one."""
    mean, std = volume_mean_std(data)
    if not std > 0:
        raise InputFileError(path, "is constant (all voxels equal)", "Give a reconstructed tomogram.")
    return mean, std


def normalized_slices(data: np.ndarray, mean: float, std: float, z_indices) -> np.ndarray:
    """The float32 z-scored slices ``z_indices`` of a volume (z, y, x), read one by one."""
    out = np.empty((len(z_indices),) + tuple(data.shape[1:]), dtype=np.float32)
    for i, z in enumerate(z_indices):
        out[i] = (read_slab(data, z, z + 1)[0] - mean) / std
    return out


# --------------------------------------------------------------------------------------------
# Tiling
# --------------------------------------------------------------------------------------------

def check_tile_geometry(tile: int, crop: int | None, depth: int) -> None:
    """Raise :class:`ParameterError` unless ``tile`` fits the network and leaves a core after ``crop``.

    ``crop`` None checks the tile size only (training tiles keep their rim).
    """
    multiple = 2 ** (depth - 1)
    if tile < multiple or tile % multiple:
        raise ParameterError(f"tile size {tile} must be a positive multiple of {multiple} "
                             f"(2^(depth-1) for a depth-{depth} U-Net)")
    if crop is not None and (crop < 0 or tile - 2 * crop < 1):
        raise ParameterError(f"the discarded rim ({crop} px on each side) leaves nothing of a {tile} px tile: "
                             f"use a rim below {tile // 2} px")


def tile_starts(length: int, tile: int, crop: int) -> list[int]:
    """Start positions (in slice coordinates) of the tiles along one axis of length ``length``.

    Each tile of ``tile`` pixels keeps only its core (``tile - 2 crop`` pixels, starting at the
    tile start once the slice is padded by ``crop`` on each side). The cores are spread evenly
    and cover every pixel, for any length, including lengths smaller than one core; overlaps
    are averaged by the caller.
    """
    core = tile - 2 * crop
    if core < 1:
        raise ParameterError(f"tile {tile} with a rim of {crop} leaves no core")
    if length <= core:
        return [0]
    count = math.ceil(length / core)
    starts = np.round(np.linspace(0, length - core, count)).astype(int)
    return sorted(set(int(s) for s in starts))


def pad_for_tiles(image: np.ndarray, tile: int, crop: int) -> np.ndarray:
    """Reflect-pad a 2D slice by ``crop`` on every side, and further at the end if it is smaller than a tile."""
    pads = []
    for length in image.shape:
        after = crop + max(0, tile - (length + 2 * crop))
        pads.append((crop, after))
    mode = "reflect" if min(image.shape) > 1 else "edge"
    return np.pad(image, pads, mode=mode)


def tiles_per_slice(shape_yx, tile: int, crop: int) -> int:
    """How many tiles cover one slice of ``shape_yx``."""
    return len(tile_starts(shape_yx[0], tile, crop)) * len(tile_starts(shape_yx[1], tile, crop))


def auto_tile_size(shape_yx, min_tile: int, crop: int, depth: int, max_tile: int = 512) -> int:
    """The tile size (multiple of ``2^(depth-1)``, from ``min_tile`` to ``max_tile``) needing the least work.

    The network is fully convolutional, so it can be applied to tiles larger than it was
    trained on; a larger tile wastes a smaller fraction on its discarded rim. Work is counted
    as the number of pixels pushed through the network per slice.
    """
    multiple = 2 ** (depth - 1)
    best, best_work = min_tile, None
    for tile in range(min_tile, max(min_tile, max_tile) + 1, multiple):
        if tile - 2 * crop < 1:
            continue
        work = tiles_per_slice(shape_yx, tile, crop) * tile * tile
        if best_work is None or work < best_work:
            best, best_work = tile, work
    return best


# --------------------------------------------------------------------------------------------
# Post-processing
# --------------------------------------------------------------------------------------------

def smoothing_radius(sigma: float) -> int:
    """How many slices on each side the z Gaussian reaches (scipy's default truncation, 4 sigma)."""
    return int(4.0 * float(sigma) + 0.5) if sigma > 0 else 0


def _check_post(sigma: float, threshold: float) -> None:
    if not sigma >= 0:
        raise ParameterError(f"the z smoothing sigma must be >= 0, not {sigma}")
    if not 0 <= threshold < 1:
        raise ParameterError(f"the threshold must lie in [0, 1), not {threshold}")


#: Rows processed at once by the streaming post-processing (with 928-px rows and a 72-slice
#: window: 17 MB of float32).
SMOOTH_ROWS = 64


def smooth_and_threshold_slabs(read: Callable[[int, int, int, int], np.ndarray], shape, sigma: float,
                               threshold: float, write: Callable[[int, np.ndarray], None],
                               slab: int = SLAB_SLICES, rows: int | None = None) -> int:
    """Streaming form of :func:`smooth_and_threshold` for volumes that do not fit in memory.

    ``read(z0, z1, y0, y1)`` returns probabilities ``[z0:z1, y0:y1, :]`` of a volume of ``shape``
    (z, y, x); ``write(z0, mask_slab)`` receives the uint8 0/1 result ``slab`` slices at a time, in
    z order. Each slab is smoothed band of ``rows`` rows (default :data:`SMOOTH_ROWS`) by band, with a margin of
    :func:`smoothing_radius` slices on each side, so the result equals smoothing the whole volume
    at once while memory stays at a few tens of MB. Returns the number of positive voxels.
    """
    _check_post(sigma, threshold)
    rows = SMOOTH_ROWS if rows is None else rows
    depth, height = int(shape[0]), int(shape[1])
    margin = smoothing_radius(sigma)
    positive = 0
    for z0 in range(0, depth, slab):
        z1 = min(depth, z0 + slab)
        a, b = max(0, z0 - margin), min(depth, z1 + margin)
        mask = np.empty((z1 - z0,) + tuple(int(n) for n in shape[1:]), dtype=np.uint8)
        for y0 in range(0, height, rows):
            y1 = min(height, y0 + rows)
            block = np.asarray(read(a, b, y0, y1), dtype=np.float32)
            if margin and block.shape[0] > 1:
                block = gaussian_filter1d(block, sigma, axis=0, mode="reflect")
            np.greater(block[z0 - a:z1 - a], threshold, out=mask[:, y0:y1].view(bool))
        positive += int(np.count_nonzero(mask))
        write(z0, mask)
    return positive


def smooth_and_threshold(probability: np.ndarray, sigma: float, threshold: float) -> np.ndarray:
    """DeePiCt's 2D post-processing: 1D Gaussian along z (``sigma`` slices, reflecting ends), then ``> threshold``.

    ``probability`` is a (z, y, x) array (it may be memory-mapped); returns a uint8 0/1 volume.
    ``sigma`` 0 skips the smoothing.
    """
    probability = probability if hasattr(probability, "shape") else np.asarray(probability)
    if len(probability.shape) != 3:
        raise ParameterError(f"expected a (z, y, x) probability volume, got shape {tuple(probability.shape)}")
    out = np.empty(probability.shape, dtype=np.uint8)

    def write(z0, mask):
        out[z0:z0 + len(mask)] = mask

    smooth_and_threshold_slabs(lambda a, b, c, d: probability[a:b, c:d], probability.shape, sigma, threshold, write)
    return out


# --------------------------------------------------------------------------------------------
# Checks shared by training and prediction
# --------------------------------------------------------------------------------------------

def check_voxel_size(tomogram_voxel_size: float | None, model_voxel_size: float | None, path,
                     ignore: bool = False, tolerance: float = VOXEL_SIZE_TOLERANCE) -> str | None:
    """Refuse a tomogram whose voxel size differs from the model's by more than ``tolerance``.

    Returns a warning text when the check cannot be made (a voxel size is unknown) or is
    overridden by ``ignore``; raises :class:`InputFileError` otherwise.
    """
    if not tomogram_voxel_size or not model_voxel_size:
        return ("voxel size unknown (tomogram: {}, model: {}); cannot check that the tomogram matches the model"
                .format(tomogram_voxel_size or "none in header", model_voxel_size or "not recorded"))
    difference = abs(tomogram_voxel_size - model_voxel_size) / model_voxel_size
    if difference <= tolerance:
        return None
    if ignore:
        return (f"voxel size {tomogram_voxel_size:g} Å differs from the model's {model_voxel_size:g} Å "
                f"by {100 * difference:.0f}% (ignored as asked)")
    factor = model_voxel_size / tomogram_voxel_size
    raise InputFileError(
        path,
        f"its voxel size {tomogram_voxel_size:g} Å differs from the {model_voxel_size:g} Å the model was trained at "
        f"({100 * difference:.0f}% off; compartments look different at another scale)",
        f"Rescale or bin the tomogram by {factor:.3g} to {model_voxel_size:g} Å/voxel (e.g. with IMOD 'binvol' "
        "or the Scipion tomogram resize protocol), or pass --ignore-voxel-size if the header is wrong.")
