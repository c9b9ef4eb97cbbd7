"""The published DeePiCt membrane and microtubule networks on synthetic structures at their voxel size (13.48 Å).

A 64-voxel box holding one structure drawn as the networks saw them (dark protein/lipid on a lighter
background, normalised) with a little smooth noise (its standard deviation a fraction of the structure's contrast): a membrane (two leaflets 3 voxels = 4 nm apart)
tilted out of the missing wedge's plane, or a microtubule (a tube 25 nm across, 5 nm wall). Each
network must give a non-empty segmentation that lies mostly on its structure, with far more
probability on it than off it. Skips when ../shared/models/published is absent.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from deepict.nn.model_files import import_published_checkpoint
from tiny_world import PUBLISHED, VOXEL

BOX = 64


def _grid():
    z, y, x = np.mgrid[:BOX, :BOX, :BOX].astype(np.float32)
    centre = (BOX - 1) / 2
    return z - centre, y - centre, x - centre


def membrane():
    """A bilayer through the centre (normal mostly along x) and its 3-voxel half-width band."""
    z, y, x = _grid()
    normal = np.array([0.9, 0.3, 0.3]) / np.linalg.norm([0.9, 0.3, 0.3])  # x, y, z
    distance = x * normal[0] + y * normal[1] + z * normal[2]
    density = sum(np.exp(-(distance - side * 1.5) ** 2 / (2 * 0.8 ** 2)) for side in (-1, 1))
    return -density, np.abs(distance) <= 3


def microtubule():
    """A tube along y (outer radius ~ 12.5 nm) and the band of its wall."""
    z, _, x = _grid()
    radius = np.sqrt(x ** 2 + z ** 2)
    return -np.exp(-(radius - 9) ** 2 / (2 * 1.5 ** 2)), np.abs(radius - 9) <= 2.5


def probability(checkpoint, density, noise_level):
    network, info = import_published_checkpoint(checkpoint, VOXEL)
    noise = ndimage.gaussian_filter(np.random.default_rng(0).standard_normal(density.shape).astype(np.float32), 0.7)
    volume = density + noise_level * noise / noise.std()
    volume = (volume - volume.mean()) / volume.std()
    with torch.no_grad():
        logits = network(torch.from_numpy(volume[None, None].astype(np.float32)))
    return info, torch.sigmoid(logits)[0, 0].numpy()


#: How many of the most probable voxels are checked to lie on the structure.
TOP = 500


@pytest.mark.parametrize("name, structure, noise_level, threshold", [
    ("membraneModel.pth", membrane, 0.4, 0.5),
    # the microtubule network is more sensitive to noise on this drawing, and less confident: its
    # probabilities peak on the tube wall but mostly stay below 0.5 (its segmentation needs a lower threshold)
    ("microtubuleModel.pth", microtubule, 0.1, 0.05),
])
def test_published_network_segments_its_structure(name, structure, noise_level, threshold, one_torch_thread):
    checkpoint = PUBLISHED / name
    if not checkpoint.is_file():
        pytest.skip(f"{checkpoint} is not available")
    density, truth = structure()
    info, p = probability(checkpoint, density, noise_level)
    assert info.voxel_size == pytest.approx(VOXEL) and p.shape == density.shape
    segmented = p > threshold
    assert segmented.sum() >= 100, f"{name}: (nearly) empty segmentation at {threshold}"
    assert (segmented & truth).sum() / segmented.sum() >= 0.5, "the segmentation lies mostly on the structure"
    most_probable = np.argsort(p.ravel())[-TOP:]
    assert truth.ravel()[most_probable].mean() >= 0.8  # the structure fills < 11 % of the box
    assert p[truth].mean() > 3 * p[~truth].mean()
