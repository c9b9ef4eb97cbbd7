"""Compartment segmentation of a tomogram with a trained 2D U-Net (``deepict segment2d``).

Every z slice (or a chosen z range) is z-scored with the whole tomogram's statistics,
reflect-padded by the discarded rim, cut into overlapping tiles whose cores cover every
pixel (:mod:`.tiling`; any slice size, including slices smaller than a tile and far wider than
DeePiCt's fixed 5x5 grid allowed), predicted in batches without gradients, and the cores are averaged
where they overlap. Probabilities are streamed to a scratch volume (a temporary file for big
tomograms), then smoothed along z with a 1D Gaussian and thresholded into a 0/1 mask
(:func:`.smoothing.smooth_and_threshold_slabs`).
"""

from __future__ import annotations

import contextlib
import copy
import os
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch

from deepict.infer.compartments import (DEFAULT_BATCH_SIZE, DEFAULT_CROP, DEFAULT_SIGMA, DEFAULT_THRESHOLD,
                                        MAX_AUTO_TILE)
from deepict.infer.clusters import NEARLY_ALL_FRACTION
from deepict.infer.normalization import tomogram_zscore
from deepict.infer.picking import warn_if_segmentation_fills_the_map
from deepict.infer.smoothing import smooth_and_threshold_slabs
from deepict.infer.tiling import auto_tile_size, box_starts, check_tile_geometry, pad_for_tiles
from deepict.conventions import rescale_factor
from deepict.infer.rescale import resample_volume, rescaled_shape
from deepict.infer.voxel_size import check_model_voxel_size, rescale_line, rescale_target
from deepict.nn.devices import memory_format, select_device
from deepict.nn.precision import current_precision
from deepict.errors import ParameterError
from deepict.io import read_slab, read_volume, scratch_directory, slices_per_chunk, volume_writer
from deepict.nn.model_files import KIND_2D, LABEL_SHARE, ModelInfo, incomplete_training_warning, load_model
from deepict.progress import Progress


#: Probability volumes larger than this are kept in a temporary file rather than in memory.
IN_MEMORY_LIMIT_BYTES = 256 * 1024 ** 2


def predict_slices(network: torch.nn.Module, slices: Iterable[tuple[object, np.ndarray]], tile: int, crop: int,
                   batch_size: int = DEFAULT_BATCH_SIZE, device=None) -> Iterator[tuple[object, np.ndarray]]:
    """Yield ``(key, probability slice)`` for each ``(key, normalised 2D slice)`` of ``slices``, in order.

    All slices must have the same shape. Tiles of several slices share a batch. An inference copy
    of ``network`` runs (channels-last on the CPU), so a network in training is left as it is.
    """
    device = torch.device(device) if device is not None else next(network.parameters()).device
    precision = current_precision(device)
    layout = memory_format(device, spatial_dims=2)
    network = copy.deepcopy(network).eval().to(device=device, memory_format=layout)
    core = tile - 2 * crop
    pending_tiles: list[np.ndarray] = []
    pending_keys: list[tuple[int, int, int]] = []
    sums: dict[int, np.ndarray] = {}
    remaining: dict[int, int] = {}
    keys: dict[int, object] = {}
    order: list[int] = []
    geometry = None

    def run_batch():
        batch = torch.from_numpy(np.stack(pending_tiles)[:, None]).to(device).contiguous(memory_format=layout)
        with torch.no_grad(), precision.autocast():
            logits = network(batch)[:, 0, crop:crop + core, crop:crop + core]
            probabilities = torch.sigmoid(logits).float().cpu().numpy()
        for (slot, y0, x0), prob in zip(pending_keys, probabilities):
            target = sums[slot][y0:y0 + core, x0:x0 + core]
            target += prob[:target.shape[0], :target.shape[1]]
            remaining[slot] -= 1
        pending_tiles.clear()
        pending_keys.clear()

    def finished():
        while order and remaining[order[0]] == 0:
            slot = order.pop(0)
            yield keys.pop(slot), sums.pop(slot) / geometry[2]
            del remaining[slot]

    for slot, (key, image) in enumerate(slices):
        image = np.asarray(image, dtype=np.float32)
        if image.ndim != 2:
            raise ParameterError(f"expected 2D slices, got shape {image.shape}")
        if geometry is None:
            ys, xs = box_starts(image.shape[0], tile, crop), box_starts(image.shape[1], tile, crop)
            count = np.zeros(image.shape, dtype=np.float32)
            for y0 in ys:
                for x0 in xs:
                    count[y0:y0 + core, x0:x0 + core] += 1
            geometry = (ys, xs, count, image.shape)
        elif image.shape != geometry[3]:
            raise ParameterError(f"slice {key} has shape {image.shape}, the others {geometry[3]}")
        ys, xs = geometry[0], geometry[1]
        padded = pad_for_tiles(image, tile, crop)
        sums[slot] = np.zeros(image.shape, dtype=np.float32)
        remaining[slot] = len(ys) * len(xs)
        keys[slot] = key
        order.append(slot)
        for y0 in ys:
            for x0 in xs:
                pending_tiles.append(padded[y0:y0 + tile, x0:x0 + tile])
                pending_keys.append((slot, y0, x0))
                if len(pending_tiles) >= batch_size:
                    run_batch()
        yield from finished()
    if pending_tiles:
        run_batch()
    yield from finished()


