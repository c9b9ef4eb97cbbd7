"""Sliding-window 3D inference that streams a probability map to disk.

The tomogram is covered by ``window``³ boxes that stay inside it and overlap by twice ``margin``
(:func:`.tiling.window_starts`): its edges lie on box edges, as a training patch's edges do, and
an axis shorter than a box is mirrored beyond its end, so no voxel is left uncovered whatever the
tomogram's shape. Overlapping predictions are blended with weights that are 1 in a box's core (the
box minus ``margin`` on each side) and fall off linearly over its margin, where a convolutional
network sees the least context; at the tomogram's edges the only box there counts alone.

Boxes are processed one z row at a time, in batches; finished z slices are written to the output
as soon as no later row can touch them, so memory holds one row of boxes, never the whole map.
The network runs as an inference copy whose Conv -> ReLU -> BatchNorm units are folded into one
convolution and a clamp (:func:`~deepict.nn.networks.fold_batch_norm`: the batch norms took about a
fifth of the network's time), in the process's precision (:mod:`deepict.nn.precision`).
The boxes form a grid and their weights are products of 1D profiles, so the normalising weight of
a voxel is a product of three 1D sums (no weight volume is kept). On the CPU the network runs in
the channels-last layout, which oneDNN's 3D convolutions need to avoid layout conversions.
The inference box may be larger than the training patch: the networks are fully convolutional.
"""

from __future__ import annotations

import copy
from typing import Callable

import numpy as np
import torch

from deepict.nn.devices import memory_format
from deepict.nn.ensemble import members_of
from deepict.nn.networks import fold_batch_norm
from deepict.nn.precision import current_precision
from deepict.errors import ParameterError
from deepict.infer.options import DEFAULT_MARGIN, DEFAULT_WINDOW
from deepict.infer.tiling import box_count, reflect_indices, window_starts
from deepict.io import read_slab, volume_mean_std
from deepict.progress import Progress


def blending_profile(window: int, margin: int) -> np.ndarray:
    """1D weights: 1 in the core, a linear ramp over the margin, never exactly 0."""
    distance_to_edge = np.minimum(np.arange(window), np.arange(window)[::-1]).astype(np.float32)
    return np.clip((distance_to_edge + 1) / (margin + 1), 1e-3, 1.0) if margin else np.ones(window, np.float32)


def window_count(shape, window: int, margin: int) -> int:
    """How many boxes :func:`predict_tomogram` runs over a volume of ``shape`` (for progress reports)."""
    return box_count(shape, window, margin, window_starts)


#: z slices normalised and written per call of ``write`` (bounds the temporary output array).
WRITE_SLICES = 16

#: Test-time views of a box, each (quarter turns about z, mirrored dims of a batch (n, c, z, y, x)); all
#: in-plane: the missing wedge makes z unlike y and x. Mirrors: the box, its mirror images in x, in y and
#: in both. Rotations: the box turned by 0, 90, 180 and 270° about z (training boxes are turned so too).
#: Both: the eight symmetries of the square (each rotation, and each rotation of the x mirror image).
MIRROR_VIEWS = ((0, ()), (0, (4,)), (0, (3,)), (0, (3, 4)))
ROTATION_VIEWS = tuple((turns, ()) for turns in range(4))
SQUARE_VIEWS = tuple((turns, flip) for turns in range(4) for flip in ((), (4,)))


def augmentation_views(mirror: bool, rotate: bool) -> tuple:
    """The views of a box whose probabilities are averaged (see :data:`MIRROR_VIEWS`)."""
    if mirror and rotate:
        return SQUARE_VIEWS
    return MIRROR_VIEWS if mirror else ROTATION_VIEWS if rotate else MIRROR_VIEWS[:1]


