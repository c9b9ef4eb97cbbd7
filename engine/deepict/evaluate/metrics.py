"""Evaluation: particle precision / recall / F1 / F-beta / AUPRC and voxel F1 (Dice) / AUPRC.

Particle matching
    :func:`match_particles` pairs predictions with ground-truth particles **one to one** within a
    tolerance radius (Euclidean, in the voxels both lists refer to; a distance equal to the radius
    counts). Predictions are processed in **descending score order** (ties keep their input order);
    each one takes the nearest still-unmatched truth within the radius (a true positive, TP) or,
    if there is none, it is a false positive (FP). Truths left unmatched are false negatives (FN).

    Two deliberate differences from the original DeePiCt evaluation
    (``particle_picking_evaluation.py``): the original walks the predictions in *file* order
    (cluster-label order, not score order), so the PR curve and AUPRC depended on how the list
    happened to be sorted; and a prediction whose only nearby truths were already taken was
    "redundant" and counted as neither TP nor FP. Here such a duplicate is a FP, so two picks on one
    particle give 1 TP + 1 FP. Neither variant is Hungarian (globally optimal) matching.

F-beta (the CZII cryo-ET object identification challenge's metric)
    ``F_beta = (1 + beta^2) * P * R / (beta^2 * P + R)`` with :data:`FBETA_BETA` = 4, which weighs
    recall 16 times as much as precision (missing a particle costs more than a false pick). It is
    computed from the same one-to-one matching as F1, so the tolerance is our matching radius (the
    challenge counts a prediction within 0.5 x the particle radius of a truth; give that distance as
    the radius to reproduce it). Per particle type it is the F-beta of that type's lists; the
    challenge's final score weights the types, which is left to the caller. Empty inputs follow F1.

Precision-recall curve and AUPRC
    The score threshold is lowered one distinct score at a time (all predictions with
    ``score >= threshold`` are kept; tied scores enter together). AUPRC is the trapezoidal integral
    of precision over recall, starting at recall 0 with the first point's precision — as in the
    original, so a perfect ranking scores exactly 1.

Voxel metrics
    Masks are binarised as ``value != 0``. :func:`voxel_f1` is the Dice coefficient
    ``2|P∩T| / (|P|+|T|)`` (for binary masks identical to the original's
    ``2Σpt / (Σp² + Σt²)``). :func:`voxel_pr_curve` / :func:`voxel_auprc` histogram the probability
    values of positive and negative voxels slab by slab (no full sort, memory-mapped volumes work),
    so thresholds are the bin edges: the result equals the exact curve whenever no bin holds two
    different values, and approaches it as ``bins`` grows otherwise.

Empty inputs (well defined, never an exception)
    * 0/0 precision or recall is 0, **except** that when there is nothing to find and nothing was
      found (no predictions and no truth; all-zero masks) precision, recall, F1 and AUPRC are all 1:
      the picker did exactly the right thing.
    * Truth but no predictions: precision = recall = F1 = AUPRC = 0.
    * Predictions but no truth: precision 0, recall 0 (0/0), F1 = AUPRC = 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np
from scipy.spatial import cKDTree

from deepict.conventions import SLAB_SLICES, VOXEL_PR_BINS
from deepict.errors import ParameterError

#: Default number of histogram bins for voxel PR curves (the value lives in conventions).
DEFAULT_BINS = VOXEL_PR_BINS
#: beta of the reported F-beta score: 4, recall-weighted, as in the CZII cryo-ET challenge.
FBETA_BETA = 4.0
#: Recalls at which the precision-recall trade-off is reported (:meth:`PRCurve.trade_off`).
TRADE_OFF_RECALLS = (0.5, 0.7, 0.8, 0.9, 0.95)


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------

def _ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, 0 when the denominator is 0."""
    return float(numerator) / float(denominator) if denominator else 0.0