def predict_array(network: torch.nn.Module, normalized: np.ndarray, tile: int, crop: int,
                  batch_size: int = DEFAULT_BATCH_SIZE, device=None) -> np.ndarray:
    """Probabilities (float32, same shape) of an in-memory stack of normalised slices (z, y, x)."""
    out = np.empty(normalized.shape, dtype=np.float32)
    for z, prob in predict_slices(network, ((z, normalized[z]) for z in range(normalized.shape[0])),
                                  tile, crop, batch_size, device):
        out[z] = prob
    return out


class _SliceStore:
    """A float32 (z, y, x) scratch volume: in memory when small, else a raw file in a scratch folder
    beside the output (``io.scratch_directory``, so the next run removes what a killed run left).

    The file is accessed with ordinary reads and writes (no memory map), so a tomogram larger
    than RAM needs memory for one slab only; it is deleted by :meth:`close`.
    """

    def __init__(self, shape, beside):
        self.shape = tuple(int(s) for s in shape)
        self.plane = self.shape[1] * self.shape[2]
        self.array = self.handle = self.scratch = None
        if int(np.prod(self.shape)) * 4 <= IN_MEMORY_LIMIT_BYTES:
            self.array = np.zeros(self.shape, dtype=np.float32)
        else:
            self.scratch = scratch_directory(beside)
            self.handle = open(Path(self.scratch.name) / "probability.raw", "w+b")
            self.handle.truncate(int(np.prod(self.shape)) * 4)

    def write(self, z: int, image: np.ndarray) -> None:
        if self.array is not None:
            self.array[z] = image
        else:
            self.handle.seek(z * self.plane * 4)
            self.handle.write(np.ascontiguousarray(image, dtype=np.float32).tobytes())

    def read(self, z0: int, z1: int, y0: int = 0, y1: int | None = None) -> np.ndarray:
        """Slices ``z0:z1``, rows ``y0:y1`` (all rows by default)."""
        y1 = self.shape[1] if y1 is None else min(y1, self.shape[1])
        if self.array is not None:
            return self.array[z0:z1, y0:y1]
        out = np.empty((z1 - z0, y1 - y0, self.shape[2]), dtype=np.float32)
        for i, z in enumerate(range(z0, z1)):
            self.handle.seek((z * self.plane + y0 * self.shape[2]) * 4)
            self.handle.readinto(memoryview(out[i]).cast("B"))
        return out

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.scratch.cleanup()
            self.handle = None


#: What to do when a compartment's map lies above the threshold nearly everywhere, for the command line and the
#: Scipion form (whose probability maps are an output of their own).
HIGHER_MASK_THRESHOLD_ADVICE = ("Give a higher threshold (--threshold; Scipion: 'Threshold'), choosing it on the "
                                "probability map (--probability-map; Scipion: the probability maps output), or "
                                "train longer")


def _model(model) -> tuple[torch.nn.Module, ModelInfo]:
    if isinstance(model, (str, os.PathLike)):
        return load_model(model, kind=KIND_2D)
    network, info = model
    if info.kind != KIND_2D:
        raise ParameterError(f"a {info.kind.upper()} model cannot segment compartments; give a 2D model")
    return network, info


