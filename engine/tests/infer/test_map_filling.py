"""pick warns when one cluster fills the probability map: a network that does not separate particles at the
threshold gives one meaningless pick, which must not pass silently; where test-time rotations' lowered threshold
causes it, pick falls back to the model's calibrated threshold (deepict.infer.picking). segment3d warns when its
segmentation covers far more of the tomogram than the class's labels covered of the training tomograms, and
segment2d when its mask covers nearly all of it."""

from __future__ import annotations

import numpy as np
import pytest

from deepict.infer.clusters import ClusterParameters, find_clusters, segmentation_fills_the_map
from deepict.infer.options import InferenceOptions
from deepict.infer.picking import pick_particles, warn_if_one_cluster_fills_the_map
from deepict.io import read_coordinates
from tiny_world import constant_model, noise_tomogram, run


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
    assert "higher threshold (--threshold" in lines[0] and "threshold 0.4" in lines[0]


def test_no_cluster_is_no_warning():
    probability = np.zeros((16, 16, 16), np.float32)
    clusters = find_clusters(probability, ClusterParameters(threshold=0.5, min_size=1))
    assert not warn_if_one_cluster_fills_the_map(clusters, probability.size, 0.5, print)


def _pick(capsys, model, tomogram, *options):
    """``deepict pick`` with 16-voxel boxes: (what it printed, the number of picks)."""
    picks = tomogram.with_suffix(".csv")
    code, out, _ = run(capsys, "pick", "--model", model, "--tomogram", tomogram, "--out", picks, "--window", "16",
                       "--margin", "4", "--device", "cpu", *options)
    assert code == 0
    return out, len(read_coordinates(picks))


def test_deepict_pick_prints_the_warning(tmp_path, capsys, one_torch_thread):
    """The warning reaches the user of ``deepict pick`` (and so the pick protocol's log)."""
    model, tomogram = constant_model(tmp_path / "m.pt", 0.45), noise_tomogram(tmp_path / "t.mrc")
    out, count = _pick(capsys, model, tomogram, "--threshold", "0.4")
    assert "warning: at threshold 0.4 one cluster covers 100 % of the tomogram" in out and count == 1
    out, count = _pick(capsys, model, tomogram, "--threshold", "0.5")
    assert "warning" not in out and count == 0


def test_rotations_fall_back_to_the_calibrated_threshold_where_the_lowered_one_fills_the_map(
        tmp_path, capsys, one_torch_thread):
    """Test-time rotations lower the calibrated threshold (0.5 -> 0.4); where that joins a weak network's map
    into one cluster, pick clusters at the calibrated threshold instead of returning one meaningless pick."""
    model, tomogram = constant_model(tmp_path / "m.pt", 0.45), noise_tomogram(tmp_path / "t.mrc")
    out, count = _pick(capsys, model, tomogram, "--test-time-rotations")
    assert "threshold 0.4, the model's calibrated 0.5 lowered" in out
    assert "at threshold 0.4 one cluster covers 100 % of the tomogram: clustering at the model's calibrated " \
           "threshold 0.5 instead" in out
    assert "warning" not in out and count == 0
    # a threshold the user gives is kept, with the warning
    out, count = _pick(capsys, model, tomogram, "--test-time-rotations", "--threshold", "0.4")
    assert "instead" not in out and "warning: at threshold 0.4" in out and count == 1


def test_the_fallback_still_warns_when_the_calibrated_threshold_fills_the_map_too(tmp_path, capsys,
                                                                                   one_torch_thread):
    model, tomogram = constant_model(tmp_path / "m.pt", 0.55), noise_tomogram(tmp_path / "t.mrc")
    out, count = _pick(capsys, model, tomogram, "--test-time-rotations")
    assert "clustering at the model's calibrated threshold 0.5 instead" in out
    assert "warning: at threshold 0.5 one cluster covers 100 % of the tomogram" in out and count == 1


def test_the_engine_falls_back_too_without_cluster_parameters(tmp_path, one_torch_thread):
    """``pick_particles`` called as a library with the model's defaults behaves as ``deepict pick``."""
    model, tomogram = constant_model(tmp_path / "m.pt", 0.45), noise_tomogram(tmp_path / "t.mrc")
    lines = []
    table = pick_particles(model, tomogram, tmp_path / "p.csv", log=lines.append,
                           options=InferenceOptions(window=16, margin=4, device="cpu", test_time_rotations=True))
    assert len(table) == 0 and any("clustering at the model's calibrated threshold 0.5 instead" in l for l in lines)


def test_with_an_intersected_context_the_share_is_of_the_context(tmp_path, capsys, one_torch_thread):
    """A context mask cuts the clusters to itself: a cluster filling a context of 3 % of the tomogram fills all
    that can be picked (contact mode does not cut them, so there the tomogram counts)."""
    from deepict.io import write_volume
    model, tomogram = constant_model(tmp_path / "m.pt", 0.45), noise_tomogram(tmp_path / "t.mrc")
    context = np.zeros((24, 40, 40), np.int8)
    context[8:16, 10:22, 10:22] = 1  # 1152 voxels, 3 % of the tomogram
    write_volume(tmp_path / "context.mrc", context, 13.48)
    out, count = _pick(capsys, model, tomogram, "--threshold", "0.4", "--context", tmp_path / "context.mrc")
    assert "warning: at threshold 0.4 one cluster covers 100 % of the context mask" in out and count == 1
    out, count = _pick(capsys, model, tomogram, "--threshold", "0.4", "--context", tmp_path / "context.mrc",
                       "--context-mode", "contact")
    assert "warning: at threshold 0.4 one cluster covers 100 % of the tomogram" in out and count == 1


