"""Hard negatives (deepict.train.hard_negatives): where the network sees the class without a label, and the
training boxes centred there."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepict.train.config import TrainConfig
from deepict.train.hard_negatives import find_hard_negatives, mining_epochs
from deepict.train.train3d import PatchSampler, TrainingTomogram

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class SeesBrightness(torch.nn.Module):
    """Predicts the class wherever the tomogram is bright (logit > 0 above 2)."""

    def __init__(self):
        super().__init__()
        self.out_conv = torch.nn.Conv3d(1, 1, kernel_size=1)
        torch.nn.init.constant_(self.out_conv.weight, 10.0)
        torch.nn.init.constant_(self.out_conv.bias, -20.0)

    def forward(self, inputs):
        return self.out_conv(inputs)


def _cube(volume, centre_zyx, half):
    z, y, x = centre_zyx
    volume[..., z - half:z + half, y - half:y + half, x - half:x + half] = 1


def test_the_centres_of_unlabelled_clusters_big_enough_inside_the_training_part_are_hard_negatives():
    data, targets = np.zeros((32, 64, 96), np.float32), np.zeros((1, 32, 64, 96), np.int8)
    _cube(data, (16, 16, 16), 4)        # a particle, labelled by a sphere a little smaller than it
    _cube(targets, (16, 16, 16), 3)
    _cube(data, (16, 40, 40), 4)        # a confusion: 512 voxels without a label
    _cube(data, (8, 50, 20), 1)         # 8 voxels: noise, not a confusion
    _cube(data, (16, 32, 84), 4)        # beyond the training part (the validation slab)
    tomogram = TrainingTomogram("t", data * 10, targets, np.array([[16, 16, 16]]), 13.48)
    found = find_hard_negatives(SeesBrightness(), [tomogram], [(0.0, 1.0)], [72], min_voxels=100,
                                device=torch.device("cpu"), log=lambda line: None)
    assert len(found) == 1 and found[0].tolist() == [[16, 40, 40]]


def test_the_network_predicts_its_training_tomograms_at_a_quarter_half_and_three_quarters_of_the_epochs():
    assert mining_epochs(40) == {10, 20, 30}
    assert mining_epochs(4) == {1, 2, 3}
    assert mining_epochs(3) == set()  # too short a training to have learnt anything worth mining


def test_half_of_the_background_boxes_centre_on_a_hard_negative():
    data = np.zeros((64, 64, 128), np.float32)
    tomogram = TrainingTomogram("t", data, np.zeros((1,) + data.shape, np.int8), np.zeros((0, 3), int), None)
    config = TrainConfig(classes=["x"], patch_size=16, batch_size=1, positive_fraction=0.0, val_fraction=0.0,
                         augment=False)
    sampler = PatchSampler([tomogram], config, np.random.default_rng(0), [(0.0, 1.0)])
    hard = np.array([40, 30, 100])
    sampler.hard_negatives = [hard[None]]
    origins = np.array([sampler._origin(tomogram, np.array(data.shape), sampler.hard_negatives[0])
                        for _ in range(2000)])
    centred = np.all((origins + 4 <= hard) & (hard < origins + 12), axis=1)  # in the box's central half
    assert 0.45 < centred.mean() < 0.55