def segment_tomogram(model, tomogram, out, probability_map=None, threshold: float | None = None,
                     sigma: float | None = None, batch_size: int = DEFAULT_BATCH_SIZE, device="auto",
                     z_range: tuple[int, int] | None = None, tile_size: int | None = None, crop: int | None = None,
                     voxel_size: float | None = None, ignore_voxel_size: bool = False,
                     log: Callable[[str], None] | None = print, name: str | None = None) -> dict:
    """Segment one compartment in ``tomogram``; write the 0/1 mask ``out`` (and ``probability_map``).

    ``model`` is a model file path or ``(network, info)``. ``threshold`` / ``sigma`` default to the
    values recorded in the model (else 0.75 / 5 slices). ``tile_size`` None picks the tile size
    (from the model's training tile up to ``MAX_AUTO_TILE`` px) that needs the least computation for this slice
    size. Slices outside ``z_range`` = (first, end) are 0 in both outputs. ``voxel_size`` (Å) overrides the
    tomogram's header (a wrong one), as pick's ``--voxel-size`` does. Both outputs carry the
    tomogram's voxel size, are streamed to disk slab by slab (memory does not grow with the
    tomogram's depth) and appear only once complete. ``name``: the tomogram's name in the log (default: its file
    name). Returns a summary dict.
    """
    log = log or (lambda _text: None)
    started = time.time()
    network, info = _model(model)
    post = info.postprocess or {}
    threshold = float(post.get("threshold", DEFAULT_THRESHOLD) if threshold is None else threshold)
    sigma = float(post.get("sigma", DEFAULT_SIGMA) if sigma is None else sigma)
    crop = int((info.overlap if info.overlap is not None else DEFAULT_CROP) if crop is None else crop)
    if batch_size < 1:
        raise ParameterError(f"batch size must be at least 1, not {batch_size}")
    if not 0 <= threshold < 1:
        raise ParameterError(f"the threshold must lie in [0, 1), not {threshold}")
    if not sigma >= 0:
        raise ParameterError(f"the z smoothing sigma must be >= 0, not {sigma}")
    depth = int(info.architecture.get("depth", 5))

    volume = read_volume(tomogram)  # also refuses NaN / infinite voxels
    data = volume.data
    shape = tuple(int(s) for s in data.shape)
    known_voxel_size = voxel_size or volume.voxel_size
    warning = check_model_voxel_size(known_voxel_size, info.voxel_size, tomogram, ignore=ignore_voxel_size,
                                     refuse_unknown=False)
    if warning:
        log(f"warning: {warning}")
    target = rescale_target(known_voxel_size, info.voxel_size, ignore=ignore_voxel_size)
    if target:
        return _segment_rescaled((network, info), volume, known_voxel_size, target, out, probability_map, threshold,
                                 sigma, batch_size, device, z_range, tile_size, crop, log, started)
    unfinished = incomplete_training_warning(info.training)
    if unfinished:
        log(f"warning: {model if isinstance(model, (str, os.PathLike)) else 'the model'}: {unfinished}")
    voxel_size = known_voxel_size or info.voxel_size or 1.0
    z0, z1 = (0, shape[0]) if z_range is None else (int(z_range[0]), int(z_range[1]))
    if not 0 <= z0 < z1 <= shape[0]:
        raise ParameterError(f"z range {z0}..{z1} is not within the tomogram's {shape[0]} slices "
                             "(give first and end slice, 0-based, end excluded)")
    if tile_size is None:
        tile_size = auto_tile_size(shape[1:], int(info.patch_size), crop, depth, MAX_AUTO_TILE)
    tile_size = int(tile_size)
    check_tile_geometry(tile_size, crop, depth)
    device = select_device(device or "auto") if isinstance(device, str) or device is None else torch.device(device)
    network = network.to(device)
    mean, std = tomogram_zscore(data, tomogram)
    out = Path(out)
    name = name or Path(tomogram).name
    log(f"segmenting {info.classes[0]} in {name} (x,y,z = {shape[::-1]}, slices {z0}..{z1 - 1}), "
        f"tile {tile_size} px, rim {crop} px, batch {batch_size}, device {device}, "
        f"precision {current_precision(device).name}")

    def slices():
        step = slices_per_chunk(shape)
        for s0 in range(z0, z1, step):
            slab = read_slab(data, s0, min(z1, s0 + step))
            slab -= mean
            slab /= std
            for i, image in enumerate(slab):
                yield s0 + i, image

    count = z1 - z0
    zeros = np.zeros((1,) + shape[1:], dtype=np.float32)
    out.parent.mkdir(parents=True, exist_ok=True)
    store = _SliceStore((count,) + shape[1:], out)
    try:
        with contextlib.ExitStack() as stack:
            write_probability = None
            if probability_map is not None:
                write_probability = stack.enter_context(volume_writer(probability_map, shape, np.float32, voxel_size))
                for z in list(range(0, z0)) + list(range(z1, shape[0])):
                    write_probability(z, zeros)
            progress = Progress(f"segmenting {name}", count, "slices", log)
            for z, prob in predict_slices(network, slices(), tile_size, crop, batch_size, device):
                store.write(z - z0, prob)
                if write_probability is not None:
                    write_probability(z, prob[None])
                progress.advance()
            with volume_writer(out, shape, np.int8, voxel_size) as write_mask:
                empty = np.zeros((1,) + shape[1:], dtype=np.int8)
                for z in list(range(0, z0)) + list(range(z1, shape[0])):
                    write_mask(z, empty)
                positive = smooth_and_threshold_slabs(store.read, (count,) + shape[1:], sigma, threshold,
                                                      lambda s0, mask: write_mask(z0 + s0, mask))
    finally:
        store.close()
    seconds = time.time() - started
    fraction = positive / float(np.prod(shape))
    log(f"wrote {out} ({100 * fraction:.1f}% of the voxels are {info.classes[0]}, threshold {threshold:g}, "
        f"z sigma {sigma:g}) in {seconds:.1f} s")
    warn_if_segmentation_fills_the_map(
        positive, count * shape[1] * shape[2], info.training.get(LABEL_SHARE, {}).get(info.classes[0]), threshold,
        log, "the slices segmented" if count < shape[0] else "the tomogram", advice=HIGHER_MASK_THRESHOLD_ADVICE,
        unknown_share_limit=NEARLY_ALL_FRACTION)
    return {"mask": str(out), "probability_map": str(probability_map) if probability_map else None,
            "shape_zyx": list(shape), "voxel_size": voxel_size, "z_range": [z0, z1], "tile_size": tile_size,
            "crop": crop, "threshold": threshold, "sigma": sigma, "positive_fraction": fraction,
            "seconds": seconds, "warning": warning}


