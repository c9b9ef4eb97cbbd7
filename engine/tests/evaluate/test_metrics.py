"""Tests of deepict.evaluate.metrics and the ``deepict evaluate`` command."""

import json

import numpy as np
import pytest

from deepict.evaluate import metrics
from deepict.cli.main import main
from deepict.errors import ParameterError
from deepict.io import CoordinateTable, write_coordinates, write_volume


# ------------------------------------------------------------------------------------------------
# particle matching
# ------------------------------------------------------------------------------------------------

def test_two_predictions_near_one_truth_give_one_tp_one_fp():
    result = metrics.match_particles([[10, 10, 10], [12, 10, 10]], [[11, 10, 10]], radius=5)
    assert (result.tp, result.fp, result.fn) == (1, 1, 0)
    assert result.precision == pytest.approx(0.5)
    assert result.recall == pytest.approx(1.0)
    assert result.f1 == pytest.approx(2 / 3)
    assert result.pairs.shape == (1, 2)


def test_fbeta_is_the_czii_recall_weighted_score():
    # 1 TP, 1 FP, 0 FN: P = 1/2, R = 1 -> F4 = 17 * 0.5 / (16 * 0.5 + 1) = 8.5 / 9
    result = metrics.match_particles([[10, 10, 10], [12, 10, 10]], [[11, 10, 10]], radius=5)
    assert metrics.FBETA_BETA == 4
    assert result.fbeta == pytest.approx(8.5 / 9)
    assert result.summary()["fbeta"] == pytest.approx(8.5 / 9) and result.summary()["beta"] == 4
    # missing a particle costs more than a false pick: P = 1, R = 1/2 -> F4 = 8.5 / 16.5
    missed = metrics.match_particles([[10, 10, 10]], [[10, 10, 10], [40, 40, 40]], radius=5)
    assert missed.fbeta == pytest.approx(8.5 / 16.5)
    assert missed.fbeta < result.fbeta
    assert metrics.fbeta(0.3, 0.7, beta=1) == pytest.approx(2 * 0.3 * 0.7 / 1.0)
    assert metrics.fbeta(0.0, 0.0) == 0.0


def test_nearest_unmatched_truth_is_taken():
    result = metrics.match_particles([[0, 0, 0]], [[3, 0, 0], [1, 0, 0]], radius=5)
    assert result.pairs.tolist() == [[0, 1]]
    assert result.distances.tolist() == [pytest.approx(1.0)]


def test_radius_is_inclusive_and_exclusive_beyond():
    assert metrics.match_particles([[0, 0, 0]], [[10, 0, 0]], radius=10).tp == 1
    assert metrics.match_particles([[0, 0, 0]], [[10.01, 0, 0]], radius=10).tp == 0


def test_score_order_decides_the_matching():
    truth = [[0, 0, 0], [8, 0, 0]]
    # A at x=3 reaches both truths (nearest: x=0); B at x=-1 reaches only x=0.
    preds = [[3, 0, 0], [-1, 0, 0]]
    a_first = metrics.match_particles(preds, truth, radius=5, scores=[0.9, 0.1])
    b_first = metrics.match_particles(preds, truth, radius=5, scores=[0.1, 0.9])
    assert (a_first.tp, a_first.fp) == (1, 1)
    assert (b_first.tp, b_first.fp) == (2, 0)
    # processing order and flags are reported in score order
    assert a_first.order.tolist() == [0, 1] and a_first.is_tp.tolist() == [True, False]
    assert b_first.order.tolist() == [1, 0] and b_first.is_tp.tolist() == [True, True]
    assert a_first.scores.tolist() == [0.9, 0.1]
    assert a_first.tp_flags.tolist() == [True, False]


def test_list_order_does_not_matter_when_scores_are_given():
    rng = np.random.default_rng(0)
    truth = rng.uniform(0, 60, (30, 3))
    preds = np.concatenate([truth + rng.normal(0, 2, truth.shape), rng.uniform(0, 60, (20, 3))])
    scores = rng.uniform(0, 1, len(preds))
    permutation = rng.permutation(len(preds))
    a = metrics.match_particles(preds, truth, 6, scores)
    b = metrics.match_particles(preds[permutation], truth, 6, scores[permutation])
    assert (a.tp, a.fp, a.fn) == (b.tp, b.fp, b.fn)
    assert a.is_tp.tolist() == b.is_tp.tolist()
    assert metrics.precision_recall_curve(preds, scores, truth, 6).auprc == pytest.approx(
        metrics.precision_recall_curve(preds[permutation], scores[permutation], truth, 6).auprc)