def _f1(precision: float, recall: float) -> float:
    return 2.0 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def fbeta(precision: float, recall: float, beta: float = FBETA_BETA) -> float:
    """``(1 + beta²) P R / (beta² P + R)``, 0 when P = R = 0 (beta = 1 is F1)."""
    weight = float(beta) ** 2
    denominator = weight * precision + recall
    return (1.0 + weight) * precision * recall / denominator if denominator > 0 else 0.0


def _as_points(xyz, name: str) -> np.ndarray:
    points = np.asarray(xyz, dtype=np.float64)
    if points.size == 0:
        return np.zeros((0, 3))
    if points.ndim != 2 or points.shape[1] != 3:
        raise ParameterError(f"{name} must be an (N, 3) array of x, y, z coordinates, got shape {points.shape}.")
    if not np.isfinite(points).all():
        raise ParameterError(f"{name} holds NaN or infinite coordinates; remove or fix those rows.")
    return points


def _as_scores(scores, n: int, name: str = "scores") -> Optional[np.ndarray]:
    if scores is None:
        return None
    values = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(values) != n:
        raise ParameterError(f"{name} has {len(values)} values for {n} predictions; give one score per prediction.")
    if not np.isfinite(values).all():
        raise ParameterError(f"{name} holds NaN or infinite values; every prediction needs a finite score.")
    return values


def _check_radius(radius: float) -> float:
    radius = float(radius)
    if not np.isfinite(radius) or radius < 0:
        raise ParameterError(f"The matching radius must be a finite number >= 0 voxels, got {radius}.")
    return radius


# --------------------------------------------------------------------------------------------
# Particle matching
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MatchResult:
    """Outcome of one-to-one matching of predicted to true particle positions.

    Attributes:
        radius: tolerance radius (voxels) used.
        n_pred, n_true: number of predictions and of ground-truth particles.
        tp, fp, fn: true positives, false positives (incl. duplicates), missed truths.
        precision, recall, f1: from the counts (see the module docstring for empty inputs).
        fbeta: F-beta with beta = :data:`FBETA_BETA` from the same counts.
        order: prediction indices (into the input) in processing order, i.e. by descending score.
        is_tp: bool per prediction **in processing order** (``is_tp[k]`` is prediction ``order[k]``).
        scores: the scores in processing order, or ``None`` when none were given.
        pairs: (tp, 2) int array of (prediction index, truth index), input indices, processing order.
        distances: (tp,) distance of each pair in voxels.
    """

    radius: float
    n_pred: int
    n_true: int
    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float
    fbeta: float
    order: np.ndarray
    is_tp: np.ndarray
    scores: Optional[np.ndarray]
    pairs: np.ndarray
    distances: np.ndarray

    @property
    def matched_truth(self) -> np.ndarray:
        """Bool per ground-truth particle (input order): True when some prediction matched it."""
        flags = np.zeros(self.n_true, dtype=bool)
        flags[self.pairs[:, 1]] = True
        return flags

    @property
    def tp_flags(self) -> np.ndarray:
        """Bool per prediction in **input** order: True for true positives."""
        flags = np.zeros(self.n_pred, dtype=bool)
        flags[self.order] = self.is_tp
        return flags

    def summary(self) -> dict:
        """The scalar results as a JSON-ready dict."""
        return {"radius": self.radius, "n_pred": self.n_pred, "n_true": self.n_true,
                "tp": self.tp, "fp": self.fp, "fn": self.fn,
                "precision": self.precision, "recall": self.recall, "f1": self.f1,
                "fbeta": self.fbeta, "beta": FBETA_BETA}


