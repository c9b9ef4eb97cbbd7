"""Tests of the sliding-window 3D inference (deepict.infer.sliding_window): tiny networks, fast."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from deepict.errors import ParameterError
from deepict.io import read_volume, write_volume
from deepict.nn.ensemble import MeanProbabilityEnsemble
from deepict.nn.networks import UNet3D
from deepict.infer.sliding_window import axis_weights, blending_profile, predict_tomogram, window_count
from deepict.progress import Progress
from deepict.infer.tiling import reflect_indices, window_starts

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_blending_profile():
    profile = blending_profile(32, 4)
    assert profile.shape == (32,) and profile.min() > 0 and profile.max() == 1.0
    assert np.all(profile[4:28] == 1.0)
    assert np.allclose(profile, profile[::-1])
    assert np.all(np.diff(profile[:5]) > 0)
    assert np.array_equal(blending_profile(16, 0), np.ones(16, np.float32))


def test_axis_weights_multiply_to_the_summed_box_weights():
    shape, window, margin = (9, 30, 21), 16, 3
    profile = blending_profile(window, margin)
    starts = [window_starts(n, window, margin) for n in shape]
    total = np.zeros(shape)
    box = profile[:, None, None] * profile[None, :, None] * profile[None, None, :]
    for z0 in starts[0]:
        for y0 in starts[1]:
            for x0 in starts[2]:
                padded = np.zeros(tuple(s + window for s in shape))
                padded[z0:z0 + window, y0:y0 + window, x0:x0 + window] += box
                total += padded[:shape[0], :shape[1], :shape[2]]
    weights = [axis_weights(n, st, profile) for n, st in zip(shape, starts)]
    np.testing.assert_allclose(weights[0][:, None, None] * weights[1][None, :, None] * weights[2][None, None, :],
                               total, rtol=1e-6)


# --------------------------------------------------------------------------------------------
# Prediction
# --------------------------------------------------------------------------------------------

class Recorder:
    """Collects ``write(z0, probs)`` calls and checks that they arrive in order, each slice once."""

    def __init__(self, shape_zyx, channels: int):
        self.result = np.full((channels,) + tuple(shape_zyx), np.nan, np.float32)
        self.written = np.zeros(shape_zyx[0], int)
        self.next_z = 0

    def __call__(self, z0, probabilities):
        assert z0 == self.next_z, "slabs must arrive in increasing z without gaps"
        assert probabilities.dtype == np.float32
        assert probabilities.shape[0] == self.result.shape[0] and probabilities.shape[2:] == self.result.shape[2:]
        z1 = z0 + probabilities.shape[1]
        self.written[z0:z1] += 1
        self.result[:, z0:z1] = probabilities
        self.next_z = z1


def tiny_unet(seed=0, out_channels=1):
    torch.manual_seed(seed)
    return UNet3D(depth=1, initial_features=2, out_channels=out_channels, batch_norm=True).eval()


@pytest.mark.parametrize("shape, window, margin, batch_size", [
    ((5, 7, 9), 16, 4, 2),
    ((37, 130, 61), 24, 4, 3),
    ((16, 16, 16), 16, 0, 1),
    ((1, 40, 3), 16, 2, 4),
])
def test_predict_tomogram_writes_each_slice_once(shape, window, margin, batch_size):
    rng = np.random.default_rng(1)
    data = rng.normal(size=shape).astype(np.float32)
    recorder = Recorder(shape, 2)
    predict_tomogram(tiny_unet(out_channels=2), data, recorder, window=window, margin=margin, batch_size=batch_size)
    assert (recorder.written == 1).all()
    assert np.isfinite(recorder.result).all()
    assert recorder.result.min() >= 0 and recorder.result.max() <= 1


def reference_prediction(network, data, window, margin):
    """Straightforward blending on the whole volume, mirrored past the end of axes shorter than a box
    (no rolling buffer, no streaming)."""
    starts = [window_starts(n, window, margin) for n in data.shape]
    index = [reflect_indices(np.arange(st[-1] + window), n) for n, st in zip(data.shape, starts)]
    padded = (data[np.ix_(*index)] - data.mean(dtype=np.float64)) / data.std(dtype=np.float64)
    profile = blending_profile(window, margin)
    box_weight = profile[:, None, None] * profile[None, :, None] * profile[None, None, :]
    total, weights = np.zeros((2,) + padded.shape), np.zeros(padded.shape)
    for z0 in starts[0]:
        for y0 in starts[1]:
            for x0 in starts[2]:
                where = (slice(z0, z0 + window), slice(y0, y0 + window), slice(x0, x0 + window))
                box = torch.from_numpy(padded[where].astype(np.float32))[None, None]
                with torch.no_grad():
                    total[(slice(None),) + where] += torch.sigmoid(network(box))[0].numpy() * box_weight
                weights[where] += box_weight
    real = tuple(slice(0, n) for n in data.shape)
    return (total[(slice(None),) + real] / weights[real]).astype(np.float32)


@pytest.mark.parametrize("shape, window, margin, batch_size", [
    ((37, 50, 45), 16, 4, 3),
    ((7, 9, 11), 16, 2, 3),
    ((40, 20, 24), 24, 6, 3),
    ((10, 40, 40), 16, 4, 2),  # 25 boxes per row: the lone last box joins the previous batch
])
def test_streamed_prediction_equals_whole_volume_blending(shape, window, margin, batch_size):
    data = np.random.default_rng(4).normal(size=shape).astype(np.float32)
    network = tiny_unet(seed=1, out_channels=2)
    expected = reference_prediction(network, data, window, margin)
    recorder = Recorder(shape, 2)
    predict_tomogram(network, data, recorder, window=window, margin=margin, batch_size=batch_size)
    np.testing.assert_allclose(recorder.result, expected, atol=1e-5)


class RecordingNet(torch.nn.Module):
    """Keeps every box it is given; its output is a constant. Not copied, so the inference copy is itself."""

    def __init__(self):
        super().__init__()
        self.out_conv = torch.nn.Conv3d(1, 1, kernel_size=1)
        self.boxes = []

    def __deepcopy__(self, memo):
        return self

    def forward(self, x):
        self.boxes.extend(x[:, 0].clone())
        return torch.zeros_like(x)


def test_boxes_stay_inside_a_tomogram_at_least_one_box_long():
    """A particle cut by the tomogram's edge must reach the network as training patches show one cut by
    their edge: every box is a block of the tomogram itself, none holds mirrored voxels."""
    shape, window, margin = (20, 45, 37), 16, 4
    data = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)  # every voxel tells where it is
    network = RecordingNet()
    predict_tomogram(network, data, Recorder(shape, 1), window=window, margin=margin, fold=False, stats=(0.0, 1.0))
    assert len(network.boxes) == len(window_starts(20, 16, 4)) * len(window_starts(45, 16, 4)) * \
        len(window_starts(37, 16, 4))
    for box in network.boxes:
        z0, y0, x0 = np.unravel_index(int(box[0, 0, 0]), shape)
        np.testing.assert_array_equal(box.numpy(), data[z0:z0 + window, y0:y0 + window, x0:x0 + window])
    corners = {np.unravel_index(int(box[0, 0, 0]), shape) for box in network.boxes}
    assert (0, 0, 0) in corners and (shape[0] - window, shape[1] - window, shape[2] - window) in corners


class PointwiseNet(torch.nn.Module):
    """A 1x1x1 convolution: no spatial context, so blending must reproduce the plain result exactly."""

    def __init__(self):
        super().__init__()
        self.out_conv = torch.nn.Conv3d(1, 2, kernel_size=1)
        with torch.no_grad():
            self.out_conv.weight[:] = torch.tensor([1.5, -0.7]).view(2, 1, 1, 1, 1)
            self.out_conv.bias[:] = torch.tensor([0.2, -0.1])

    def forward(self, x):
        return self.out_conv(x)


@pytest.mark.parametrize("shape, window, margin", [((37, 50, 45), 16, 4), ((9, 33, 20), 24, 8), ((5, 7, 9), 32, 4)])
def test_blending_equals_a_single_window_for_a_pointwise_network(shape, window, margin):
    rng = np.random.default_rng(2)
    data = (3 + 2 * rng.normal(size=shape)).astype(np.float32)
    network = PointwiseNet()
    recorder = Recorder(shape, 1)
    predict_tomogram(network, data, recorder, channels=[1], window=window, margin=margin, batch_size=4)
    normalised = (data - data.mean(dtype=np.float64)) / data.std(dtype=np.float64)
    with torch.no_grad():
        expected = torch.sigmoid(network(torch.from_numpy(normalised.astype(np.float32))[None, None]))[0, 1:]
    assert (recorder.written == 1).all()
    np.testing.assert_allclose(recorder.result, expected.numpy(), atol=1e-4)


def test_predict_from_a_memory_mapped_file_with_given_stats(tmp_path):
    rng = np.random.default_rng(3)
    data = rng.normal(size=(21, 18, 26)).astype(np.float32)
    write_volume(tmp_path / "t.mrc", data, 13.48)
    mapped = read_volume(tmp_path / "t.mrc").data
    network = PointwiseNet()
    from_file, in_memory = Recorder(data.shape, 2), Recorder(data.shape, 2)
    predict_tomogram(network, mapped, from_file, window=16, margin=4, stats=(0.5, 2.0))
    predict_tomogram(network, data, in_memory, window=16, margin=4, stats=(0.5, 2.0))
    np.testing.assert_array_equal(from_file.result, in_memory.result)
    with torch.no_grad():
        expected = torch.sigmoid(network(torch.from_numpy((data - 0.5) / 2.0)[None, None]))[0].numpy()
    np.testing.assert_allclose(from_file.result, expected, atol=1e-4)


def test_constant_tomogram_does_not_divide_by_zero():
    data = np.full((6, 10, 12), 7.0, np.float32)
    recorder = Recorder(data.shape, 1)
    predict_tomogram(tiny_unet(), data, recorder, window=16, margin=2)
    assert np.isfinite(recorder.result).all()


def test_window_not_divisible_by_the_network_depth_and_bad_batch_size_are_refused():
    with pytest.raises(ParameterError, match="divisible"):
        predict_tomogram(UNet3D(depth=2, initial_features=2), np.zeros((4, 4, 4), np.float32),
                         lambda z0, p: None, window=18, margin=2)
    with pytest.raises(ParameterError, match="batch size"):
        predict_tomogram(UNet3D(depth=2, initial_features=2), np.zeros((4, 4, 4), np.float32),
                         lambda z0, p: None, window=16, margin=2, batch_size=0)


def one_box_prediction(network, volume, mirror=False, rotate=False) -> np.ndarray:
    """The network's probabilities of a 16³ volume predicted as one box (no blending), with test-time views."""
    recorder = Recorder(volume.shape, 1)
    predict_tomogram(network, np.ascontiguousarray(volume), recorder, window=16, margin=0, mirror=mirror,
                     rotate=rotate)
    return recorder.result[0]