def test_matching_is_one_to_one():
    rng = np.random.default_rng(1)
    truth = rng.uniform(0, 30, (40, 3))
    preds = rng.uniform(0, 30, (80, 3))
    result = metrics.match_particles(preds, truth, 5, rng.uniform(size=80))
    assert len(set(result.pairs[:, 0])) == result.tp == len(set(result.pairs[:, 1]))
    assert result.tp + result.fp == 80 and result.tp + result.fn == 40
    assert np.all(result.distances <= 5)
    assert result.matched_truth.sum() == result.tp


@pytest.mark.parametrize("pred, truth, expected", [
    (np.zeros((0, 3)), np.zeros((0, 3)), (1.0, 1.0, 1.0)),
    (np.zeros((0, 3)), [[1, 2, 3]], (0.0, 0.0, 0.0)),
    ([[1, 2, 3]], np.zeros((0, 3)), (0.0, 0.0, 0.0)),
    ([], [], (1.0, 1.0, 1.0)),
])
def test_empty_inputs_are_well_defined(pred, truth, expected):
    result = metrics.match_particles(pred, truth, 10)
    assert (result.precision, result.recall, result.f1) == expected
    curve = metrics.precision_recall_curve(pred, None if not len(pred) else [1.0], truth, 10)
    assert curve.auprc == expected[2] and curve.max_f1 == expected[2]


def test_bad_inputs_raise_parameter_errors():
    with pytest.raises(ParameterError):
        metrics.match_particles([[1, 2]], [[1, 2, 3]])
    with pytest.raises(ParameterError):
        metrics.match_particles([[1, 2, 3]], [[1, 2, 3]], radius=-1)
    with pytest.raises(ParameterError):
        metrics.match_particles([[1, 2, 3]], [[1, 2, 3]], scores=[1, 2])
    with pytest.raises(ParameterError):
        metrics.match_particles([[1, 2, 3]], [[1, 2, 3]], scores=[np.nan])


# ------------------------------------------------------------------------------------------------
# PR curves
# ------------------------------------------------------------------------------------------------

def test_perfect_ranking_has_auprc_one():
    truth = np.array([[i * 20.0, 0, 0] for i in range(5)])
    false = np.array([[i * 20.0, 50, 50] for i in range(3)])
    preds = np.concatenate([truth + 0.5, false])
    scores = np.concatenate([np.linspace(1, 0.6, 5), [0.3, 0.2, 0.1]])
    curve = metrics.precision_recall_curve(preds, scores, truth, 3)
    assert curve.auprc == pytest.approx(1.0)
    assert curve.max_f1 == pytest.approx(1.0)
    assert curve.max_f1_threshold == pytest.approx(0.6)
    assert curve.max_f1_n_kept == 5


def test_auprc_matches_hand_computation():
    truth = [[0, 0, 0], [20, 0, 0]]
    preds = [[50, 50, 50], [0, 0, 1], [20, 0, 1]]  # FP first, then two TPs
    curve = metrics.precision_recall_curve(preds, [3, 2, 1], truth, 2)
    assert curve.precision.tolist() == pytest.approx([0, 0.5, 2 / 3])
    assert curve.recall.tolist() == pytest.approx([0, 0.5, 1])
    # start at (r=0, p=0): 0 + (0 + .5)/2*.5 + (.5 + 2/3)/2*.5
    assert curve.auprc == pytest.approx(0.125 + (0.5 + 2 / 3) / 4)
    assert curve.max_f1 == pytest.approx(0.8)
    assert curve.max_f1_threshold == 1


def test_score_particles_reports_the_matching_the_curve_and_the_trade_off():
    truth = [[0, 0, 0], [20, 0, 0]]
    preds = [[50, 50, 50], [0, 0, 1], [20, 0, 1]]  # FP first, then two TPs
    summary, curve = metrics.score_particles(preds, [3, 2, 1], truth, 2)
    assert (summary["tp"], summary["fp"], summary["fn"]) == (2, 1, 0)
    assert summary["f1"] == pytest.approx(0.8)  # the whole list
    assert summary["auprc"] == pytest.approx(curve.auprc) == pytest.approx(0.125 + (0.5 + 2 / 3) / 4)
    assert summary["max_f1_threshold"] == 1
    # Recall 0.5 is reached at scores >= 2 (precision 1/2) and >= 1 (2/3): the better precision is offered.
    assert summary["trade_off"][0] == {"recall_at_least": 0.5, "threshold": 1.0, "n_kept": 3,
                                       "precision": pytest.approx(2 / 3), "recall": 1.0, "f1": pytest.approx(0.8)}
    json.dumps(summary)  # what deepict evaluate prints


