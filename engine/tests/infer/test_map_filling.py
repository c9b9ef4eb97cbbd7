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


def test_deepict_pick_prints_the_warning(tmp_path, capsys, one_torch_thread):
    """The warning reaches the user of ``deepict pick`` (and so the pick protocol's log): at threshold 0 every
    voxel of any network's map lies in one cluster."""
    from deepict.cli.main import main
    from deepict.io import write_volume
    from deepict.nn.model_files import build_network, save_model
    from test_postprocess_defaults import particle_model
    info = particle_model(0.5)
    info.architecture = {"depth": 1, "initial_features": 2, "out_channels": 1, "batch_norm": False}
    model, tomogram = tmp_path / "model.pt", tmp_path / "tomo.mrc"
    save_model(model, build_network(info), info)
    write_volume(tomogram, np.random.default_rng(0).normal(size=(16, 32, 32)).astype(np.float32), 13.48)
    picks = tmp_path / "picks.csv"
    for threshold, warned in (("0", True), ("0.99", False)):
        assert main(["pick", "--model", str(model), "--tomogram", str(tomogram), "--out", str(picks), "--threshold",
                     threshold, "--min-size", "1", "--window", "16", "--margin", "4", "--device", "cpu"]) == 0
        assert ("one cluster covers 100 % of the tomogram" in capsys.readouterr().out) == warned