def test_mirrors_average_the_predictions_of_the_mirrored_tomograms():
    """One box covering the tomogram exactly: the mirrored prediction is the mean over the in-plane mirror
    images of the tomogram (x, y, both; never z, because of the missing wedge), each predicted and mirrored
    back."""
    data = np.random.default_rng(3).normal(size=(16, 16, 16)).astype(np.float32)
    network = tiny_unet(seed=4)

    predicted = functools.partial(one_box_prediction, network)

    views = [predicted(data), predicted(data[:, :, ::-1])[:, :, ::-1], predicted(data[:, ::-1])[:, ::-1],
             predicted(data[:, ::-1, ::-1])[:, ::-1, ::-1]]
    mirrored = predicted(data, mirror=True)
    np.testing.assert_allclose(mirrored, np.mean(views, axis=0), atol=1e-5)
    assert np.abs(mirrored - views[0]).max() > 1e-3  # a random network is not mirror-symmetric


def test_rotations_average_the_predictions_of_the_turned_tomograms():
    """One box covering the tomogram exactly: the rotated prediction is the mean over the tomogram turned by
    0, 90, 180 and 270° about z, each predicted and turned back; with the mirrors, the mean over the eight
    symmetries of the square (each turn of the tomogram and of its x mirror image)."""
    data = np.random.default_rng(5).normal(size=(16, 16, 16)).astype(np.float32)
    network = tiny_unet(seed=6)

    predicted = functools.partial(one_box_prediction, network)

    def turned(volume, turns):
        return np.rot90(volume, turns, axes=(1, 2))

    rotations = [turned(predicted(turned(data, k)), -k) for k in range(4)]
    rotated = predicted(data, rotate=True)
    np.testing.assert_allclose(rotated, np.mean(rotations, axis=0), atol=1e-5)
    assert np.abs(rotated - rotations[0]).max() > 1e-3  # a random network is not rotation-symmetric
    mirrored = data[:, :, ::-1]
    square = rotations + [turned(predicted(turned(mirrored, k)), -k)[:, :, ::-1] for k in range(4)]
    np.testing.assert_allclose(predicted(data, mirror=True, rotate=True), np.mean(square, axis=0), atol=1e-5)