def axis_weights(length: int, starts: list, profile: np.ndarray) -> np.ndarray:
    """Sum, at each real voxel of one axis, of the blending profiles of the boxes along that axis.

    The boxes form a grid (every combination of the z, y and x starts), and a box's weight is the
    product of three 1D profiles, so the total weight of a voxel is the product of three such sums:
    no weight volume has to be accumulated.
    """
    total = np.zeros(length, np.float64)
    for start in starts:
        total[start:start + len(profile)] += profile[:length - start]
    return total.astype(np.float32)


def predict_tomogram(network: torch.nn.Module, data: np.ndarray, write: Callable[[int, np.ndarray], None],
                     channels: list | None = None, window: int = DEFAULT_WINDOW, margin: int = DEFAULT_MARGIN,
                     batch_size: int = 4, device: torch.device | None = None,
                     stats: tuple | None = None, progress: Progress | None = None, fold: bool = True,
                     mirror: bool = False, rotate: bool = False) -> None:
    """Predict class probabilities for a (z, y, x) volume and pass them to ``write(z0, probs)``.

    ``probs`` is (len(channels), nz, Y, X) float32 in [0, 1]; slabs arrive in increasing z and
    together cover the volume exactly once. ``channels`` selects output channels (default all).
    ``stats`` = (mean, std) overrides the tomogram's own normalisation. ``network`` itself is left
    as it is: an inference copy runs, its batch norms folded unless ``fold`` is False (for
    comparisons), in the channels-last layout on the CPU. ``progress`` is advanced by one per box
    (see :func:`window_count`), in shares as each view of it by each member of an ensemble is done, so that
    slow boxes (an ensemble with test-time views) still report every few seconds. ``mirror`` averages each
    box's probabilities with those of its mirror images in x, y and both, ``rotate`` with those of the box turned by 90, 180 and 270° about z, both together over
    the eight symmetries of the square (:func:`augmentation_views`, test-time augmentation: four or eight times
    the network's time).
    """
    device = device or torch.device("cpu")
    divisor = 2 ** getattr(network, "depth", 0)
    if window % divisor:
        raise ParameterError(f"the inference box ({window}) must be divisible by {divisor} for this network")
    if batch_size < 1:
        raise ParameterError(f"the batch size must be at least 1, got {batch_size}")
    layout = memory_format(device)
    network = (fold_batch_norm(network) if fold else copy.deepcopy(network).eval()).to(device=device,
                                                                                       memory_format=layout)
    precision = current_precision(device)
    mean, std = stats or volume_mean_std(data)
    std = std if std > 0 else 1.0
    nz, ny, nx = data.shape
    starts = [window_starts(n, window, margin) for n in (nz, ny, nx)]
    y_index, x_index = (reflect_indices(np.arange(max(n, window)), n) for n in (ny, nx))
    profile = blending_profile(window, margin)
    box_weight = torch.from_numpy(profile[:, None, None] * profile[None, :, None] * profile[None, None, :]).to(device)
    weight_z = axis_weights(nz, starts[0], profile)
    weight_yx = axis_weights(ny, starts[1], profile)[:, None] * \
        axis_weights(nx, starts[2], profile)[None, :]
    boxes = [(y0, x0) for y0 in starts[1] for x0 in starts[2]]
    chunks = [boxes[i:i + batch_size] for i in range(0, len(boxes), batch_size)]
    if batch_size > 1 and len(chunks) > 1 and len(chunks[-1]) == 1:
        # A lone box would run PyTorch's slow single-sample CPU convolution path: join it to the previous batch.
        chunks[-2:] = [chunks[-2] + chunks[-1]]

    channels = list(range(network.out_conv.out_channels)) if channels is None else list(channels)
    # Every member of an ensemble (see :mod:`deepict.nn.ensemble`) sees every view; their probabilities are averaged.
    passes = [(member, view) for member in members_of(network) for view in augmentation_views(mirror, rotate)]
    # Rolling accumulator of weighted probabilities over real z in [buffer_z0, buffer_z0 + window).
    accumulated = np.zeros((len(channels), window, ny, nx), np.float32)
    buffer_z0 = 0
    written = 0
    for row, z_start in enumerate(starts[0]):
        _shift_down(accumulated, z_start - buffer_z0)
        buffer_z0 = z_start
        slab = _slab(data, z_start, window, y_index, x_index)
        slab -= mean
        slab /= std
        for chunk in chunks:
            batch = np.stack([slab[:, y0:y0 + window, x0:x0 + window] for y0, x0 in chunk])[:, None]
            with torch.inference_mode():
                inputs = torch.from_numpy(batch).to(device).contiguous(memory_format=layout)
                probability = 0.0
                for member, view in passes:
                    probability = probability + _view_probability(member, inputs, channels, precision, layout, view)
                    if progress is not None:
                        progress.advance(len(chunk) / len(passes))
                weighted = (probability / len(passes) * box_weight).contiguous().cpu().numpy()
            for (y0, x0), box in zip(chunk, weighted):
                _accumulate(accumulated, box, y0, x0)
        del slab
        # Real z slices below the next row's reach are final.
        final_z = starts[0][row + 1] if row + 1 < len(starts[0]) else nz
        for z0 in range(written, min(final_z, nz), WRITE_SLICES):
            z1 = min(final_z, nz, z0 + WRITE_SLICES)
            probabilities = accumulated[:, z0 - buffer_z0:z1 - buffer_z0] / weight_yx
            probabilities /= weight_z[z0:z1, None, None]
            write(z0, probabilities)
        written = max(written, min(final_z, nz))