def _segment(capsys, model, tomogram, *options):
    """``deepict segment3d`` with 16-voxel boxes: what it printed."""
    code, out, _ = run(capsys, "segment3d", "--model", model, "--tomogram", tomogram, "--out",
                       tomogram.with_name("mask.mrc"), "--window", "16", "--margin", "4", "--device", "cpu", *options)
    assert code == 0
    return out


def _with_label_share(model, share):
    from deepict.nn.model_files import LABEL_SHARE, load_model, save_model
    network, info = load_model(model)
    info.training[LABEL_SHARE] = {info.classes[0]: share}
    save_model(model, network, info)
    return model


@pytest.mark.parametrize("share, threshold, warned", [
    (0.04, 0.4, True),    # a membrane model (4 % of its training tomograms) segmenting all of the tomogram
    (0.04, 0.5, False),   # nothing above the threshold
    (0.25, 0.4, True),    # a class whose labels covered a quarter, segmented everywhere: nearly all is suspect
    (None, 0.4, True),    # no recorded share (older or imported models): more than half is suspect
])
def test_segment3d_warns_when_the_segmentation_fills_far_more_than_its_training_labels(
        tmp_path, capsys, one_torch_thread, share, threshold, warned):
    model, tomogram = constant_model(tmp_path / "m.pt", 0.45), noise_tomogram(tmp_path / "t.mrc")
    if share is not None:
        _with_label_share(model, share)
    out = _segment(capsys, model, tomogram, "--threshold", str(threshold))
    assert ("warning: at threshold 0.4 the segmentation covers 100 % of the tomogram" in out) == warned
    if warned and share is not None:
        assert f"where its labels covered {100 * share:.1f} % of the training tomograms" in out
    if warned:
        assert "Give a higher threshold (--threshold; Scipion: 'Probability threshold')" in out


def test_segmentation_limits():
    # five times the training share, never below the limit of one cluster in picking (10 %)
    assert not segmentation_fills_the_map(9, 100, 0.01) and segmentation_fills_the_map(11, 100, 0.01)
    assert not segmentation_fills_the_map(20, 100, 0.04) and segmentation_fills_the_map(21, 100, 0.04)
    # nearly all of what could be segmented, whatever the class's share: it separates nothing
    assert not segmentation_fills_the_map(98, 100, 0.2) and segmentation_fills_the_map(99, 100, 0.2)
    assert not segmentation_fills_the_map(98, 100, None, 1.0) and segmentation_fills_the_map(99, 100, None, 1.0)
    assert not segmentation_fills_the_map(50, 100) and segmentation_fills_the_map(51, 100)
    assert not segmentation_fills_the_map(0, 0)


def _constant_model_2d(path, probability: float, share: float | None):
    """A compartment (2D) model whose map is ``probability`` everywhere, recording its labels' ``share``."""
    from deepict.nn.model_files import KIND_2D, LABEL_SHARE, ModelInfo, build_network, save_model
    info = ModelInfo(kind=KIND_2D, classes=["cytosol"], voxel_size=13.48, patch_size=32, overlap=8,
                     architecture={"depth": 2, "initial_features": 2, "out_channels": 1}, label_kind="masks",
                     normalization="tomogram_zscore", postprocess={"threshold": 0.5, "sigma": 1.0},
                     training={} if share is None else {LABEL_SHARE: {"cytosol": share}})
    network = build_network(info)
    network.out_conv.weight.data.zero_()
    network.out_conv.bias.data.fill_(float(np.log(probability / (1 - probability))))
    save_model(path, network, info)
    return path


@pytest.mark.parametrize("share, threshold, warned", [
    (0.7, 0.5, True),     # cytosol (70 % of its training slices) marked in every voxel: separates nothing
    (None, 0.5, True),    # no recorded share (older models): all of the tomogram is suspect all the same
    (0.7, 0.9, False),    # nothing above the threshold
])
def test_segment2d_warns_when_the_mask_covers_nearly_all_of_the_tomogram(tmp_path, capsys, one_torch_thread, share,
                                                                         threshold, warned):
    model, tomogram = _constant_model_2d(tmp_path / "m.pt", 0.8, share), noise_tomogram(tmp_path / "t.mrc")
    code, out, _ = run(capsys, "segment2d", "--model", model, "--tomogram", tomogram, "--out", tmp_path / "mask.mrc",
                       "--threshold", threshold, "--device", "cpu")
    assert code == 0
    assert ("warning: at threshold 0.5 the segmentation covers 100 % of the tomogram" in out) == warned
    assert ("where its labels covered 70.0 % of the training tomograms" in out) == (warned and share is not None)
    if warned:
        assert "Give a higher threshold (--threshold; Scipion: 'Threshold')" in out
