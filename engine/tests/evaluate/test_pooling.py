"""Tests of deepict.evaluate.pooling: per-tomogram evaluation results pooled into overall figures."""

import numpy as np
import pytest

from deepict.evaluate import metrics
from deepict.evaluate.pooling import (CURVE_COLUMNS, pool_particles, pool_voxels, pooled_curve, read_curve_csv,
                                      write_curve_csv)


def curve_arrays(curve):
    """A metrics.PRCurve as the {column: array} read_curve_csv gives."""
    rows = list(curve.rows())
    return {name: np.array([r[name] for r in rows], dtype=float) for name in CURVE_COLUMNS}


def test_pooled_curve_sums_counts_per_threshold():
    a = {"threshold": np.array([0.9, 0.5]), "tp": np.array([1, 1]), "fp": np.array([0, 1])}
    b = {"threshold": np.array([0.7]), "tp": np.array([1]), "fp": np.array([0])}
    rows = list(pooled_curve([a, b], n_true=3).rows())
    assert [(r["threshold"], r["tp"], r["fp"]) for r in rows] == [(0.9, 1, 0), (0.7, 2, 0), (0.5, 2, 1)]
    assert rows[-1]["recall"] == pytest.approx(2 / 3)


def test_pooled_curve_is_the_curve_of_all_tomograms_matched_separately():
    rng = np.random.default_rng(3)
    tomograms = []
    for _ in range(3):
        truth = rng.uniform(0, 100, (12, 3))
        pred = np.concatenate([truth[:9] + rng.normal(0, 2, (9, 3)), rng.uniform(0, 100, (5, 3))])
        tomograms.append((pred, rng.uniform(0, 1, len(pred)).round(2), truth))
    curves = [curve_arrays(metrics.precision_recall_curve(p, s, t, radius=5)) for p, s, t in tomograms]
    # The same picks in one volume, each tomogram far from the others: nothing matches across them.
    shifted = [(p + 1000 * i, s, t + 1000 * i) for i, (p, s, t) in enumerate(tomograms)]
    together = metrics.precision_recall_curve(np.concatenate([p for p, _, _ in shifted]),
                                              np.concatenate([s for _, s, _ in shifted]),
                                              np.concatenate([t for _, _, t in shifted]), radius=5)
    pooled = pooled_curve(curves, n_true=sum(len(t) for _, _, t in tomograms))
    for name, values in curve_arrays(together).items():
        assert curve_arrays(pooled)[name] == pytest.approx(values), name
    assert pooled.auprc == pytest.approx(together.auprc)
    assert (pooled.max_f1, pooled.max_f1_threshold) == pytest.approx((together.max_f1, together.max_f1_threshold))


def particle_result(tp, fp, fn):
    return {"n_pred": tp + fp, "n_true": tp + fn, "tp": tp, "fp": fp, "fn": fn}


def test_pool_particles_sums_the_counts():
    a = {"threshold": np.array([0.9, 0.5]), "tp": np.array([1, 1]), "fp": np.array([0, 1])}
    b = {"threshold": np.array([0.7]), "tp": np.array([1]), "fp": np.array([0])}
    overall, curve = pool_particles([particle_result(1, 1, 1), particle_result(1, 0, 0)], [a, b])
    assert (overall["tp"], overall["fp"], overall["fn"], overall["n_pred"], overall["n_true"]) == (2, 1, 1, 3, 3)
    assert overall["precision"] == pytest.approx(2 / 3)
    assert overall["recall"] == pytest.approx(2 / 3)
    assert overall["f1"] == pytest.approx(2 / 3)
    assert overall["fbeta"] == pytest.approx(2 / 3) and overall["beta"] == 4  # P = R: every F-beta equals them
    assert overall["auprc"] == pytest.approx(curve.auprc)
    assert (overall["max_f1"], overall["max_f1_threshold"]) == (pytest.approx(0.8), 0.7)


def test_pool_particles_nothing_to_find_and_nothing_found_is_perfect():
    empty = {name: np.zeros(0) for name in CURVE_COLUMNS}
    overall, curve = pool_particles([particle_result(0, 0, 0)] * 2, [empty, empty])
    assert [overall[k] for k in ("precision", "recall", "f1", "fbeta", "auprc", "max_f1")] == [1.0] * 6
    assert overall["max_f1_threshold"] is None
    assert list(curve.rows()) == []


def test_pool_particles_truth_but_no_predictions_scores_zero():
    empty = {name: np.zeros(0) for name in CURVE_COLUMNS}
    overall, _ = pool_particles([particle_result(0, 0, 4)], [empty])
    assert [overall[k] for k in ("precision", "recall", "f1", "fbeta", "auprc", "max_f1")] == [0.0] * 6
    assert overall["max_f1_threshold"] is None


def test_pool_voxels_sums_masks_and_averages_probability_maps():
    tomograms = [{"tp": 3, "fp": 1, "fn": 0, "auprc": 0.9, "max_f1": 0.8},
                 {"tp": 1, "fp": 0, "fn": 3, "auprc": 0.5, "max_f1": 0.6}]
    overall = pool_voxels(tomograms, binary_masks=True, probability_maps=True)
    assert (overall["tp"], overall["fp"], overall["fn"]) == (4, 1, 3)
    assert overall["f1"] == pytest.approx(2 * 4 / (2 * 4 + 1 + 3))
    assert overall["auprc"] == pytest.approx(0.7)
    assert overall["max_f1_mean"] == pytest.approx(0.7)
    only_maps = pool_voxels(tomograms, binary_masks=False, probability_maps=True)
    assert "tp" not in only_maps and only_maps["f1"] == pytest.approx(0.7)


def test_pool_voxels_all_empty_masks_are_perfect():
    assert pool_voxels([{"tp": 0, "fp": 0, "fn": 0}], binary_masks=True, probability_maps=False)["f1"] == 1.0


def test_curve_csv_round_trip(tmp_path):
    curve = metrics.precision_recall_curve([[0, 0, 0], [50, 0, 0]], [0.9, 0.4], [[1, 0, 0]], radius=5)
    path = tmp_path / "curve.csv"
    write_curve_csv(path, curve.rows())
    assert path.read_text().splitlines()[0] == ",".join(CURVE_COLUMNS)
    read = read_curve_csv(path)
    for name, values in curve_arrays(curve).items():
        assert read[name] == pytest.approx(values)
    assert all(len(values) == 0 for values in read_curve_csv(tmp_path / "missing.csv").values())