def test_tied_scores_form_one_threshold():
    truth = [[0, 0, 0], [20, 0, 0]]
    preds = [[0, 0, 0], [50, 50, 50], [20, 0, 0]]
    curve = metrics.precision_recall_curve(preds, [1, 1, 0.5], truth, 2)
    assert curve.thresholds.tolist() == [1, 0.5]
    assert curve.n_kept.tolist() == [2, 3]
    assert curve.tp.tolist() == [1, 2]


def test_without_scores_the_list_order_ranks():
    curve = metrics.precision_recall_curve([[0, 0, 0], [9, 9, 9]], None, [[0, 0, 0]], 1)
    assert curve.n_kept.tolist() == [1, 2]
    assert np.isnan(curve.thresholds).all()
    assert curve.auprc == pytest.approx(1.0)
    assert curve.summary()["max_f1_threshold"] is None


def test_auprc_function():
    assert metrics.auprc([], []) == 0.0
    assert metrics.auprc([0.5, 1.0], [1.0, 1.0]) == pytest.approx(1.0)
    # unsorted recall is sorted first
    assert metrics.auprc([1.0, 0.5], [0.5, 1.0]) == pytest.approx(0.5 + 0.375)


# ------------------------------------------------------------------------------------------------
# voxel metrics
# ------------------------------------------------------------------------------------------------

def test_voxel_f1_is_dice():
    pred = np.zeros((4, 5, 6), dtype=np.int8)
    gt = np.zeros_like(pred)
    pred[0, :2, :3] = 1   # 6 voxels
    gt[0, :2, :2] = 1     # 4 voxels, 4 shared
    assert metrics.voxel_f1(pred, gt) == pytest.approx(2 * 4 / (6 + 4))
    counts = metrics.voxel_counts(pred, gt)
    assert (counts.tp, counts.fp, counts.fn, counts.tn) == (4, 2, 0, 120 - 6)
    assert metrics.voxel_f1(np.zeros((3, 3, 3)), np.zeros((3, 3, 3))) == 1.0
    assert metrics.voxel_f1(np.zeros((3, 3, 3)), np.ones((3, 3, 3))) == 0.0
    with pytest.raises(ParameterError):
        metrics.voxel_f1(np.zeros((3, 3, 3)), np.zeros((3, 3, 4)))


def test_voxel_f1_over_several_slabs():
    rng = np.random.default_rng(2)
    pred = rng.uniform(size=(70, 9, 8)) > 0.5
    gt = rng.uniform(size=(70, 9, 8)) > 0.6
    expected = 2 * np.sum(pred & gt) / (pred.sum() + gt.sum())
    assert metrics.voxel_f1(pred, gt) == pytest.approx(expected)


def _exact_pr_auc(values, truth):
    """Reference: sort all voxels, one point per distinct value, trapezoid from (0, p_first)."""
    values = values.reshape(-1)
    truth = truth.reshape(-1) != 0
    order = np.argsort(-values, kind="stable")
    v, t = values[order], truth[order]
    tp = np.cumsum(t)
    fp = np.cumsum(~t)
    last = np.flatnonzero(np.append(v[1:] != v[:-1], True))
    precision = tp[last] / (tp[last] + fp[last])
    recall = tp[last] / t.sum()
    r = np.concatenate(([0.0], recall))
    p = np.concatenate(([precision[0]], precision))
    return float(np.sum(np.diff(r) * (p[1:] + p[:-1]) / 2))


def test_voxel_auprc_equals_exact_computation_when_bins_resolve_values():
    rng = np.random.default_rng(3)
    shape = (40, 12, 10)  # more than one slab of 32 slices
    truth = rng.uniform(size=shape) > 0.7
    levels = rng.integers(0, 50, size=shape)
    levels = np.where(truth, np.minimum(levels + 15, 49), levels)  # informative but imperfect
    values = ((levels + 0.5) / 50).astype(np.float32)  # bin centres of 50 bins over [0, 1]
    histogram = metrics.voxel_auprc(values, truth, bins=50, value_range=(0.0, 1.0))
    assert histogram == pytest.approx(_exact_pr_auc(values.astype(np.float64), truth), abs=1e-12)


