"""Figures of several tomograms together, from the per-tomogram results of ``deepict evaluate``.

Particles
    TP, FP and FN are summed over the tomograms, and precision, recall, F1 and F-beta follow from the sums
    (nothing to find and nothing found: all 1, as in :mod:`deepict.evaluate.metrics`). The pooled PR
    curve is exact: matching is per tomogram and greedy in descending score order, so the matches of
    the predictions scoring at least ``t`` do not depend on the lower-scoring ones, and the pooled
    TP/FP at a threshold is the sum of each tomogram's counts at that threshold.

Voxels
    TP, FP and FN of binary masks are summed (voxel F1 = Dice of all tomograms together); the AUPRC
    and best F1 of probability maps are averaged over the tomograms.

PR-curve CSV files (``deepict evaluate --curve``) are written and read here too.
"""

from __future__ import annotations

import csv
import os
from typing import Iterable, Mapping, Sequence

import numpy as np

from deepict.evaluate.metrics import FBETA_BETA, PRCurve, _curve_from_counts, _f1, _ratio, fbeta
from deepict.io import atomic_path

#: Columns of a PR-curve CSV, one row per threshold from the highest down.
CURVE_COLUMNS = ("threshold", "n_kept", "tp", "fp", "precision", "recall", "f1")
#: The per-tomogram particle figures that are kept with the pooled ones.
PARTICLE_KEYS = ("n_pred", "n_true", "tp", "fp", "fn", "precision", "recall", "f1", "fbeta", "auprc", "max_f1",
                 "max_f1_threshold")


def write_curve_csv(path, rows: Iterable[Mapping]) -> None:
    """Write PR-curve points (dicts with :data:`CURVE_COLUMNS`) as a CSV, atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CURVE_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def read_curve_csv(path) -> dict[str, np.ndarray]:
    """A PR-curve CSV as {column: float array}; a missing file or empty cells give empty arrays / NaN."""
    columns: dict[str, list] = {name: [] for name in CURVE_COLUMNS}
    if os.path.exists(path):
        with open(path, newline="") as handle:
            for row in csv.DictReader(handle):
                for name in columns:
                    columns[name].append(float(row[name]) if row.get(name) not in (None, "", "nan") else np.nan)
    return {name: np.array(values, dtype=float) for name, values in columns.items()}


def pooled_curve(curves: Sequence[Mapping], n_true: int) -> PRCurve:
    """The PR curve of all tomograms together from per-tomogram curves ({"threshold", "tp", "fp"} arrays).

    One point per distinct finite threshold of any tomogram, from the highest down; ``n_true`` is the
    ground-truth count of all tomograms (the recall denominator).
    """
    thresholds = sorted({t for c in curves for t in c["threshold"] if np.isfinite(t)}, reverse=True)
    tp = np.zeros(len(thresholds), dtype=np.int64)
    fp = np.zeros(len(thresholds), dtype=np.int64)
    for i, t in enumerate(thresholds):
        for c in curves:
            kept = np.flatnonzero(np.asarray(c["threshold"]) >= t)
            if len(kept):
                tp[i] += int(c["tp"][kept[-1]])
                fp[i] += int(c["fp"][kept[-1]])
    nothing_predicted = not any(len(c["threshold"]) for c in curves)
    return _curve_from_counts(thresholds, tp + fp, tp, fp, n_true, nothing_predicted)


def pool_particles(tomograms: Sequence[Mapping], curves: Sequence[Mapping]) -> tuple[dict, PRCurve]:
    """Overall particle figures and pooled PR curve of per-tomogram results (``deepict evaluate`` JSON,
    its ``particles`` part) and their curves (:func:`read_curve_csv`)."""
    tp, fp, fn, n_pred, n_true = (sum(int(t[k]) for t in tomograms) for k in ("tp", "fp", "fn", "n_pred", "n_true"))
    curve = pooled_curve(curves, n_true)
    if n_pred == 0 and n_true == 0:
        precision = recall = f1 = f_beta = 1.0
    else:
        precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
        f1, f_beta = _f1(precision, recall), fbeta(precision, recall)
    overall = {"n_pred": n_pred, "n_true": n_true, "tp": tp, "fp": fp, "fn": fn, "precision": precision,
               "recall": recall, "f1": f1, "fbeta": f_beta, "beta": FBETA_BETA, "auprc": curve.auprc,
               "max_f1": curve.max_f1,
               "max_f1_threshold": curve.summary()["max_f1_threshold"], "trade_off": curve.trade_off()}
    return overall, curve


def pool_voxels(tomograms: Sequence[Mapping], binary_masks: bool, probability_maps: bool) -> dict:
    """Overall voxel figures of per-tomogram results (``deepict evaluate`` JSON, its ``voxels`` part).

    With binary masks: summed TP/FP/FN, precision, recall and F1 (1 when all masks are empty). With
    probability maps: the mean AUPRC and mean best F1 (also the F1 when there are no binary masks).
    """
    overall: dict = {}
    if binary_masks:
        tp, fp, fn = (sum(int(t[k]) for t in tomograms) for k in ("tp", "fp", "fn"))
        precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
        overall.update(tp=tp, fp=fp, fn=fn, precision=precision, recall=recall,
                       f1=1.0 if tp + fp + fn == 0 else _f1(precision, recall))
    if probability_maps:
        overall["auprc"] = float(np.mean([t["auprc"] for t in tomograms])) if tomograms else 0.0
        overall["max_f1_mean"] = float(np.mean([t["max_f1"] for t in tomograms])) if tomograms else 0.0
        overall.setdefault("f1", overall["max_f1_mean"])
    return overall