def match_particles(pred_xyz, gt_xyz, radius: float = 10.0, scores=None) -> MatchResult:
    """Match predicted to true particle positions one to one within ``radius`` voxels.

    Predictions are visited by descending ``scores`` (stable: ties, or ``scores=None``, keep the
    input order); each takes the nearest not-yet-matched truth at distance <= ``radius`` (TP) or
    becomes a FP. Both lists are (N, 3) x, y, z in the same voxel frame. Empty lists are fine.
    """
    pred = _as_points(pred_xyz, "pred_xyz")
    gt = _as_points(gt_xyz, "gt_xyz")
    radius = _check_radius(radius)
    values = _as_scores(scores, len(pred))
    order = np.argsort(-values, kind="stable") if values is not None else np.arange(len(pred))

    is_tp = np.zeros(len(pred), dtype=bool)
    pairs: list[tuple[int, int]] = []
    distances: list[float] = []
    if len(pred) and len(gt):
        taken = np.zeros(len(gt), dtype=bool)
        tree = cKDTree(gt)
        neighbours = tree.query_ball_point(pred[order], r=radius)
        for k, (p_index, candidates) in enumerate(zip(order, neighbours)):
            if not candidates:
                continue
            candidates = np.asarray(candidates, dtype=np.intp)
            candidates = candidates[~taken[candidates]]
            if not len(candidates):
                continue
            d = np.linalg.norm(gt[candidates] - pred[p_index], axis=1)
            best = int(np.lexsort((candidates, d))[0])  # nearest; ties -> lowest truth index
            t_index = int(candidates[best])
            taken[t_index] = True
            is_tp[k] = True
            pairs.append((int(p_index), t_index))
            distances.append(float(d[best]))

    tp = int(is_tp.sum())
    fp = len(pred) - tp
    fn = len(gt) - tp
    if not len(pred) and not len(gt):
        precision = recall = f1 = f_beta = 1.0
    else:
        precision = _ratio(tp, tp + fp)
        recall = _ratio(tp, len(gt))
        f1 = _f1(precision, recall)
        f_beta = fbeta(precision, recall)
    return MatchResult(
        radius=radius, n_pred=len(pred), n_true=len(gt), tp=tp, fp=fp, fn=fn,
        precision=precision, recall=recall, f1=f1, fbeta=f_beta, order=order, is_tp=is_tp,
        scores=values[order] if values is not None else None,
        pairs=np.array(pairs, dtype=np.intp).reshape(-1, 2), distances=np.array(distances, dtype=np.float64))


# --------------------------------------------------------------------------------------------
# Precision-recall curves
# --------------------------------------------------------------------------------------------

def auprc(recall, precision) -> float:
    """Area under a precision-recall curve by the trapezoid rule.

    The points are taken in threshold order (recall non-decreasing; they are stably sorted by
    recall if not) and the curve starts at recall 0 with the first point's precision, so a ranking
    whose first predictions are all correct scores 1. Empty input gives 0.
    """
    recall = np.asarray(recall, dtype=np.float64).reshape(-1)
    precision = np.asarray(precision, dtype=np.float64).reshape(-1)
    if len(recall) != len(precision):
        raise ParameterError(f"recall and precision differ in length ({len(recall)} vs {len(precision)}).")
    if not len(recall):
        return 0.0
    if np.any(np.diff(recall) < 0):
        order = np.argsort(recall, kind="stable")
        recall, precision = recall[order], precision[order]
    r = np.concatenate(([0.0], recall))
    p = np.concatenate(([precision[0]], precision))
    return float(np.sum(np.diff(r) * (p[1:] + p[:-1]) / 2.0))


