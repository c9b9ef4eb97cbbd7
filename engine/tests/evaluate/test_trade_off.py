"""Tests of the precision-recall trade-off over the score threshold (PRCurve.trade_off, deepict evaluate)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deepict.evaluate.files import evaluate_particles
from deepict.evaluate.metrics import precision_recall_curve
from deepict.evaluate.pooling import pool_particles
from deepict.io import CoordinateTable, write_coordinates

TRUTH = np.array([[10.0 * i, 0, 0] for i in range(6)])
FALSE = np.array([[100.0, 50, 0], [150.0, 50, 0]])
# Descending score: T .9, F .85, T .8, T .7, T .6, T .5, F .45, T .4 (6 truths).
PICKS = np.vstack([TRUTH, FALSE])
SCORES = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.85, 0.45])


def test_each_recall_gets_the_threshold_with_the_best_precision_reaching_it():
    curve = precision_recall_curve(PICKS, SCORES, TRUTH, radius=1.0)
    points = {p["recall_at_least"]: p for p in curve.trade_off()}
    assert sorted(points) == [0.5, 0.7, 0.8, 0.9, 0.95]
    # Recall 0.5 is first reached at 0.7 (precision 3/4), but 0.5 keeps 6 picks: precision 5/6, recall 5/6.
    for wanted in (0.5, 0.7, 0.8):
        assert points[wanted]["threshold"] == 0.5
        assert points[wanted]["precision"] == pytest.approx(5 / 6) and points[wanted]["recall"] == pytest.approx(5 / 6)
        assert points[wanted]["n_kept"] == 6 and points[wanted]["f1"] == pytest.approx(5 / 6)
    # All six truths need every pick: threshold 0.4, precision 6/8.
    assert points[0.9]["threshold"] == points[0.95]["threshold"] == 0.4
    assert points[0.9]["precision"] == pytest.approx(0.75) and points[0.9]["recall"] == 1.0
    # A recall never reached is left out.
    assert [p["recall_at_least"] for p in precision_recall_curve(PICKS[:2], SCORES[:2], TRUTH, 1.0).trade_off()] == []


def test_evaluate_reports_it_per_tomogram_and_pooled(tmp_path):
    picks, truth = tmp_path / "picks.csv", tmp_path / "truth.csv"
    write_coordinates(picks, CoordinateTable(PICKS, {"score": SCORES}, 10.0))
    write_coordinates(truth, CoordinateTable(TRUTH, {}, 10.0))
    result = evaluate_particles(picks, truth, radius=1.0, curve_path=tmp_path / "curve.csv")
    json.dumps(result)  # JSON-ready
    assert [p["threshold"] for p in result["trade_off"]] == [0.5, 0.5, 0.5, 0.4, 0.4]
    from deepict.evaluate.pooling import read_curve_csv
    overall, _ = pool_particles([result, result], [read_curve_csv(tmp_path / "curve.csv")] * 2)
    assert [p["threshold"] for p in overall["trade_off"]] == [0.5, 0.5, 0.5, 0.4, 0.4]
    assert overall["trade_off"][0]["n_kept"] == 12