def _view_probability(network, inputs: torch.Tensor, channels: list, precision, layout, view: tuple) -> torch.Tensor:
    """The network's probabilities of a batch seen mirrored along ``dims`` and then turned ``turns`` quarter
    turns about z (``view`` = (turns, dims)), turned and mirrored back (float32)."""
    turns, dims = view
    if dims:
        inputs = inputs.flip(dims)
    if turns:
        inputs = torch.rot90(inputs, turns, dims=(3, 4))
    if dims or turns:
        inputs = inputs.contiguous(memory_format=layout)
    with precision.autocast():
        probability = torch.sigmoid(network(inputs)[:, channels].float())
    if turns:
        probability = torch.rot90(probability, -turns, dims=(3, 4))
    return probability.flip(dims) if dims else probability


def _shift_down(accumulated: np.ndarray, shift: int) -> None:
    """Move the rolling buffer ``shift`` slices down (in place, no temporary copy); zero the freed top."""
    if shift <= 0:
        return
    window = accumulated.shape[1]
    keep = max(0, window - shift)
    for i in range(0, keep, shift):  # non-overlapping chunks, copied in increasing order
        n = min(shift, keep - i)
        accumulated[:, i:i + n] = accumulated[:, i + shift:i + shift + n]
    accumulated[:, keep:] = 0


def _slab(data: np.ndarray, z_first: int, window: int, y_index: np.ndarray, x_index: np.ndarray) -> np.ndarray:
    """Slices ``z_first .. z_first + window`` at rows ``y_index`` and columns ``x_index`` (mirrored past
    the ends of an axis shorter than a box), as float32."""
    z_real = reflect_indices(np.arange(z_first, z_first + window), data.shape[0])
    slab = np.empty((window, len(y_index), len(x_index)), np.float32)
    for i, z in enumerate(z_real):  # plane by plane: no second copy of the slab in memory
        slab[i] = read_slab(data, int(z), int(z) + 1)[0][y_index][:, x_index]
    return slab


def _accumulate(accumulated, weighted_probability, y0: int, x0: int) -> None:
    """Add one weighted box whose origin is at y0, x0 into the accumulator (what reaches past its end is dropped)."""
    _, _, ny, nx = accumulated.shape
    height, width = min(ny - y0, weighted_probability.shape[-2]), min(nx - x0, weighted_probability.shape[-1])
    # z: the box spans the whole buffer (the buffer starts at this row's first z).
    accumulated[:, :, y0:y0 + height, x0:x0 + width] += weighted_probability[:, :, :height, :width]
