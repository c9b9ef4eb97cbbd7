"""The data of 3D training: training tomograms with their targets, class names and sphere radii,
the reference spectrum the tomograms were equalized to, and the checks that they fit together.
"""

from __future__ import annotations

import numpy as np

from deepict.conventions import (MAX_RESCALE_FACTOR, default_class_names, rescale_factor, rescale_within_limit,
                                  voxel_sizes_differ)
from deepict.errors import InputFileError, ParameterError
from deepict.infer.model_spectrum import spectrum_record
from deepict.infer.rescale import resample_array, rescaled_shape, to_input_voxels
from deepict.io import check_coordinates_in_volume, read_coordinates, read_volume, require_voxel_size
from deepict.progress import Progress
from deepict.spectrum import default_workers, equalize_volume, radial_spectrum
from deepict.train.config import check_training_voxel_size
from deepict.train.equalization import training_reference
from deepict.train.labels import mask_targets, sphere_targets

#: A training tomogram whose spectrum shape deviates from the reference by more than this (median
#: relative deviation below the low-pass) is reported as probably not equalized.
EQUALIZED_TOLERANCE = 0.25
#: Foreground voxels of a mask kept as the centres of positive training boxes (a random sample).
MASK_LABEL_POINTS = 200000


def class_names(given, count: int) -> list:
    """The class names given (``--class-name``), else :func:`~deepict.conventions.default_class_names`."""
    names = list(given) or default_class_names(count)
    if len(names) != count:
        raise ParameterError(f"{count} label set(s) but {len(names)} --class-name value(s): give one name per class")
    return names


def sphere_radii(radius, count: int, in_angstrom: bool, voxel_size, first_tomogram) -> list:
    """One sphere radius per class in voxels, from ``radius`` (once for all classes or once per class).

    Radii in Å are converted with ``voxel_size``, else the voxel size in the header of ``first_tomogram``.
    """
    if not radius or len(radius) not in (1, count):
        raise ParameterError("give --radius once (for all classes) or once per class")
    radii = list(radius) * count if len(radius) == 1 else list(radius)
    if not in_angstrom:
        return radii
    voxel_size = voxel_size or read_volume(first_tomogram, check_finite=False).voxel_size
    if not voxel_size:
        raise ParameterError("radii in Å need the voxel size: give --voxel-size")
    return [r / voxel_size for r in radii]


def load_training_tomograms(tomogram_paths, coords=None, masks=None, radii=None, voxel_size=None,
                            training_voxel_size=None, log=print) -> list:
    """Read tomograms and build their targets (spheres from ``coords`` or ``masks``); one list per class.

    Every tomogram comes out at one voxel size, ``training_voxel_size`` (default: the first
    tomogram's): one at another voxel size is rescaled to it (:mod:`deepict.infer.rescale`), its
    coordinates scaled with it and its masks resampled and thresholded at 0.5.
    """
    from deepict.train.train3d import TrainingTomogram  # imports torch
    label_sets = coords or masks
    for files in label_sets:
        if len(files) != len(tomogram_paths):
            raise ParameterError(f"{len(tomogram_paths)} tomogram(s) ({', '.join(map(str, tomogram_paths))}) but "
                                 f"{len(files)} label file(s) for a class ({', '.join(map(str, files))}): "
                                 "give one label file per tomogram, in the same order")
    check_training_voxel_size(training_voxel_size)
    tomograms = []
    progress = Progress("reading the training tomograms and building their targets", len(tomogram_paths),
                        "tomograms")
    for index, path in enumerate(tomogram_paths):
        volume = read_volume(path)
        size = require_voxel_size(volume, voxel_size)
        if training_voxel_size is None:
            training_voxel_size = size  # the first tomogram's
        target_size = training_voxel_size
        data = np.asarray(volume.data)
        shape = data.shape
        rescale = voxel_sizes_differ(size, target_size)
        if rescale:
            if not rescale_within_limit(size, target_size):
                raise InputFileError(path, f"its voxel size {size:g} Å is more than {MAX_RESCALE_FACTOR:g}x from the "
                                           f"training voxel size {target_size:g} Å",
                                     "Bin or rescale it nearer to the others first, or give --training-voxel-size.")
            shape = rescaled_shape(data.shape, rescale_factor(size, target_size))
            log(f"rescaling the training tomogram {path} from {size:g} Å to {target_size:g} Å/voxel (factor "
                f"{rescale_factor(size, target_size):.3g}) with its labels")
            data = resample_array(data, shape)
        if coords:
            points = []
            for files in coords:
                table = read_coordinates(files[index])
                check_coordinate_voxel_size(table.voxel_size, size, files[index], path)
                check_coordinates_in_volume(table.xyz, volume.data.shape, files[index])
                # to_input_voxels maps between two grids of one extent, here from the file's to the rescaled one.
                points.append(to_input_voxels(table.xyz, shape, volume.data.shape) if rescale else table.xyz)
            targets = sphere_targets(shape, points, radii)
            label_points = np.concatenate([np.rint(p[:, ::-1]) for p in points]).astype(int) if points else None
            counts = tuple(len(p) for p in points)
        else:
            targets = mask_targets([files[index] for files in masks], volume.data.shape, path, size)
            if rescale:
                targets = np.stack([resample_array(channel, shape) > 0.5 for channel in targets]).astype(np.uint8)
            foreground = np.argwhere(targets.max(axis=0))
            rng = np.random.default_rng(index)
            label_points = foreground[rng.permutation(len(foreground))[:MASK_LABEL_POINTS]]
            counts = ()
        tomograms.append(TrainingTomogram(str(path), data, targets, label_points, target_size, counts))
        progress.advance()
    return tomograms


