"""pick warns when one cluster fills the probability map: a network that does not separate particles at the
threshold gives one meaningless pick, which must not pass silently (deepict.infer.picking)."""

from __future__ import annotations

import numpy as np

from deepict.infer.clusters import ClusterParameters, find_clusters
from deepict.infer.picking import warn_if_one_cluster_fills_the_map


def _spheres(shape, centres, radius):
    z, y, x = np.indices(shape)
    volume = np.zeros(shape, np.float32)
    for cz, cy, cx in centres:
        volume[(z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2 <= radius ** 2] = 0.9
    return volume


def test_separate_particles_give_no_warning():
    probability = _spheres((32, 64, 64), [(16, 16, 16), (16, 40, 40), (16, 16, 48)], 5)
    clusters = find_clusters(probability, ClusterParameters(threshold=0.5, min_size=10))
    lines = []
    assert len(clusters) == 3 and not warn_if_one_cluster_fills_the_map(clusters, probability.size, 0.5, lines.append)
    assert lines == []


def test_a_map_above_the_threshold_nearly_everywhere_is_reported_with_the_fix():
    # a weak network's background just above a lowered threshold, the particles on top of it
    probability = np.full((32, 64, 64), 0.45, np.float32) + _spheres((32, 64, 64), [(16, 16, 16)], 5) * 0.5
    lines = []
    for threshold, warned in ((0.4, True), (0.5, False)):
        clusters = find_clusters(probability, ClusterParameters(threshold=threshold, min_size=10))
        assert warn_if_one_cluster_fills_the_map(clusters, probability.size, threshold, lines.append) == warned
    assert len(lines) == 1 and "one cluster covers 100 % of the tomogram" in lines[0]
    assert "higher --threshold" in lines[0] and "threshold 0.4" in lines[0]


def test_no_cluster_is_no_warning():
    probability = np.zeros((16, 16, 16), np.float32)
    clusters = find_clusters(probability, ClusterParameters(threshold=0.5, min_size=1))
    assert not warn_if_one_cluster_fills_the_map(clusters, probability.size, 0.5, print)