@dataclass(frozen=True)
class PRCurve:
    """A precision-recall curve over a score threshold, from the highest threshold down.

    Attributes:
        thresholds: the score threshold of each point (keep ``score >= threshold``); NaN when the
            ranking came from list order (no scores) — then ``n_kept`` is the threshold.
        n_kept: predictions kept at each point.
        tp, fp: counts at each point.
        precision, recall, f1: at each point.
        auprc: see :func:`auprc`; 1 when nothing was to be found and nothing was predicted.
        max_f1: the best F1 over the points (same empty convention).
        max_f1_threshold: threshold reaching ``max_f1`` (the highest such threshold); NaN if no point.
        max_f1_n_kept: predictions kept at that point (0 if no point).
        n_true: ground-truth count (the recall denominator).
    """

    thresholds: np.ndarray
    n_kept: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    auprc: float
    max_f1: float
    max_f1_threshold: float
    max_f1_n_kept: int
    n_true: int

    def summary(self) -> dict:
        """The scalar results as a JSON-ready dict (NaN thresholds become ``None``)."""
        threshold = self.max_f1_threshold
        return {"auprc": self.auprc, "max_f1": self.max_f1,
                "max_f1_threshold": None if not np.isfinite(threshold) else float(threshold),
                "max_f1_n_kept": self.max_f1_n_kept}

    def trade_off(self, recalls=TRADE_OFF_RECALLS) -> list[dict]:
        """The precision-recall trade-off over the score threshold: for each wanted recall, the threshold
        with the best precision among those reaching that recall or more (the highest such threshold), and
        the precision, recall, F1 and number of picks kept there; recalls never reached are left out."""
        points = []
        for wanted in recalls:
            reached = np.flatnonzero(self.recall >= wanted - 1e-12)
            if len(reached):
                i = int(reached[np.argmax(self.precision[reached])])  # first maximum: the highest threshold
                threshold = float(self.thresholds[i])
                points.append({"recall_at_least": float(wanted),
                               "threshold": threshold if np.isfinite(threshold) else None,
                               "n_kept": int(self.n_kept[i]), "precision": float(self.precision[i]),
                               "recall": float(self.recall[i]), "f1": float(self.f1[i])})
        return points

    def rows(self) -> Iterator[dict]:
        """One dict per curve point (for CSV output / plotting)."""
        for i in range(len(self.n_kept)):
            yield {"threshold": float(self.thresholds[i]), "n_kept": int(self.n_kept[i]),
                   "tp": int(self.tp[i]), "fp": int(self.fp[i]), "precision": float(self.precision[i]),
                   "recall": float(self.recall[i]), "f1": float(self.f1[i])}


def _curve_from_counts(thresholds, n_kept, tp, fp, n_true: int, nothing_predicted: bool) -> PRCurve:
    tp = np.asarray(tp, dtype=np.int64)
    fp = np.asarray(fp, dtype=np.int64)
    kept = tp + fp
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(kept > 0, tp / np.maximum(kept, 1), 0.0)
        recall = tp / n_true if n_true else np.zeros(len(tp))
        denominator = precision + recall
        f1 = np.where(denominator > 0, 2 * precision * recall / np.where(denominator > 0, denominator, 1), 0.0)
    if nothing_predicted and n_true == 0:
        area, best, best_threshold, best_kept = 1.0, 1.0, float("nan"), 0
    elif not len(tp):
        area, best, best_threshold, best_kept = 0.0, 0.0, float("nan"), 0
    else:
        area = auprc(recall, precision)
        i = int(np.argmax(f1))  # first maximum = highest threshold reaching it
        best, best_threshold, best_kept = float(f1[i]), float(thresholds[i]), int(n_kept[i])
    return PRCurve(thresholds=np.asarray(thresholds, dtype=np.float64), n_kept=np.asarray(n_kept, dtype=np.int64),
                   tp=tp, fp=fp, precision=precision.astype(np.float64), recall=np.asarray(recall, dtype=np.float64),
                   f1=f1.astype(np.float64), auprc=area, max_f1=best, max_f1_threshold=best_threshold,
                   max_f1_n_kept=best_kept, n_true=int(n_true))