def test_an_ensemble_with_views_predicts_its_members_mean_and_reports_each_pass():
    """An ensemble with test-time rotations runs members × views passes per box: its map is the members' mean
    (as the ensemble's own forward gives), and progress advances after each pass, not only after each batch,
    so that slow boxes still report every few seconds."""
    data = np.random.default_rng(7).normal(size=(16, 16, 40)).astype(np.float32)
    ensemble = MeanProbabilityEnsemble([tiny_unet(seed=8), tiny_unet(seed=9)]).eval()
    recorder, advances = Recorder(data.shape, 1), []
    progress = Progress("predicting", window_count(data.shape, 16, 2), "windows", lambda line: None)
    progress.advance = advances.append
    predict_tomogram(ensemble, data, recorder, channels=[0], window=16, margin=2, batch_size=4, rotate=True,
                     progress=progress)
    boxes = window_count(data.shape, 16, 2)
    assert len(advances) == 2 * 4 and sum(advances) == pytest.approx(boxes)  # one batch: 2 members × 4 views
    per_member = [one_box_prediction_blended(member, data) for member in ensemble.members]
    np.testing.assert_allclose(recorder.result[0], np.mean(per_member, axis=0), atol=1e-5)


def one_box_prediction_blended(network, data) -> np.ndarray:
    recorder = Recorder(data.shape, 1)
    predict_tomogram(network, data, recorder, window=16, margin=2, batch_size=4, rotate=True)
    return recorder.result[0]
