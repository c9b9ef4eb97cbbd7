"""Tests of the minimum-cluster-size calibration on validation slabs (deepict.train.calibrate)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepict.train.calibrate import SPHERE_FRACTIONS, calibrate_min_size, sphere_volume
from deepict.train.labels import paint_spheres

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class VoxelOracle(torch.nn.Module):
    """A 'network' whose logit is the voxel value itself: probability ~1 where the input is 1."""

    depth = 0

    def __init__(self):
        super().__init__()
        self.out_conv = torch.nn.Conv3d(1, 1, 1)

    def forward(self, x):
        return 20 * (x - 0.5)


def blob_volume(shape, centres_zyx, radius):
    volume = np.zeros(shape, np.float32)
    paint = np.zeros(shape, np.uint8)
    paint_spheres(paint, np.asarray(centres_zyx, float)[:, ::-1], radius)
    volume[paint > 0] = 1
    return volume


def test_the_size_that_drops_small_false_clusters_and_keeps_particles_is_chosen():
    shape = (40, 64, 64)
    grid = [(z, y, x) for z in (10, 28) for y in (10, 30, 50) for x in (10, 30, 50)]
    particles = np.array(grid[:10], float)  # z, y, x, 18+ voxels apart
    noise = np.array([[20, 20, 20], [20, 40, 40], [20, 20, 40], [20, 40, 20]], float)
    data = blob_volume(shape, particles, 4) + blob_volume(shape, noise, 1.2)
    slabs = [(data, (0.0, 1.0), 0, particles)]
    result = calibrate_min_size(VoxelOracle(), slabs, radius=4, threshold=0.5, device=torch.device("cpu"))
    sizes = [c["min_size"] for c in result["candidates"]]
    assert sizes == [max(1, int(f * sphere_volume(4))) for f in SPHERE_FRACTIONS]
    noise_size = int((blob_volume(shape, noise[:1], 1.2) > 0).sum())
    particle_size = int((blob_volume(shape, particles[:1], 4) > 0).sum())
    assert noise_size < result["min_size"] <= particle_size
    assert result["f1"] == pytest.approx(1.0)
    smallest = result["candidates"][0]
    assert smallest["min_size"] <= noise_size and smallest["precision"] < 1  # noise picked at the smallest size


def test_particles_before_the_scored_x_are_ignored_and_too_few_particles_give_no_answer():
    shape = (24, 32, 48)
    particles = np.array([[8, 8, 8], [16, 20, 10], [12, 12, 36]], float)
    data = blob_volume(shape, particles, 3)
    messages = []
    result = calibrate_min_size(VoxelOracle(), [(data, (0.0, 1.0), 24, particles)], radius=3, threshold=0.5,
                                device=torch.device("cpu"), log=messages.append)
    assert result is None and "not calibrated" in messages[-1]
    # The predictions over the slabs report their progress (windows of the default inference box).
    assert messages[0].startswith("calibrating the minimum cluster size on the validation slabs: 1/1 windows")