def precision_recall_curve(pred_xyz, scores, gt_xyz, radius: float = 10.0,
                           match: Optional[MatchResult] = None) -> PRCurve:
    """Particle PR curve over the score threshold (one point per distinct score).

    Matching is done once, greedily by descending score (:func:`match_particles`); lowering the
    threshold only adds predictions, so the TP/FP counts at every threshold are cumulative sums.
    ``scores=None`` ranks by list order (one point per prediction, NaN thresholds). Pass ``match``
    to reuse a result of :func:`match_particles` computed with the same inputs.
    """
    if match is None:
        match = match_particles(pred_xyz, gt_xyz, radius=radius, scores=scores)
    cum_tp = np.cumsum(match.is_tp, dtype=np.int64)
    n_kept = np.arange(1, match.n_pred + 1, dtype=np.int64)
    if match.scores is not None:
        # last index of every group of equal scores (scores are sorted descending)
        last = np.flatnonzero(np.append(match.scores[1:] != match.scores[:-1], True)) if match.n_pred else \
            np.zeros(0, dtype=np.intp)
        thresholds = match.scores[last]
    else:
        last = np.arange(match.n_pred)
        thresholds = np.full(match.n_pred, np.nan)
    tp = cum_tp[last]
    return _curve_from_counts(thresholds, n_kept[last], tp, n_kept[last] - tp, match.n_true,
                              nothing_predicted=match.n_pred == 0)


def score_particles(pred_xyz, scores, gt_xyz, radius: float = 10.0) -> tuple[dict, PRCurve]:
    """What ``deepict evaluate`` reports of one list of picks, and its PR curve: the matching's counts,
    precision, recall, F1 and F-beta (:func:`match_particles`), the curve's AUPRC and best F1, and the
    precision-recall trade-off (:meth:`PRCurve.trade_off`)."""
    match = match_particles(pred_xyz, gt_xyz, radius=radius, scores=scores)
    curve = precision_recall_curve(pred_xyz, scores, gt_xyz, radius, match=match)
    return {**match.summary(), **curve.summary(), "trade_off": curve.trade_off()}, curve


# --------------------------------------------------------------------------------------------
# Voxel metrics
# --------------------------------------------------------------------------------------------

def _check_same_shape(a, b, names: tuple[str, str]) -> None:
    if tuple(np.shape(a)) != tuple(np.shape(b)):
        raise ParameterError(
            f"{names[0]} has shape {tuple(np.shape(a))} (z, y, x) but {names[1]} has shape {tuple(np.shape(b))}; "
            "both must cover the same tomogram voxel for voxel.")


def _slabs(a) -> Iterator[np.ndarray]:
    """Pieces of an array along its first axis (memory-mapped volumes are read piece by piece)."""
    if np.ndim(a) == 0:
        yield np.asarray(a).reshape(1)
        return
    for start in range(0, np.shape(a)[0], SLAB_SLICES):
        yield np.asarray(a[start:start + SLAB_SLICES])


