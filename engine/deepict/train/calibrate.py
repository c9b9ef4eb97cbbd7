"""Choosing a trained particle network's minimum cluster size on its own validation data.

A cluster of above-threshold voxels must be at least ``min_size`` voxels to become a pick. The
right value depends on how sharp the network's probability maps are, which depends on the data
and on how long it trained: on the simulated development tomograms true ribosome clusters of a
well-trained network fill about a whole training sphere, while an early network spreads them thin.
A fixed fraction of the sphere volume is therefore wrong somewhere: the best fraction differs
between data sets.

So after training, the best network predicts the validation slab of every training tomogram
(the high-x part it never trained on, see :mod:`.train3d`), the clusters are found at the
model's threshold, and the candidate minimum size that gives the highest particle F1 against the
annotated coordinates there (pooled over tomograms) becomes the model's suggestion. Only the
interior of each slab is scored (a sphere radius away from where training data begin), so that
particles cut by the slab edge do not count.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from deepict.evaluate.metrics import match_particles
from deepict.infer.clusters import ClusterParameters, find_clusters
from deepict.infer.sliding_window import DEFAULT_MARGIN, DEFAULT_WINDOW, predict_tomogram, window_count
from deepict.progress import Progress

#: Candidate minimum cluster sizes, as fractions of the training sphere's volume.
SPHERE_FRACTIONS = (0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.75)

#: Fewer annotated particles than this in all validation slabs together: too few to choose from.
MIN_VALIDATION_PARTICLES = 8


def sphere_volume(radius: float) -> float:
    return 4 / 3 * math.pi * radius ** 3


def calibrate_min_size(network, slabs: list, radius: float, threshold: float, device,
                       log: Callable[[str], None] | None = None) -> dict | None:
    """The minimum cluster size (voxels) with the best validation F1, or ``None`` if undecidable.

    ``slabs``: ``(data, stats, x_first_scored, points_zyx)`` per tomogram: the validation part of
    a tomogram (z, y, x) with a few voxels of training data on its low-x side, the tomogram's
    (mean, std), the first x (in ``data``) that is scored, and the annotated particle centres in
    ``data``'s frame. Picks match annotations within ``radius`` voxels (the sphere radius).
    Returns ``{"min_size", "f1", "candidates": [{"min_size", "f1", "precision", "recall"}, ...]}``.
    """
    found, truths = [], []
    windows = sum(window_count(data.shape, DEFAULT_WINDOW, DEFAULT_MARGIN) for data, *_ in slabs)
    progress = Progress("calibrating the minimum cluster size on the validation slabs", windows, "windows", log)
    for data, stats, x_first, points_zyx in slabs:
        truth_xyz = np.asarray(points_zyx, dtype=float).reshape(-1, 3)[:, ::-1]
        truths.append(truth_xyz[truth_xyz[:, 0] >= x_first])
        probability = np.empty((1,) + data.shape, np.float32)

        def write(z0, probs, probability=probability):
            probability[:, z0:z0 + probs.shape[1]] = probs

        predict_tomogram(network, data, write, channels=[0], window=DEFAULT_WINDOW, margin=DEFAULT_MARGIN, batch_size=2,
                         device=device, stats=stats, progress=progress)
        clusters = find_clusters(probability[0], ClusterParameters(threshold=threshold, min_size=1))
        inside = clusters.xyz[:, 0] >= x_first
        found.append((clusters.xyz[inside], clusters.size[inside]))
    if sum(len(t) for t in truths) < MIN_VALIDATION_PARTICLES:
        if log:
            log(f"minimum cluster size not calibrated: fewer than {MIN_VALIDATION_PARTICLES} annotated "
                "particles lie in the validation slabs")
        return None
    candidates = []
    for fraction in SPHERE_FRACTIONS:
        min_size = max(1, int(fraction * sphere_volume(radius)))
        tp = fp = fn = 0
        for (xyz, size), truth in zip(found, truths):
            result = match_particles(xyz[size >= min_size], truth, radius)
            tp, fp, fn = tp + result.tp, fp + result.fp, fn + result.fn
        precision, recall = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
        f1 = 2 * precision * recall / max(precision + recall, 1e-12)
        candidates.append({"min_size": min_size, "f1": round(f1, 4), "precision": round(precision, 4),
                           "recall": round(recall, 4)})
    best = max(candidates, key=lambda c: c["f1"])  # first (smallest size) among equals
    if log:
        log(f"minimum cluster size {best['min_size']} voxels ({best['min_size'] / sphere_volume(radius):.2f} "
            f"sphere volumes): validation F1 {best['f1']:.3f} (precision {best['precision']:.3f}, recall "
            f"{best['recall']:.3f}, {sum(len(t) for t in truths)} annotated particles)")
    return {"min_size": best["min_size"], "f1": best["f1"], "candidates": candidates}