def test_voxel_auprc_approaches_exact_for_continuous_values():
    rng = np.random.default_rng(4)
    truth = rng.uniform(size=(20, 16, 16)) > 0.8
    values = np.clip(rng.normal(0.3, 0.15, truth.shape) + 0.3 * truth, 0, 1)
    exact = _exact_pr_auc(values, truth)
    assert metrics.voxel_auprc(values, truth, bins=4000) == pytest.approx(exact, abs=2e-3)
    curve = metrics.voxel_pr_curve(values, truth, bins=4000)
    assert 0 < curve.max_f1 <= 1
    assert curve.recall[-1] == pytest.approx(1.0)


def test_voxel_auprc_perfect_and_empty_cases():
    truth = np.zeros((4, 4, 4), dtype=bool)
    truth[1:3, 1:3, 1:3] = True
    assert metrics.voxel_auprc(truth.astype(np.float32), truth) == pytest.approx(1.0)
    assert metrics.voxel_auprc(np.full((4, 4, 4), 0.5), truth) == pytest.approx(truth.mean())
    assert metrics.voxel_auprc(np.random.default_rng(0).uniform(size=(4, 4, 4)), np.zeros((4, 4, 4))) == 0.0
    assert metrics.voxel_auprc(np.zeros((0, 4, 4)), np.zeros((0, 4, 4))) == 1.0
    with pytest.raises(ParameterError):
        metrics.voxel_auprc(np.full((2, 2, 2), np.nan), np.zeros((2, 2, 2)))
    with pytest.raises(ParameterError):
        metrics.voxel_auprc(np.zeros((2, 2, 2)), np.zeros((2, 2, 2)), bins=0)


# ------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------

def test_cli_particle_evaluation(tmp_path, capsys):
    truth = np.array([[10.0, 10, 10], [30, 30, 30], [50, 50, 50]])
    preds = np.array([[11.0, 10, 10], [12, 10, 10], [30, 31, 30], [80, 80, 80]])
    write_coordinates(tmp_path / "gt.csv", CoordinateTable(truth))
    write_coordinates(tmp_path / "pred.csv", CoordinateTable(preds, {"score": np.array([4.0, 3, 2, 1])}))
    out = tmp_path / "scores.json"
    curve = tmp_path / "curve.csv"
    code = main(["evaluate", "--pred", str(tmp_path / "pred.csv"), "--gt", str(tmp_path / "gt.csv"),
                 "--radius", "5", "--json", str(out), "--curve", str(curve)])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out.read_text())
    p = printed["particles"]
    assert (p["tp"], p["fp"], p["fn"]) == (2, 2, 1)
    assert p["precision"] == pytest.approx(0.5) and p["recall"] == pytest.approx(2 / 3)
    assert p["ranking"] == "score"
    assert p["fbeta"] == pytest.approx(17 * 0.5 * (2 / 3) / (16 * 0.5 + 2 / 3)) and p["beta"] == 4
    assert 0 < p["auprc"] <= 1
    assert curve.read_text().splitlines()[0] == "threshold,n_kept,tp,fp,precision,recall,f1"


def test_cli_rescales_ground_truth_of_another_binning_to_the_picks_voxels(tmp_path, capsys):
    """Annotations made on the tomogram at bin 1 (6.74 Å) score picks made at bin 2 (13.48 Å), as the Scipion
    protocol does; deepict evaluate refused them. Voxel centres map: bin-1 voxels 20 and 21 are bin-2 voxel 10."""
    truth = np.array([[20.5, 20.5, 20.5], [60.5, 60.5, 60.5], [100.5, 100.5, 100.5]])
    write_coordinates(tmp_path / "gt_bin1.csv", CoordinateTable(truth, {}, 6.74))
    write_coordinates(tmp_path / "pred.csv", CoordinateTable(np.array([[10.0, 10, 10], [30, 30, 30], [70, 70, 70]]),
                                                             {"score": np.array([3.0, 2, 1])}, 13.48))
    assert main(["evaluate", "--pred", str(tmp_path / "pred.csv"), "--gt", str(tmp_path / "gt_bin1.csv"),
                 "--radius", "0.01"]) == 0
    captured = capsys.readouterr()
    p = json.loads(captured.out)["particles"]
    assert (p["tp"], p["fp"], p["fn"]) == (2, 1, 1)
    assert "gt_bin1.csv: its coordinates at 6.74 Å rescaled to the picks' 13.48 Å voxels" in captured.err