def _segment_rescaled(model, volume, voxel_size: float, target: float, out, probability_map, threshold: float,
                      sigma: float, batch_size: int, device, z_range, tile_size, crop, log, started: float) -> dict:
    """Segment a tomogram of ``voxel_size`` rescaled to the model's voxel size ``target``, with results at the
    tomogram's own.

    The network's probability map is resampled back to the tomogram's grid, then smoothed along z
    (``sigma`` is in the model's slices: converted) and thresholded there, as an unscaled tomogram is.
    """
    shape = tuple(int(n) for n in volume.data.shape)
    factor = rescale_factor(voxel_size, target)
    rescaled = rescaled_shape(shape, factor)
    z0, z1 = (0, shape[0]) if z_range is None else (int(z_range[0]), int(z_range[1]))
    if not 0 <= z0 < z1 <= shape[0]:
        raise ParameterError(f"z range {z0}..{z1} is not within the tomogram's {shape[0]} slices "
                             "(give first and end slice, 0-based, end excluded)")
    log(rescale_line(volume.path, voxel_size, target, shape, rescaled))
    name = Path(volume.path).name
    with scratch_directory(out) as folder:
        resample_volume(volume.data, rescaled, folder / "rescaled.mrc", target, label=f"rescaling {name}", log=log)
        first = min(rescaled[0] - 1, int(np.floor(z0 * factor)))
        inner_range = (first, max(first + 1, min(rescaled[0], int(np.ceil(z1 * factor)))))
        result = segment_tomogram(model, folder / "rescaled.mrc", folder / "mask_rescaled.mrc",
                                  probability_map=folder / "probability_rescaled.mrc", threshold=threshold,
                                  sigma=sigma, batch_size=batch_size, device=device, z_range=inner_range,
                                  tile_size=tile_size, crop=crop, name=f"{name} rescaled",
                                  log=lambda line: None if line.startswith("wrote ") else log(line))  # scratch files
        back = Path(probability_map) if probability_map is not None else folder / "probability.mrc"
        resample_volume(read_volume(folder / "probability_rescaled.mrc", check_finite=False).data, shape, back,
                        voxel_size, label=f"probability map of {name} back to {voxel_size:g} Å",
                        clip=(0.0, 1.0), log=log)
        probability = read_volume(back, check_finite=False).data
        sigma_here = result["sigma"] / factor

        def read(a, b, y0, y1):
            block = read_slab(probability, a, b)[:, y0:y1]
            block[:max(0, z0 - a)] = 0  # slices outside the asked range stay 0, as without rescaling
            block[max(0, z1 - a):] = 0
            return block

        with volume_writer(out, shape, np.int8, voxel_size) as write_mask:
            positive = smooth_and_threshold_slabs(read, shape, sigma_here, result["threshold"], write_mask)
        probability = None  # release the memory map before the scratch folder goes
    fraction = positive / float(np.prod(shape))
    log(f"wrote {out} at {voxel_size:g} Å ({100 * fraction:.1f}% of the voxels positive)")
    return {**result, "mask": str(out), "probability_map": str(probability_map) if probability_map else None,
            "shape_zyx": list(shape), "voxel_size": voxel_size, "z_range": [z0, z1],
            "positive_fraction": fraction, "seconds": time.time() - started, "rescaled_from": voxel_size,
            "rescaled_to": target, "warning": None}
