"""Applying a trained 3D model to a tomogram: particle picking and structure segmentation.

Both run the sliding-window prediction (:mod:`.sliding_window`) streaming the class probability map
to disk, then cluster it (:mod:`.clusters`) slab by slab, so memory stays bounded for any
tomogram size. The probability map is kept only when asked for.

A model trained on spectrum-equalized tomograms stores its reference spectrum
(``ModelInfo.spectrum``, see :mod:`.model_spectrum`); the tomogram is then equalized to it on the
fly before prediction (``InferenceOptions.equalize``: ``auto`` = when the model has a spectrum),
streamed to a temporary file next to the output that is deleted afterwards.

A tomogram whose voxel size lies beyond the model's tolerance is rescaled to the model's voxel size
first (:mod:`.rescale`, streamed to the same scratch folder), and the probability map is resampled
back to the tomogram's own grid before it is thresholded and clustered: picks, masks and maps are in
the tomogram's voxels, and so are the post-processing sizes and distances (the model's suggested
defaults, in its own voxels, are converted by :func:`voxel_scale`). Spectral resampling of the smooth
probability map, then thresholding, keeps the clusters' shapes and centroids at sub-voxel precision,
which thresholding first and taking the nearest voxel would not.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import numpy as np

from deepict.conventions import (CLASS_COLUMN, DEFAULT_CLASS_NAME, ROTATED_THRESHOLD_FLOOR, ROTATED_THRESHOLD_SHIFT,
                                  SCORE_COLUMN, rescale_factor, voxel_sizes_differ)
from deepict.nn.devices import select_device
from deepict.errors import InputFileError, ParameterError
from deepict.io import CoordinateTable, read_volume, scratch_directory, volume_writer, write_coordinates
from deepict.nn.model_files import (KIND_3D, LABEL_SHARE, POSTPROCESS_CALIBRATION, ModelInfo,
                                    incomplete_training_warning, load_model)
from deepict.infer.clusters import (UNKNOWN_SHARE_FILLING_LIMIT, ClusterParameters, Clusters, fills_the_map,
                                    find_clusters, picking_region, remove_duplicates, segmentation_fills_the_map)
from deepict.infer import splitting
from deepict.infer.normals import orientation_columns
from deepict.infer.sliding_window import predict_tomogram, window_count
from deepict.infer.context_filter import check_mask_extent
from deepict.infer.rescale import resample_mask, resample_volume, rescaled_shape
from deepict.infer.voxel_size import check_model_voxel_size, rescale_line, rescale_target
from deepict.infer.options import InferenceOptions
from deepict.progress import Progress
from deepict.infer.model_spectrum import equalize_to_model, should_equalize, warn_if_unlike_training


def predict_to_file(model_path, tomogram_path, out_path, class_name: str | None, options: InferenceOptions,
                    log=print) -> tuple[ModelInfo, float]:
    """Write the probability map of one class of a 3D model for a tomogram; returns (info, voxel size).

    The map has the tomogram's shape and voxel size, also when the tomogram is rescaled to the
    model's voxel size for the prediction.
    """
    network, info = load_model(model_path, kind=KIND_3D)
    volume = read_volume(tomogram_path)
    known_voxel_size = options.voxel_size or volume.voxel_size
    voxel_size = known_voxel_size or info.voxel_size or 1.0
    check_model_voxel_size(known_voxel_size, info.voxel_size, tomogram_path, model_path,
                           ignore=options.ignore_voxel_size)
    target = rescale_target(known_voxel_size, info.voxel_size, ignore=options.ignore_voxel_size)
    channel = info.class_index(class_name)
    for warning in (info.spectrum_warning(), incomplete_training_warning(info.training)):
        if warning:
            log(f"warning: {model_path}: {warning}")
    device = select_device(options.device)
    input_shape = tuple(volume.data.shape)
    name = Path(tomogram_path).name
    # Next to the output (same file system, cleaned up even on errors), not in /tmp.
    scratch = scratch_directory(out_path)
    try:
        folder = Path(scratch.name)
        network_voxel_size = voxel_size
        if target:
            shape = rescaled_shape(input_shape, rescale_factor(known_voxel_size, target))
            _check_rescaled_extent(info, shape, tomogram_path, known_voxel_size, target)
            log(rescale_line(tomogram_path, known_voxel_size, target, input_shape, shape))
            resample_volume(volume.data, shape, folder / "rescaled.mrc", target, label=f"rescaling {name}", log=log)
            volume = read_volume(folder / "rescaled.mrc", check_finite=False)
            network_voxel_size = target
        if should_equalize(info, options.equalize, model_path):
            equalize_to_model(info, model_path, volume.data, network_voxel_size, tomogram_path,
                               folder / "equalized.mrc", log)
            volume = read_volume(folder / "equalized.mrc", check_finite=False)
        else:
            warn_if_unlike_training(info, volume.data, network_voxel_size, tomogram_path, log)
        map_path = folder / "probability_rescaled.mrc" if target else out_path
        with volume_writer(map_path, volume.data.shape, np.float32, network_voxel_size) as write:
            predict_tomogram(network, volume.data, lambda z0, probs: write(z0, probs[0]), channels=[channel],
                             window=options.window, margin=options.margin, batch_size=options.batch_size,
                             device=device, mirror=options.test_time_mirrors,
                             rotate=options.test_time_rotations,
                             progress=Progress(f"predicting {name}", window_count(
                                 volume.data.shape, options.window, options.margin), "windows", log))
        if target:
            del volume
            resample_volume(read_volume(map_path, check_finite=False).data, input_shape, out_path, voxel_size,
                            label=f"probability map of {name} back to {voxel_size:g} Å", clip=(0.0, 1.0), log=log)
    finally:
        volume = None  # release the memory maps of the temporary files before deleting them
        scratch.cleanup()
    return info, voxel_size


def _check_rescaled_extent(info: ModelInfo, shape_zyx, tomogram_path, voxel_size: float, target: float) -> None:
    """Refuse a tomogram that, rescaled, is smaller than one box of the network along some axis."""
    box = int(info.patch_size or 0)
    if box and min(shape_zyx) < box:
        raise InputFileError(
            tomogram_path, f"rescaled from {voxel_size:g} Å to the model's {target:g} Å it measures "
                           f"{'x'.join(str(n) for n in shape_zyx[::-1])} voxels (x, y, z), smaller than the "
                           f"network's {box}-voxel box",
            "Give a larger tomogram (or a larger crop of it), or train a model at a voxel size nearer to the "
            "tomogram's.")


def voxel_scale(info: ModelInfo, tomogram_voxel_size: float | None, options: InferenceOptions | None) -> float:
    """How many of the tomogram's voxels one of the model's voxels spans (1 when it is not rescaled)."""
    options = options or InferenceOptions()
    known = options.voxel_size or tomogram_voxel_size
    target = rescale_target(known, info.voxel_size, ignore=options.ignore_voxel_size)
    return target / known if target else 1.0


def tomogram_voxel_scale(info: ModelInfo, tomogram_path, options: InferenceOptions | None) -> float:
    """:func:`voxel_scale` for a tomogram file (its header's voxel size)."""
    return voxel_scale(info, read_volume(tomogram_path, check_finite=False).voxel_size, options)


def clusters_of_map(probability, params: ClusterParameters, context=None, split_radius: float = 0.0) -> Clusters:
    """The clusters of a probability map (z, y, x) as ``deepict pick`` finds them, before duplicates are
    removed; with ``split_radius``, clusters of touching particles of that radius (voxels) are split
    (:mod:`.splitting`)."""
    clusters = find_clusters(probability, params, context)
    return splitting.split_touching(probability, clusters, params, split_radius, context) if split_radius \
        else clusters


def _cluster_map(map_path, params: ClusterParameters, context_path, mask_out=None, voxel_size=None,
                 split_radius: float = 0.0, log=None, fallback_threshold: float | None = None,
                 training_share: float | None = None) -> Clusters:
    """The clusters of a probability map; with ``split_radius``, clusters of touching particles of that radius
    (voxels) are split (:mod:`.splitting`). ``log``: where to warn of a cluster that fills the map (picking) or of
    a segmentation (``mask_out``) that does, judged by its class's ``training_share`` (see
    :func:`segmentation_fills_the_map`); ``fallback_threshold``: the threshold to cluster at instead when one
    cluster does (see :func:`pick_particles`)."""
    probability = read_volume(map_path).data
    context = _context_mask(context_path, probability.shape).data if context_path else None
    region, region_name = picking_region(probability.size, context, params.context_mode)
    if mask_out is not None:
        with volume_writer(mask_out, probability.shape, np.int8, voxel_size) as write:
            clusters = find_clusters(probability, params, context, keep_mask_writer=write)
        if log:
            warn_if_segmentation_fills_the_map(int(clusters.size.sum()), region, training_share, params.threshold,
                                               log, region_name)
        return clusters
    clusters = clusters_of_map(probability, params, context, split_radius)
    if fallback_threshold is not None and fills_the_map(clusters.size, region):
        (log or print)(f"at threshold {params.threshold:g} one cluster covers "
                       f"{100 * _largest(clusters) / region:.0f} % of {region_name}: clustering at "
                       f"the model's calibrated threshold {fallback_threshold:g} instead")
        params = replace(params, threshold=fallback_threshold)
        clusters = clusters_of_map(probability, params, context, split_radius)
    if log:
        warn_if_one_cluster_fills_the_map(clusters, region, params.threshold, log, region_name)
    return clusters


def _context_mask(context_path, shape):
    """The context mask volume, refused unless it has the probability map's shape (z, y, x)."""
    context = read_volume(context_path)
    if context.data.shape != tuple(shape):
        raise ParameterError(f"the context mask {context_path} has shape (z, y, x) {context.data.shape} but the "
                             f"probability map {tuple(shape)}")
    return context


@contextlib.contextmanager
def context_on_tomogram_grid(context_path, tomogram_path, beside, log=print) -> Iterator[Path | None]:
    """The context mask ``context_path`` on the tomogram's grid: the file itself when it has the tomogram's
    shape; a mask of the same tomogram at another binning (its extent, size × header voxel size, the
    tomogram's) resampled to the tomogram's voxels in a scratch folder beside ``beside`` for the block; any
    other mask refused before a prediction is spent on it. ``None`` stays ``None``."""
    if not context_path:
        yield None
        return
    tomogram = read_volume(tomogram_path, check_finite=False)
    context = read_volume(context_path)
    shape = tuple(tomogram.data.shape)
    if context.data.shape == shape:
        if context.voxel_size and tomogram.voxel_size and voxel_sizes_differ(context.voxel_size, tomogram.voxel_size):
            raise InputFileError(context_path, f"has the shape of the tomogram {tomogram_path} but a voxel size of "
                                               f"{context.voxel_size:g} Å against its {tomogram.voxel_size:g} Å",
                                 "Give a context mask made on this tomogram, or correct the voxel size in its header.")
        yield Path(context_path)
        return
    if not (context.voxel_size and tomogram.voxel_size):
        raise InputFileError(context_path, f"has x,y,z = {context.data.shape[::-1]} voxels but the tomogram "
                                           f"{tomogram_path} {shape[::-1]}, and the "
                                           f"{'mask' if not context.voxel_size else 'tomogram'}'s header gives no "
                                           "voxel size to match them by",
                             "Give a context mask made on this tomogram, at its binning or with the voxel size in "
                             "both headers.")
    check_mask_extent(context, context.voxel_size, shape, tomogram.voxel_size)
    with scratch_directory(beside) as folder:
        resampled = Path(folder) / "context.mrc"
        resample_mask(context.data, shape, resampled, tomogram.voxel_size)
        log(f"context mask {Path(context_path).name} (x,y,z = {context.data.shape[::-1]} at "
            f"{context.voxel_size:g} Å) resampled to the tomogram's grid ({shape[::-1]} at "
            f"{tomogram.voxel_size:g} Å)")
        yield resampled


def _predict_and_cluster(model_path, tomogram_path, out_path, params: ClusterParameters | None, class_name,
                         context_path, probability_map, options: InferenceOptions | None, log, mask_out=None,
                         split: bool = False, fallback_threshold: float | None = None):
    """Predict one class's probability map (kept only when asked for) and cluster it: (info, voxel size, clusters).

    ``mask_out`` also receives the clusters as a binary int8 mask. ``split``: clusters of touching particles
    (of the class's training sphere radius) are split, one cluster per particle (:mod:`.splitting`).
    ``fallback_threshold``: see :func:`pick_particles` (without ``params``, the model's calibrated threshold
    when test-time rotations lowered it).
    """
    options = options or InferenceOptions()
    Path(out_path).resolve().parent.mkdir(parents=True, exist_ok=True)
    map_path, scratch = _map_path(probability_map, out_path)
    try:
        info, voxel_size = predict_to_file(model_path, tomogram_path, map_path, class_name, options, log)
        if params is None:
            params = ClusterParameters(**_model_defaults(
                info, tomogram_voxel_scale(info, tomogram_path, options), options.test_time_rotations))
            fallback_threshold = lowered_threshold_fallback(info, params.threshold)
        split_radius = float(info.sphere_radius.get(info.classes[info.class_index(class_name)], 0.0)) \
            * tomogram_voxel_scale(info, tomogram_path, options) if split else 0.0
        share = info.training.get(LABEL_SHARE, {}).get(info.classes[info.class_index(class_name)])
        clusters = _cluster_map(map_path, params, context_path, mask_out=mask_out, voxel_size=voxel_size,
                                split_radius=split_radius, log=log,
                                fallback_threshold=None if mask_out else fallback_threshold, training_share=share)
    finally:
        if scratch:
            scratch.cleanup()
    return info, voxel_size, clusters


def _largest(clusters: Clusters) -> int:
    return int(clusters.size.max()) if len(clusters) else 0


#: What to do when the map lies above the threshold nearly everywhere, for the command line and the Scipion forms.
HIGHER_THRESHOLD_ADVICE = ("Give a higher threshold (--threshold; Scipion: 'Probability threshold'), keeping the map "
                           "to choose one (--probability-map; 'Keep probability maps'), or train longer")


def warn_if_one_cluster_fills_the_map(clusters: Clusters, map_voxels: int, threshold: float, log,
                                      region_name: str = "the tomogram") -> bool:
    """Warn (and return True) when one cluster fills the map, or the ``map_voxels`` of it that can be picked
    (:func:`fills_the_map`): the network does not separate particles at this threshold, and its one pick there
    means nothing."""
    if not fills_the_map(clusters.size, map_voxels):
        return False
    log(f"warning: at threshold {threshold:g} one cluster covers {100 * _largest(clusters) / map_voxels:.0f} % of "
        f"{region_name}: "
        "the probability map does not separate particles there (a network trained too briefly, or a tomogram "
        f"unlike its training data). {HIGHER_THRESHOLD_ADVICE}")
    return True


def warn_if_segmentation_fills_the_map(voxels: int, region_voxels: int, training_share: float | None,
                                       threshold: float, log, region_name: str = "the tomogram",
                                       advice: str = HIGHER_THRESHOLD_ADVICE,
                                       unknown_share_limit: float = UNKNOWN_SHARE_FILLING_LIMIT) -> bool:
    """Warn (and return True) when a segmentation of ``voxels`` voxels covers far more of ``region_voxels`` than
    its class covered in the training tomograms, or nearly all of it (:func:`segmentation_fills_the_map`): the map
    lies above the threshold nearly everywhere, and the mask means nothing. ``advice``: what to do, in the words
    of the step's options."""
    if not segmentation_fills_the_map(voxels, region_voxels, training_share, unknown_share_limit):
        return False
    trained = f", where its labels covered {100 * training_share:.1f} % of the training tomograms" \
        if training_share is not None else ""
    log(f"warning: at threshold {threshold:g} the segmentation covers {100 * voxels / region_voxels:.0f} % of "
        f"{region_name}{trained}: the probability map does not separate the structure from the rest (a network "
        f"trained too briefly, or a tomogram unlike its training data). {advice}")
    return True


def _map_path(probability_map, out_path):
    if probability_map:
        return Path(probability_map), None
    scratch = scratch_directory(out_path)
    return Path(scratch.name) / "probability.mrc", scratch


def pick_particles(model_path, tomogram_path, out_csv, params: ClusterParameters | None = None,
                   class_name: str | None = None, context_path=None, min_distance: float | None = None,
                   probability_map=None, options: InferenceOptions | None = None, log=print,
                   orient_by_context: bool = False, split_touching: bool = False,
                   fallback_threshold: float | None = None) -> CoordinateTable:
    """Pick particles of one class; writes a CSV (x, y, z, score, size, class) with the voxel size.

    ``orient_by_context``: also orient each pick along the normal of the context mask near it
    (:mod:`.normals`; columns rot, tilt, psi). ``split_touching``: clusters of touching particles give
    one pick per particle (:mod:`.splitting`). ``fallback_threshold``: a higher threshold to cluster at when
    one cluster fills the map at ``params.threshold`` (:func:`fills_the_map`): the model's calibrated one when
    test-time rotations lowered it (:func:`lowered_threshold_fallback`), which only a confident network bears.
    """
    if orient_by_context and not context_path:
        raise ParameterError("orienting picks by their context needs a context mask")
    with context_on_tomogram_grid(context_path, tomogram_path, out_csv, log) as context:
        info, voxel_size, clusters = _predict_and_cluster(model_path, tomogram_path, out_csv, params, class_name,
                                                          context, probability_map, options, log,
                                                          split=split_touching, fallback_threshold=fallback_threshold)
        name = info.classes[info.class_index(class_name)]
        if min_distance is None:
            min_distance = _default_min_distance(info, name) * tomogram_voxel_scale(info, tomogram_path, options)
        keep = remove_duplicates(clusters.xyz, clusters.mean_probability, min_distance)
        table = CoordinateTable(clusters.xyz[keep], {SCORE_COLUMN: clusters.mean_probability[keep],
                                                     "size": clusters.size[keep],
                                                     CLASS_COLUMN: np.array([name] * len(keep), dtype=object)},
                                voxel_size)
        if orient_by_context:
            table.columns.update(orientation_columns(table.xyz, read_volume(context).data, clusters.size[keep]))
    write_coordinates(out_csv, table)
    log(f"{len(table)} {'' if name == DEFAULT_CLASS_NAME else name + ' '}particle(s) picked in {tomogram_path} -> "
        f"{out_csv}")
    return table


def segment_structures(model_path, tomogram_path, out_mask, params: ClusterParameters | None = None,
                       class_name: str | None = None, context_path=None, probability_map=None,
                       options: InferenceOptions | None = None, log=print) -> Clusters:
    """Segment a structure class (membranes, NPC, filaments) into a binary int8 mask."""
    with context_on_tomogram_grid(context_path, tomogram_path, out_mask, log) as context:
        _, _, clusters = _predict_and_cluster(model_path, tomogram_path, out_mask, params, class_name, context,
                                              probability_map, options, log, mask_out=out_mask)
    log(f"{len(clusters)} segment(s), {int(clusters.size.sum())} voxels in {tomogram_path} -> {out_mask}")
    return clusters


def _model_defaults(info: ModelInfo, scale: float = 1.0, rotations: bool = False) -> dict:
    """The model's suggested post-processing, its sizes (in the model's voxels) converted to voxels ``scale``
    times smaller (:func:`voxel_scale`); with ``rotations`` (test-time rotations) a calibrated threshold is
    lowered by ``ROTATED_THRESHOLD_SHIFT`` (see :mod:`deepict.conventions`)."""
    defaults = {"threshold": 0.5, "min_size": 1, "max_size": None}
    defaults.update({k: v for k, v in info.postprocess.items() if k in defaults})
    if rotations and POSTPROCESS_CALIBRATION in info.training:
        defaults["threshold"] = max(ROTATED_THRESHOLD_FLOOR, defaults["threshold"] - ROTATED_THRESHOLD_SHIFT)
    volume_scale = scale ** 3
    defaults["min_size"] = max(1, int(round(defaults["min_size"] * volume_scale)))
    if defaults["max_size"] is not None:
        defaults["max_size"] = max(defaults["min_size"], int(round(defaults["max_size"] * volume_scale)))
    return defaults


def model_threshold(info: ModelInfo) -> float:
    """The threshold the model suggests for single-view maps (its calibrated one, else 0.5)."""
    return float(_model_defaults(info)["threshold"])


def lowered_threshold_fallback(info: ModelInfo, threshold: float) -> float | None:
    """The model's calibrated threshold when ``threshold`` is it lowered for test-time rotations, else None:
    where the lowered threshold joins a weak network's map into one cluster, pick falls back to it."""
    calibrated = model_threshold(info)
    return calibrated if threshold < calibrated else None


def _default_min_distance(info: ModelInfo, class_name: str) -> float:
    """The duplicate distance calibrated at training (one-class models), else one particle radius (when known):
    two picks closer than that are one particle."""
    if "min_distance" in info.postprocess:
        return float(info.postprocess["min_distance"])
    return float(info.sphere_radius.get(class_name, 0.0))


def resolve_cluster_parameters(info: ModelInfo, threshold=None, min_size=None, max_size=None, connectivity=1,
                               border=0, context_mode="intersection", context_distance=0.0,
                               voxel_scale: float = 1.0, rotations: bool = False) -> ClusterParameters:
    """Cluster parameters: explicit values (in the tomogram's voxels), else the model's suggested defaults
    (converted to the tomogram's voxels by ``voxel_scale``, see :func:`voxel_scale`; ``rotations``: for maps
    averaged over test-time rotations, see :func:`_model_defaults`)."""
    defaults = _model_defaults(info, voxel_scale, rotations)
    border_xyz = tuple(border) if isinstance(border, (list, tuple)) else (border,) * 3
    if len(border_xyz) != 3:
        raise ParameterError("give the border as one value or three (x y z)")
    return ClusterParameters(
        threshold=defaults["threshold"] if threshold is None else threshold,
        min_size=defaults["min_size"] if min_size is None else min_size,
        max_size=defaults["max_size"] if max_size is None else max_size,
        connectivity=connectivity, border_xyz=border_xyz, context_mode=context_mode,
        context_distance=context_distance)
