"""The data of a 2D training: the z-scored slices and masks of the training and validation tomograms.

Every ``z_stride``-th slice of each training tomogram (z-scored with the whole tomogram's statistics, as
at prediction) is a source of training tiles. The held-out data are the named tomogram(s), by default the
last tomogram when several are given, else a z range of the only one (:data:`SINGLE_TOMOGRAM_VALIDATION`
of its depth, with a gap of ``z_stride`` slices to the training slices), which gives an optimistic estimate.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepict.conventions import (MAX_RESCALE_FACTOR, rescale_factor, rescale_within_limit,
                                  voxel_sizes_differ)
from deepict.errors import InputFileError, ParameterError
from deepict.infer.masks import binary_mask, check_mask_matches, parse_remap
from deepict.infer.normalization import normalized_slices, tomogram_zscore
from deepict.infer.rescale import resample_array, rescaled_shape
from deepict.io import read_volume
from deepict.progress import Progress
from deepict.spectrum import RadialSpectrum, default_workers, equalize_volume, radial_spectrum
from deepict.train.config import Train2DConfig, check_training_voxel_size
from deepict.train.equalization import check_spectrum_options, training_equalization, training_reference

#: Fraction of the depth held out for validation when only one tomogram is given.
SINGLE_TOMOGRAM_VALIDATION = (0.6, 0.8)


@dataclass
class Equalization2D:
    """The reference spectrum the training tomograms are equalized to, and the low-pass applied with it."""

    reference: RadialSpectrum
    lowpass_angstrom: float | None
    lowpass_width: float


def training_equalization_2d(tomograms, equalize_to: str | None, lowpass_angstrom: float | None,
                             lowpass_width: float, log) -> Equalization2D | None:
    """The equalization of ``train2d --equalize-to`` (``None`` without one); ``auto`` measures the
    spectrum of every training tomogram first (read slab by slab, not held in memory)."""
    check_spectrum_options(None, equalize_to, lowpass_angstrom, lowpass_width)
    equalize_to = training_equalization(None, equalize_to)
    if not equalize_to:
        return None
    progress = Progress("measuring the spectra of the training tomograms", len(tomograms), "tomograms", log)

    def spectra():
        for path in tomograms:
            volume = read_volume(path)
            yield radial_spectrum(volume.data, volume.voxel_size or 1.0, workers=default_workers(), source=path)
            progress.advance()

    reference = training_reference(equalize_to, len(tomograms), spectra())
    log(f"equalizing the training tomograms to the {reference.metadata['source']}")
    return Equalization2D(reference, lowpass_angstrom, lowpass_width)


@dataclass
class TrainingSlices:
    """Some slices of one tomogram and their masks."""

    name: str
    images: np.ndarray                  # (n, y, x) float32, z-scored
    masks: np.ndarray                   # (n, y, x) uint8 0/1
    z: list


def validation_indices(tomograms: list, val_names: list) -> list[int]:
    """The indices of the validation tomograms among ``tomograms`` (``[]``: hold out a z range)."""
    if not val_names:
        return [len(tomograms) - 1] if len(tomograms) >= 2 else []
    chosen = []
    for name in val_names:
        matches = [i for i, path in enumerate(tomograms)
                   if str(name) in (str(path), Path(path).name, Path(path).stem)
                   or Path(name).resolve() == Path(path).resolve()]
        if not matches:
            raise ParameterError(f"validation tomogram {name!r} is not one of the training tomograms "
                                 f"({', '.join(Path(p).name for p in tomograms)}); name one of them")
        chosen.extend(m for m in matches if m not in chosen)
    if len(chosen) == len(tomograms):
        raise ParameterError("every tomogram is a validation tomogram: leave at least one for training")
    return chosen


def load_training_slices(tomograms, masks, config: Train2DConfig, log, training_voxel_size: float | None = None,
                         equalization: Equalization2D | None = None) \
        -> tuple[list[TrainingSlices], list[TrainingSlices], float | None]:
    """(training slices, validation slices, voxel size) of ``tomograms`` and their ``masks``.

    Tomograms at another voxel size than ``training_voxel_size`` (default: the first known one) are
    rescaled to it with their masks; it is the voxel size returned. With ``equalization``, each
    tomogram is equalized to its reference (after rescaling) before it is z-scored.
    """
    if len(tomograms) == 0:
        raise ParameterError("give at least one tomogram and its mask")
    if len(tomograms) != len(masks):
        raise ParameterError(f"{len(tomograms)} tomograms but {len(masks)} masks: give one mask per tomogram, "
                             "in the same order")
    mapping = parse_remap(config.remap)
    val_index = validation_indices(list(tomograms), list(config.val_tomograms or []))
    check_training_voxel_size(training_voxel_size)
    voxel_size = training_voxel_size
    train, val = [], []
    loading = Progress("reading the training tomograms and masks", len(tomograms), "tomograms", log)
    for index, (tomo_path, mask_path) in enumerate(zip(tomograms, masks)):
        tomogram = read_volume(tomo_path)
        mask_volume = read_volume(mask_path)
        check_mask_matches(mask_volume, tomogram)
        labels = binary_mask(mask_volume.data, mask_volume.path, mapping)
        if not labels.any():
            raise InputFileError(mask_path, "has no positive voxels" + (" after the remapping" if mapping else ""),
                                 "Give a mask in which the compartment is marked with 1 (or fix --remap).")
        data, size = tomogram.data, tomogram.voxel_size
        voxel_size = voxel_size or size  # the first tomogram's unless one is chosen
        if size and voxel_size and voxel_sizes_differ(size, voxel_size):
            data, labels = _rescaled(tomogram, labels, voxel_size, log)
        if equalization is not None:
            data = equalize_volume(data, voxel_size or size or 1.0, equalization.reference,
                                   equalization.lowpass_angstrom, equalization.lowpass_width,
                                   workers=default_workers(), source=tomo_path, log=None).data
        mean, std = tomogram_zscore(data, tomo_path)
        depth = data.shape[0]
        name = Path(tomo_path).name
        stride = config.z_stride
        if val_index:
            train_z = list(range(0, depth, stride)) if index not in val_index else []
            val_z = list(range(0, depth, stride)) if index in val_index else []
        else:  # one tomogram: hold out a z range
            start = min(int(SINGLE_TOMOGRAM_VALIDATION[0] * depth), depth - 1)
            end = max(start + 1, int(SINGLE_TOMOGRAM_VALIDATION[1] * depth))
            val_z = list(range(start, end))
            train_z = [z for z in range(0, depth, stride) if z < start - stride or z >= end + stride]
            if not train_z:
                raise ParameterError(f"{tomo_path}: too few slices ({depth}) to hold out a validation range: "
                                     "give a second tomogram for validation or a smaller --z-stride")
            log(f"validation on slices {start}..{end - 1} of {name} (the only tomogram); "
                f"training on {len(train_z)} slices outside {start - stride}..{end + stride - 1}")
        if len(val_z) > config.val_slices:
            val_z = [val_z[i] for i in np.round(np.linspace(0, len(val_z) - 1, config.val_slices)).astype(int)]
        for z_list, target in ((train_z, train), (val_z, val)):
            if z_list:
                target.append(TrainingSlices(name, normalized_slices(data, mean, std, z_list),
                                             np.ascontiguousarray(labels[z_list]), list(z_list)))
        del labels, data
        loading.advance()
    if val_index:
        log(f"validation on {', '.join(Path(tomograms[i]).name for i in val_index)}; "
            f"training on {', '.join(s.name for s in train)}")
    return train, val, voxel_size


def label_share(slices: list) -> float:
    """The share of the pixels of ``slices`` (:class:`TrainingSlices`) their masks mark
    (``ModelInfo.training[LABEL_SHARE]``)."""
    return float(sum(int(np.count_nonzero(s.masks)) for s in slices) / sum(s.masks.size for s in slices))


def _rescaled(tomogram, labels, voxel_size: float, log):
    """A training tomogram and its 0/1 labels rescaled (in memory) to the training's ``voxel_size``."""
    if not rescale_within_limit(tomogram.voxel_size, voxel_size):
        raise InputFileError(tomogram.path, f"its voxel size {tomogram.voxel_size:g} Å is more than "
                                            f"{MAX_RESCALE_FACTOR:g}x from the training's {voxel_size:g} Å",
                             "Bin or rescale it nearer to the others first, choose another training voxel "
                             "size, or train on it separately.")
    factor = rescale_factor(tomogram.voxel_size, voxel_size)
    shape = rescaled_shape(tomogram.data.shape, factor)
    log(f"rescaling the training tomogram {tomogram.path} from {tomogram.voxel_size:g} Å to {voxel_size:g} Å/voxel "
        f"(factor {factor:.3g}) with its mask")
    return resample_array(tomogram.data, shape), (resample_array(labels, shape) > 0.5).astype(labels.dtype)