def test_cli_says_what_it_assumes_of_ground_truth_without_voxel_size_and_warns_of_another_binning(tmp_path, capsys):
    """Ground truth of bin 1 without a voxel-size line scored bin-2 picks as is (F1 0.018 instead of 0.617),
    without a word: evaluate now says it takes the picks' voxel size, and warns when the truth reaches twice as
    far as the picks."""
    rng = np.random.default_rng(0)
    picks = rng.uniform(5, 120, (40, 3))
    write_coordinates(tmp_path / "pred.csv", CoordinateTable(picks, {}, 26.96))
    for name, truth, warned in (("same.csv", picks + 0.5, False), ("bin1.csv", 2 * picks + 0.5, True)):
        write_coordinates(tmp_path / name, CoordinateTable(truth, {}, None))
        assert main(["evaluate", "--pred", str(tmp_path / "pred.csv"), "--gt", str(tmp_path / name),
                     "--radius", "2"]) == 0
        err = capsys.readouterr().err
        assert f"{name} gives no voxel size: its coordinates are taken to be at 26.96 Å" in err
        assert ("warning:" in err and "look like another binning" in err and "voxel_size_angstrom" in err) == warned


def test_cli_reports_each_class_when_both_lists_have_classes(tmp_path, capsys):
    truth = CoordinateTable(np.array([[10.0, 10, 10], [30, 30, 30], [50, 50, 50]]),
                            {"class": np.array(["ribosome", "ribosome", "fas"], dtype=object)})
    # the fas pick sits on a ribosome: a FP of fas (and the fas truth a FN), though any-class matching finds it
    preds = CoordinateTable(np.array([[10.0, 10, 10], [30, 30, 30]]),
                            {"class": np.array(["ribosome", "fas"], dtype=object), "score": np.array([2.0, 1.0])})
    write_coordinates(tmp_path / "gt.csv", truth)
    write_coordinates(tmp_path / "pred.csv", preds)
    assert main(["evaluate", "--pred", str(tmp_path / "pred.csv"), "--gt", str(tmp_path / "gt.csv"),
                 "--radius", "2"]) == 0
    particles = json.loads(capsys.readouterr().out)["particles"]
    assert particles["tp"] == 2
    ribosome, fas = particles["classes"]["ribosome"], particles["classes"]["fas"]
    assert (ribosome["tp"], ribosome["fp"], ribosome["fn"]) == (1, 0, 1)
    assert ribosome["fbeta"] == pytest.approx(17 * 1 * 0.5 / (16 + 0.5))
    assert (fas["tp"], fas["fp"], fas["fn"], fas["fbeta"]) == (0, 1, 1, 0.0)


def test_cli_voxel_evaluation(tmp_path, capsys):
    rng = np.random.default_rng(5)
    truth = (rng.uniform(size=(6, 8, 10)) > 0.7).astype(np.int8)
    probability = np.clip(0.6 * truth + rng.uniform(0, 0.5, truth.shape), 0, 1).astype(np.float32)
    write_volume(tmp_path / "gt.mrc", truth, 10.0)
    write_volume(tmp_path / "mask.mrc", (probability > 0.5).astype(np.int8), 10.0)
    write_volume(tmp_path / "prob.mrc", probability, 10.0)
    code = main(["evaluate", "--gt-mask", str(tmp_path / "gt.mrc"), "--pred-mask", str(tmp_path / "mask.mrc"),
                 "--probability-map", str(tmp_path / "prob.mrc"), "--bins", "500"])
    assert code == 0
    v = json.loads(capsys.readouterr().out)["voxels"]
    assert v["dice"] == pytest.approx(metrics.voxel_f1(probability > 0.5, truth))
    assert v["auprc"] == pytest.approx(metrics.voxel_auprc(probability, truth, bins=500))
    assert v["bins"] == 500


def test_cli_errors_exit_2(tmp_path, capsys):
    assert main(["evaluate"]) == 2
    assert main(["evaluate", "--pred", "x.csv"]) == 2
    assert main(["evaluate", "--pred-mask", "m.mrc", "--gt", "t.csv"]) == 2  # a mask scored against picks
    assert "are scored against --gt-mask" in capsys.readouterr().err
    write_volume(tmp_path / "a.mrc", np.zeros((2, 3, 4), np.int8), 5.0)
    write_volume(tmp_path / "b.mrc", np.zeros((2, 3, 5), np.int8), 5.0)
    assert main(["evaluate", "--pred-mask", str(tmp_path / "a.mrc"), "--gt-mask", str(tmp_path / "b.mrc")]) == 2
    assert main(["evaluate", "--pred", str(tmp_path / "missing.csv"), "--gt", str(tmp_path / "missing.csv")]) == 2
    err = capsys.readouterr().err
    assert "deepict evaluate: error:" in err and "missing.csv" in err
