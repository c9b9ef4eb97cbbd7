"""Tests of the post-processing calibration on validation slabs (deepict.train.calibrate)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepict.train.calibrate import (DUPLICATE_RADII, SPHERE_FRACTIONS, THRESHOLDS,
                                     calibrate_postprocess, choose_postprocess, sphere_volume, standard_error)
from deepict.train.labels import paint_spheres

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SHAPE = (40, 64, 64)
PARTICLES = np.array([(z, y, x) for z in (10, 28) for y in (10, 30, 50) for x in (10, 30, 50)][:10], float)
NOISE = np.array([[20, 20, 20], [20, 40, 40], [20, 20, 40], [20, 40, 20]], float)


class VoxelOracle(torch.nn.Module):
    """A 'network' whose logit is the voxel value itself: probability ~1 where the input is 1."""

    depth = 0

    def __init__(self):
        super().__init__()
        self.out_conv = torch.nn.Conv3d(1, 1, 1)

    def forward(self, x):
        return 20 * (x - 0.5)


def blob_volume(centres_zyx, radius, value=1.0, shape=SHAPE):
    paint = np.zeros(shape, np.uint8)
    paint_spheres(paint, np.asarray(centres_zyx, float)[:, ::-1], radius)
    return np.where(paint > 0, value, 0).astype(np.float32)


def size_of(radius):
    return int((blob_volume(PARTICLES[:1], radius) > 0).sum())


def plain_types(value) -> bool:
    if isinstance(value, dict):
        return all(plain_types(v) for v in value.values())
    if isinstance(value, list):
        return all(plain_types(v) for v in value)
    return type(value) in (int, float, str, bool, type(None))


def test_threshold_and_size_are_chosen_together_inside_their_ranges():
    # Particles at p = 0.65 (lost above 0.6), small confident noise blobs, and a haze at p = 0.25 that joins
    # everything into one cluster at thresholds of 0.2 and below: the best threshold lies inside the range,
    # and so does the best size (above the noise blobs, not above the particles).
    probability = np.maximum(blob_volume(PARTICLES, 4, 0.65), blob_volume(NOISE, 1.2, 0.95))
    probability = np.maximum(probability, 0.25)
    truth_xyz = PARTICLES[:, ::-1]
    result = choose_postprocess([(probability, 0, truth_xyz)], radius=4, split=True)
    assert result["threshold"] in (0.3, 0.4, 0.5) and result["at_edge"] == []
    assert size_of(1.2) < result["min_size"] <= size_of(4)
    assert result["f1"] == pytest.approx(1.0) and result["particles"] == len(PARTICLES)
    by_threshold = {c["value"]: c["f1"] for c in result["candidates"]["threshold"]}
    assert by_threshold[0.2] < 0.2 and by_threshold[0.7] == 0  # the haze, then the particles' own probability
    assert [c["value"] for c in result["candidates"]["min_size"]] == \
        [max(1, int(f * sphere_volume(4))) for f in SPHERE_FRACTIONS]
    assert len(result["candidates"]["min_distance"]) == len(DUPLICATE_RADII)
    # Stored in model files, which refuse numpy scalars (np.float64 passes json.dumps): Python types only.
    assert plain_types(result)
    # At the threshold alone (the former calibration) the same size range is found.
    alone = choose_postprocess([(probability, 0, truth_xyz)], radius=4, thresholds=(0.5,), duplicate_radii=(1.0,))
    assert alone["threshold"] == 0.5 and size_of(1.2) < alone["min_size"] <= size_of(4)


def test_a_choice_at_the_edge_of_a_range_is_reported():
    # Noise blobs as large as the particles, at p = 0.85: only the highest threshold (0.9) drops them.
    probability = np.maximum(blob_volume(PARTICLES, 4, 0.95), blob_volume(NOISE, 4, 0.85))
    messages = []
    result = choose_postprocess([(probability, 0, PARTICLES[:, ::-1])], radius=4, log=messages.append)
    assert result["threshold"] == THRESHOLDS[-1] and result["at_edge"] == ["threshold"]
    assert "edge of the searched range" in messages[-1]


def test_the_network_predicts_the_slabs_particles_before_the_scored_x_are_ignored_and_too_few_give_no_answer():
    data = blob_volume(PARTICLES, 4) + blob_volume(NOISE, 1.2)
    messages = []
    result = calibrate_postprocess(VoxelOracle(), [(data, (0.0, 1.0), 0, PARTICLES)], radius=4,
                                   device=torch.device("cpu"), log=messages.append)
    assert size_of(1.2) < result["min_size"] <= size_of(4) and result["f1"] == pytest.approx(1.0)
    # The predictions over the slabs report their progress (windows of the default inference box).
    assert messages[0].startswith("calibrating the post-processing on the validation slabs: 1/1 windows")
    few = np.array([[8, 8, 8], [16, 20, 10], [12, 12, 36]], float)
    messages = []
    result = calibrate_postprocess(VoxelOracle(), [(blob_volume(few, 3, shape=(24, 32, 48)), (0.0, 1.0), 24, few)],
                                   radius=3, device=torch.device("cpu"), log=messages.append)
    assert result is None and "not calibrated" in messages[-1]


def test_too_few_validation_particles_fall_back_to_the_minimum_size_on_whole_tomograms():
    few = PARTICLES[:3]
    slab = (blob_volume(few, 4), (0.0, 1.0), 0, few)
    whole = (blob_volume(PARTICLES, 4, 0.95) + blob_volume(NOISE, 1.2, 0.95), (0.0, 1.0), 0, PARTICLES)
    messages = []
    result = calibrate_postprocess(VoxelOracle(), [slab], radius=4, device=torch.device("cpu"), log=messages.append,
                                   whole_tomograms=[whole])
    assert result["source"] == "whole training tomograms" and result["particles"] == len(PARTICLES)
    assert result["threshold"] == 0.5 and result["min_distance"] == 4.0  # only the size is chosen there
    assert size_of(1.2) < result["min_size"] <= size_of(4)
    assert any("not calibrated" in m for m in messages) and any("whole training tomograms" in m for m in messages)
    calibrated = [m for m in messages if m.startswith("post-processing calibrated")]  # says where it was measured
    assert len(calibrated) == 1, messages
    assert "on the whole training tomograms (10 annotated particles)" in calibrated[0]
    assert calibrate_postprocess(VoxelOracle(), [slab], radius=4, device=torch.device("cpu")) is None


def test_a_threshold_away_from_the_usual_one_is_chosen_only_for_a_gain_beyond_one_standard_error():
    # Ten particles and one confident noise blob. Particles seen only below 0.4 are lost at the usual 0.5.
    def choice(faint: int, copies: int = 1):
        probability = np.maximum(blob_volume(PARTICLES[faint:], 4, 0.95), blob_volume(PARTICLES[:faint], 4, 0.35))
        probability = np.maximum(probability, blob_volume(NOISE[:1], 4, 0.95))
        messages = []
        result = choose_postprocess([(probability, 0, PARTICLES[:, ::-1])] * copies, radius=4, log=messages.append)
        return result, messages

    # One faint particle: F1 0.952 at 0.3 against 0.900 at 0.5, within one standard error on ten particles.
    one_faint, messages = choice(1)
    assert one_faint["threshold"] == 0.5 and one_faint["f1"] == pytest.approx(0.9)
    assert one_faint["best_f1"] == pytest.approx(0.952, abs=1e-3)
    assert one_faint["tolerance"] == pytest.approx(standard_error(0.9524, 10), abs=1e-3)
    assert "within one standard error" in messages[-1]
    # The same gain measured on five times as many particles is clear enough to move the threshold.
    assert choice(1, copies=5)[0]["threshold"] in (0.2, 0.3)
    # Five faint particles: F1 0.952 against 0.625 is a gain on ten particles too.
    assert choice(5)[0]["threshold"] in (0.2, 0.3)