def _slab_pairs(a, b) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Matching pieces of two same-shape arrays along their first axis."""
    return zip(_slabs(a), _slabs(b))


@dataclass(frozen=True)
class VoxelCounts:
    """Voxel confusion counts of a binary prediction against a binary truth."""

    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def f1(self) -> float:
        """Dice = 2TP / (2TP + FP + FN); 1 when both masks are empty."""
        denominator = 2 * self.tp + self.fp + self.fn
        return 2.0 * self.tp / denominator if denominator else 1.0

    @property
    def precision(self) -> float:
        return _ratio(self.tp, self.tp + self.fp) if (self.tp + self.fp + self.fn) else 1.0

    @property
    def recall(self) -> float:
        return _ratio(self.tp, self.tp + self.fn) if (self.tp + self.fp + self.fn) else 1.0

    def summary(self) -> dict:
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "tn": self.tn,
                "precision": self.precision, "recall": self.recall, "f1": self.f1}


def voxel_counts(pred_mask, gt_mask) -> VoxelCounts:
    """TP/FP/FN/TN voxel counts of two same-shape masks (nonzero = foreground), slab by slab."""
    _check_same_shape(pred_mask, gt_mask, ("the predicted mask", "the ground-truth mask"))
    tp = fp = fn = 0
    total = int(np.prod(np.shape(pred_mask), dtype=np.int64))
    for p, t in _slab_pairs(pred_mask, gt_mask):
        p = p != 0
        t = t != 0
        tp += int(np.count_nonzero(p & t))
        fp += int(np.count_nonzero(p & ~t))
        fn += int(np.count_nonzero(~p & t))
    return VoxelCounts(tp=tp, fp=fp, fn=fn, tn=total - tp - fp - fn)


def voxel_f1(pred_mask, gt_mask) -> float:
    """Voxel F1 (= Dice) of two binary masks of the same shape; 1 when both are empty."""
    return voxel_counts(pred_mask, gt_mask).f1


def _value_range(probability) -> tuple[float, float]:
    lo, hi = np.inf, -np.inf
    if np.size(probability) == 0:
        return 0.0, 1.0
    for slab in _slabs(probability):
        lo = min(lo, float(np.min(slab)))
        hi = max(hi, float(np.max(slab)))
    return lo, hi


def voxel_pr_curve(probability, gt_mask, bins: int = DEFAULT_BINS,
                   value_range: Optional[tuple[float, float]] = None) -> PRCurve:
    """Voxel PR curve of a probability (or any score) map against a binary truth mask.

    Values are histogrammed into ``bins`` equal bins over ``value_range`` (default: the map's
    min..max, found in a first pass; values outside a given range go to the end bins), separately
    for truth-positive and truth-negative voxels, slab by slab. Each non-empty bin is one point of
    the curve, its threshold the bin's lower edge (voxels in that bin and above are "positive").
    ``n_kept`` counts voxels. Memory use is independent of the volume size.
    """
    bins = int(bins)
    if bins < 1:
        raise ParameterError(f"bins must be >= 1, got {bins}.")
    _check_same_shape(probability, gt_mask, ("the probability map", "the ground-truth mask"))
    if value_range is None:
        lo, hi = _value_range(probability)
    else:
        lo, hi = (float(v) for v in value_range)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ParameterError("The probability map holds NaN or infinite values, or the value range is not finite.")
    if hi < lo:
        raise ParameterError(f"value_range must be (low, high) with low <= high, got {(lo, hi)}.")
    width = (hi - lo) / bins if hi > lo else 1.0
    positives = np.zeros(bins, dtype=np.int64)
    negatives = np.zeros(bins, dtype=np.int64)
    for values, truth in _slab_pairs(probability, gt_mask):
        values = values.astype(np.float64, copy=False).reshape(-1)
        if not np.isfinite(values).all():
            raise ParameterError("The probability map holds NaN or infinite values; fix the map before evaluating.")
        index = np.clip(np.floor((values - lo) / width), 0, bins - 1).astype(np.intp)
        truth = truth.reshape(-1) != 0
        positives += np.bincount(index[truth], minlength=bins)
        negatives += np.bincount(index[~truth], minlength=bins)
    n_true = int(positives.sum())
    # from the top bin down; keep non-empty bins only
    tp = np.cumsum(positives[::-1])
    fp = np.cumsum(negatives[::-1])
    edges = lo + width * np.arange(bins - 1, -1, -1, dtype=np.float64)
    nonempty = (positives + negatives)[::-1] > 0
    tp, fp, edges = tp[nonempty], fp[nonempty], edges[nonempty]
    return _curve_from_counts(edges, tp + fp, tp, fp, n_true, nothing_predicted=len(tp) == 0)


def voxel_auprc(probability, gt_mask, bins: int = DEFAULT_BINS,
                value_range: Optional[tuple[float, float]] = None) -> float:
    """Voxel AUPRC (histogram-based, see :func:`voxel_pr_curve`)."""
    return voxel_pr_curve(probability, gt_mask, bins=bins, value_range=value_range).auprc