def check_coordinate_voxel_size(table_size, tomogram_size, csv_path, tomogram_path) -> None:
    """Coordinates picked at another sampling would label the wrong voxels even when inside the tomogram."""
    if voxel_sizes_differ(table_size, tomogram_size):
        raise InputFileError(
            csv_path, f"holds coordinates at {table_size:g} Å/voxel but its tomogram {tomogram_path} has "
                      f"{tomogram_size:g} Å/voxel",
            f"Scale the coordinates by {table_size / tomogram_size:.4g} to the tomogram's voxels (and fix the "
            "'# voxel_size_angstrom' line), or give the tomogram they were picked on.")


def equalize_training_tomograms(tomograms, equalize_to, lowpass_angstrom, lowpass_width, log=print):
    """Equalize the loaded training tomograms in memory to ``equalize_to``: ``auto`` (their own mean
    spectrum, :func:`~deepict.spectrum.mean_spectrum`) or a reference tomogram / spectrum TSV.

    Returns ``ModelInfo.spectrum`` for the model: ``deepict pick`` / ``segment3d`` equalize new
    tomograms to the same reference (``--equalize auto``), so tomograms from another microscope or
    defocus look like the training data to the network.
    """
    workers = default_workers()
    reference = training_reference(equalize_to, len(tomograms),
                                   (radial_spectrum(t.data, t.voxel_size, workers=workers) for t in tomograms))
    source = reference.metadata["source"]
    progress = Progress(f"equalizing the training tomograms to the {source}", len(tomograms), "tomograms", log)
    for tomo in tomograms:
        tomo.data = equalize_volume(tomo.data, tomo.voxel_size, reference, lowpass_angstrom, lowpass_width,
                                    workers=workers, source=tomo.name, log=None).data
        progress.advance()
    return spectrum_record(reference, lowpass_angstrom, lowpass_width, source=source)


def check_equalized(tomograms, reference, lowpass_angstrom=None, log=print) -> list:
    """Names of training tomograms whose spectrum shape does not follow the reference (a warning each).

    Compared below the low-pass (and below Nyquist), after removing the overall scale: a tomogram
    equalized to the reference deviates by a few %, an unequalized one by tens of %.
    """
    suspicious = []
    for tomo in tomograms:
        size = tomo.voxel_size or reference.voxel_size
        if not size:
            continue
        spectrum = radial_spectrum(tomo.data, size, workers=default_workers())
        top = 0.5 / size
        if lowpass_angstrom:
            top = min(top, 0.8 / lowpass_angstrom)
        top = min(top, reference.max_frequency)
        inside = (spectrum.frequency >= max(reference.frequency[0], 4 * spectrum.frequency[0])) & \
                 (spectrum.frequency <= top)
        if inside.sum() < 3:
            continue
        ratio = spectrum.amplitude[inside] / np.maximum(reference.at(spectrum.frequency[inside]), 1e-30)
        deviation = float(np.median(np.abs(ratio / np.median(ratio) - 1)))
        if deviation > EQUALIZED_TOLERANCE:
            suspicious.append(tomo.name)
            log(f"warning: the spectrum of {tomo.name} deviates from the reference by {100 * deviation:.0f} % "
                "(median): it does not look equalized to --spectrum-reference. Train on tomograms equalized "
                "with 'deepict equalize' to that reference, or the stored spectrum will misguide inference.")
    return suspicious
