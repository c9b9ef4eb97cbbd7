"""Scores of prediction files against ground-truth files: what ``deepict evaluate`` reports for one tomogram."""

from __future__ import annotations

import numpy as np

from deepict.conventions import CLASS_COLUMN, SCORE_COLUMN, voxel_sizes_differ
from deepict.errors import ParameterError
from deepict.evaluate import metrics
from deepict.evaluate.pooling import write_curve_csv
from deepict.infer.rescale import table_at_voxel_size
from deepict.io import read_coordinates, read_volume


def _same_voxel_size(a, b, what: str) -> None:
    if voxel_sizes_differ(a, b):
        raise ParameterError(f"{what} refer to different voxel sizes ({a:g} vs {b:g} Å): give masks of the same "
                             "binning (segment the tomogram of the ground truth's binning, or bin the ground truth "
                             "mask to the prediction's).")


def evaluate_particles(pred_path, gt_path, radius: float, curve_path=None, log=None) -> dict:
    """Particle scores of the picks in ``pred_path`` against ``gt_path`` (and their PR curve as a CSV).

    Ground truth at another voxel size (another binning of the same tomogram; both files say their voxel size)
    is rescaled to the picks' voxels, as :func:`~deepict.infer.rescale.to_grid_voxels` maps voxel centres;
    ``log`` says so."""
    pred = read_coordinates(pred_path)
    truth = read_coordinates(gt_path)
    if voxel_sizes_differ(pred.voxel_size, truth.voxel_size):
        if log:
            log(f"{gt_path}: its coordinates at {truth.voxel_size:g} Å rescaled to the picks' {pred.voxel_size:g} Å "
                "voxels")
        truth = table_at_voxel_size(truth, pred.voxel_size)
    elif log and bool(pred.voxel_size) != bool(truth.voxel_size):
        log(_unknown_voxel_size_note(pred, truth, pred_path, gt_path))
    scores = None
    if SCORE_COLUMN in pred.columns:
        try:
            scores = pred.columns[SCORE_COLUMN].astype(float)
        except (TypeError, ValueError):
            raise ParameterError(f"{pred_path}: the score column holds values that are not numbers.") from None
    result, curve = metrics.score_particles(pred.xyz, scores, truth.xyz, radius)
    if curve_path:
        write_curve_csv(curve_path, curve.rows())
    result["ranking"] = "score" if scores is not None else "file order"
    if CLASS_COLUMN in pred.columns and CLASS_COLUMN in truth.columns:
        result["classes"] = _per_class(pred, truth, radius, scores)
    return result


#: Coordinates of one file reaching this many times farther than the other's along an axis look like another binning.
OTHER_BINNING_EXTENT = 1.5


def _unknown_voxel_size_note(pred, truth, pred_path, gt_path) -> str:
    """What ``evaluate`` assumes when only one of the two files says its voxel size (the other is taken to be at
    it), and a warning when their extents say they are not: ground truth of another binning was once scored
    as is (F1 0.018 instead of 0.617), without a word."""
    known, unknown, path = (pred, truth, gt_path) if pred.voxel_size else (truth, pred, pred_path)
    note = (f"{path} gives no voxel size: its coordinates are taken to be at {known.voxel_size:g} Å, as those of "
            f"the other file")
    if len(known.xyz) and len(unknown.xyz):
        reach = unknown.xyz.max(axis=0) / np.maximum(known.xyz.max(axis=0), 1.0)
        if reach.max() > OTHER_BINNING_EXTENT or reach.max() < 1 / OTHER_BINNING_EXTENT:
            axis = int(np.argmax(np.abs(np.log(np.maximum(reach, 1e-9)))))
            return (f"warning: {note}, but they reach {reach[axis]:.2g}x as far along {'xyz'[axis]}: they look like "
                    f"another binning. Add its voxel size to it (a first line '# voxel_size_angstrom: N'), and "
                    "evaluate rescales it.")
    return f"note: {note}."


def _per_class(pred, truth, radius: float, scores) -> dict:
    """{class: counts, precision, recall, F1, F-beta} matching each class's picks with that class's truth only."""
    pred_classes = pred.columns[CLASS_COLUMN].astype(str)
    truth_classes = truth.columns[CLASS_COLUMN].astype(str)
    result = {}
    for name in sorted(set(pred_classes) | set(truth_classes)):
        picked, true = pred_classes == name, truth_classes == name
        match = metrics.match_particles(pred.xyz[picked], truth.xyz[true], radius=radius,
                                        scores=None if scores is None else scores[picked])
        result[name] = match.summary()
    return result


def evaluate_voxels(pred_mask_path, probability_path, gt_mask_path, bins: int) -> dict:
    """Voxel F1 of a binary mask and/or AUPRC of a probability map against the mask ``gt_mask_path``."""
    truth = read_volume(gt_mask_path)
    result = {}
    if pred_mask_path:
        pred = read_volume(pred_mask_path)
        _same_voxel_size(pred.voxel_size, truth.voxel_size, f"{pred_mask_path} and {gt_mask_path}")
        counts = metrics.voxel_counts(pred.data, truth.data)
        result.update(counts.summary())
        result["dice"] = counts.f1
    if probability_path:
        probability = read_volume(probability_path)
        _same_voxel_size(probability.voxel_size, truth.voxel_size, f"{probability_path} and {gt_mask_path}")
        curve = metrics.voxel_pr_curve(probability.data, truth.data, bins=bins)
        summary = curve.summary()
        summary.pop("max_f1_n_kept")
        result.update(summary)
        result["bins"] = int(bins)
    return result
