"""Choosing a trained particle network's post-processing on its own validation data.

A pick is a cluster of voxels above a probability ``threshold`` holding at least ``min_size``
voxels; picks closer than ``min_distance`` are one particle (the higher score wins). The right
values depend on how sharp the network's probability maps are, which depends on the data and on
how long it trained: a well-trained ribosome network fills about a whole training sphere above 0.5,
while an early network, or one for rare particles, spreads them thin. Fixed values are therefore
wrong somewhere, and so is choosing one of them with the others fixed: the best minimum size
depends on the threshold.

So after training, the best network predicts the validation slab of every training tomogram
(the high-x part it never trained on, see :mod:`.train3d`), and every combination of the
candidate thresholds (:data:`THRESHOLDS`), minimum sizes (:data:`SPHERE_FRACTIONS` of the training
sphere's volume) and duplicate distances (:data:`DUPLICATE_RADII` of the sphere radius) is scored
by the particle F1 against the annotated coordinates, pooled over all slabs (rare particles such
as FAS have only a few per slab). Clusters of touching particles are split only when asked, as
``deepict pick --split-touching`` does (:mod:`deepict.infer.splitting`; off by default). Only the
interior of each slab is scored (a sphere radius away from where training data begin), so that
particles cut by the slab edge do not count.

A few dozen validation particles cannot tell apart combinations whose F1 differ by a few
points, and the best of hundreds of combinations on them is partly luck: the demo's 20 validation
particles chose a threshold of 0.3 (F1 0.952 there, 0.864 on its test tomogram, where the
threshold 0.5, at F1 0.947 on validation, gives 0.923). So every combination within one standard
error of the best F1 (:func:`standard_error`) counts as equally good, and among those
the suggestion is the one nearest the uncalibrated threshold (:data:`UNCALIBRATED_THRESHOLD`) and a
duplicate distance of one sphere radius, then the highest F1, then the one whose neighbours in the
grid score best (the middle of a plateau). Many validation particles shrink the tolerance, so a
clearly better threshold still wins. A choice at the edge of a searched range, where F1 still rises
towards that edge, is reported (``at_edge``, and a note in the log): the optimum may lie beyond it.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
from scipy import ndimage

from deepict.conventions import SPLIT_TOUCHING
from deepict.evaluate.metrics import match_particles
from deepict.infer.clusters import ClusterParameters, remove_duplicates
from deepict.infer.picking import clusters_of_map
from deepict.infer.options import DEFAULT_MARGIN, DEFAULT_WINDOW
from deepict.infer.sliding_window import predict_tomogram, window_count
from deepict.progress import Progress

#: Candidate probability thresholds.
THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
#: Candidate minimum cluster sizes, as fractions of the training sphere's volume.
SPHERE_FRACTIONS = (0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.75, 0.9, 1.1, 1.3)
#: Candidate duplicate distances, as fractions of the training sphere's radius.
DUPLICATE_RADII = (0.5, 1.0, 1.5, 2.0)

#: Fewer annotated particles than this in all validation slabs together: too few to choose from.
MIN_VALIDATION_PARTICLES = 8
#: The threshold of an uncalibrated model; the one at which the minimum size is chosen on whole training
#: tomograms (too few validation particles), and the one preferred among equally good calibrated choices.
UNCALIBRATED_THRESHOLD = 0.5
#: What the calibration predicted, as the log names it.
VALIDATION_SLABS, WHOLE_TOMOGRAMS = "the validation slabs", "the whole training tomograms"


def sphere_volume(radius: float) -> float:
    return 4 / 3 * math.pi * radius ** 3


def predict_slabs(network, slabs: list, device, log: Callable[[str], None] | None = None,
                  where: str = VALIDATION_SLABS) -> list:
    """The network's probability map of every validation slab: ``(probability, x_first, truth_xyz)`` each.

    ``slabs``: ``(data, stats, x_first_scored, points_zyx)`` per tomogram: the validation part of
    a tomogram (z, y, x) with a few voxels of training data on its low-x side, the tomogram's
    (mean, std), the first x (in ``data``) that is scored, and the annotated particle centres in
    ``data``'s frame. ``truth_xyz`` are the annotated centres that are scored (x >= x_first). ``where``
    names them in the progress lines.
    """
    windows = sum(window_count(data.shape, DEFAULT_WINDOW, DEFAULT_MARGIN) for data, *_ in slabs)
    progress = Progress(f"calibrating the post-processing on {where}", windows, "windows", log)
    predictions = []
    for data, stats, x_first, points_zyx in slabs:
        truth_xyz = np.asarray(points_zyx, dtype=float).reshape(-1, 3)[:, ::-1]
        probability = np.empty((1,) + data.shape, np.float32)

        def write(z0, probs, probability=probability):
            probability[:, z0:z0 + probs.shape[1]] = probs

        predict_tomogram(network, data, write, channels=[0], window=DEFAULT_WINDOW, margin=DEFAULT_MARGIN,
                         batch_size=2, device=device, stats=stats, progress=progress)
        predictions.append((probability[0], x_first, truth_xyz[truth_xyz[:, 0] >= x_first]))
    return predictions


def candidate_grid(radius: float, thresholds=THRESHOLDS, sphere_fractions=SPHERE_FRACTIONS,
                   duplicate_radii=DUPLICATE_RADII) -> dict:
    """The candidates for a training sphere of ``radius`` voxels: ``{"threshold", "min_size" (voxels),
    "min_distance" (voxels)}``, each a list."""
    return {"threshold": list(thresholds),
            "min_size": [max(1, int(f * sphere_volume(radius))) for f in sphere_fractions],
            "min_distance": [f * radius for f in duplicate_radii]}


def score_candidates(predictions: list, radius: float, split: bool, values: dict) -> tuple:
    """(precision, recall, F1) arrays over the ``values`` grid (:func:`candidate_grid`), pooled over the
    predictions (:func:`predict_slabs`); picks match annotations within ``radius`` voxels."""
    tp, fp, fn = np.moveaxis(_counts(predictions, radius, split, values), -1, 0).astype(float)
    precision = tp / np.maximum(tp + fp, 1)
    recall = tp / np.maximum(tp + fn, 1)
    return precision, recall, 2 * precision * recall / np.maximum(precision + recall, 1e-12)


def _counts(predictions: list, radius: float, split: bool, values: dict) -> np.ndarray:
    """TP, FP, FN (pooled over the slabs) of every (threshold, min size, duplicate distance) candidate."""
    counts = np.zeros(tuple(len(v) for v in values.values()) + (3,), np.int64)
    for probability, x_first, truth in predictions:
        for t, threshold in enumerate(values["threshold"]):
            clusters = clusters_of_map(probability, ClusterParameters(threshold=threshold, min_size=1),
                                       split_radius=radius if split else 0.0)
            for s, min_size in enumerate(values["min_size"]):
                large = clusters.size >= min_size
                xyz, score = clusters.xyz[large], clusters.mean_probability[large]
                for d, distance in enumerate(values["min_distance"]):
                    picks = xyz[remove_duplicates(xyz, score, distance)]
                    result = match_particles(picks[picks[:, 0] >= x_first], truth, radius)
                    counts[t, s, d] += (result.tp, result.fp, result.fn)
    return counts


def choose_postprocess(predictions: list, radius: float, split: bool = SPLIT_TOUCHING,
                       log: Callable[[str], None] | None = None, thresholds=THRESHOLDS,
                       sphere_fractions=SPHERE_FRACTIONS, duplicate_radii=DUPLICATE_RADII,
                       where: str = VALIDATION_SLABS) -> dict | None:
    """The best threshold, minimum size and duplicate distance on predicted validation slabs
    (:func:`predict_slabs`), or ``None`` when they hold too few particles to choose from. ``where`` names
    what was predicted in the log.

    Picks match annotations within ``radius`` voxels (the sphere radius). Returns ``{"threshold",
    "min_size", "min_distance", "f1", "precision", "recall", "particles", "at_edge": [names of the
    parameters chosen at the edge of their range], "best_f1" (of any candidate), "tolerance" (the
    standard error within which a candidate counts as good as the best), "candidates": {name: [{"value",
    "f1", "precision", "recall"}, ...]}}``, the candidates of each parameter with the other two at their
    chosen values.
    """
    particles = sum(len(truth) for *_, truth in predictions)
    if particles < MIN_VALIDATION_PARTICLES:
        if log:
            log(f"post-processing (threshold, minimum cluster size) not calibrated: fewer than "
                f"{MIN_VALIDATION_PARTICLES} annotated particles lie in {where}")
        return None
    values = candidate_grid(radius, thresholds, sphere_fractions, duplicate_radii)
    precision, recall, f1 = score_candidates(predictions, radius, split, values)
    # Among equal F1, the candidate amid the best neighbours (outside the grid counts as F1 0): the middle of a
    # plateau, not its edge.
    near, wider = (ndimage.uniform_filter(f1, size=size, mode="constant") for size in (3, 5))
    top = max(np.ndindex(f1.shape), key=lambda i: (round(f1[i], 9), round(near[i], 9), wider[i]))
    tolerance = standard_error(f1[top], particles)
    as_good = [i for i in np.ndindex(f1.shape) if f1[i] >= f1[top] - tolerance - 1e-9]
    best = min(as_good, key=lambda i: (round(abs(values["threshold"][i[0]] - UNCALIBRATED_THRESHOLD), 9),
                                       round(abs(values["min_distance"][i[2]] - radius), 9),
                                       -round(f1[i], 9), -round(near[i], 9), -wider[i]))
    candidates = {}
    for axis, name in enumerate(values):
        line = [best[:axis] + (k,) + best[axis + 1:] for k in range(f1.shape[axis])]
        candidates[name] = [{"value": _plain(values[name][k[axis]]), "f1": _plain(f1[k], 4),
                             "precision": _plain(precision[k], 4), "recall": _plain(recall[k], 4)} for k in line]
    at_edge = [name for axis, name in enumerate(values) if _rises_to_the_edge(f1, best, axis)]
    chosen = {name: _plain(values[name][best[axis]]) for axis, name in enumerate(values)}
    result = {**chosen, "f1": _plain(f1[best], 4), "precision": _plain(precision[best], 4),
              "recall": _plain(recall[best], 4), "particles": int(particles), "split_touching": split,
              "at_edge": at_edge, "best_f1": _plain(f1[top], 4), "tolerance": _plain(tolerance, 4),
              "candidates": candidates}
    if log:
        log(f"post-processing calibrated on {where} ({particles} annotated particles): threshold "
            f"{chosen['threshold']:g}, minimum cluster size {chosen['min_size']} voxels "
            f"({chosen['min_size'] / sphere_volume(radius):.2f} sphere volumes), duplicate distance "
            f"{chosen['min_distance']:g} voxels: F1 {result['f1']:.3f} (precision {result['precision']:.3f}, recall "
            f"{result['recall']:.3f})")
        if best != top:
            log(f"  the best F1 on {where}, {f1[top]:.3f} at threshold {values['threshold'][top[0]]:g}, lies "
                f"within one standard error ({tolerance:.3f} at {particles} particles) of this choice: too few "
                f"particles to prefer it to one nearer the usual threshold {UNCALIBRATED_THRESHOLD:g}")
        if at_edge:
            log(f"note: the calibrated {' and '.join(at_edge)} {'lies' if len(at_edge) == 1 else 'lie'} at the edge "
                "of the searched range; the best value may lie beyond it")
    return result


def standard_error(f1: float, particles: int) -> float:
    """The standard error of an F1 measured on ``particles`` annotated particles, treated as a proportion,
    with the "plus four" (Agresti-Coull) correction: a perfect F1 on ten particles is not exact."""
    adjusted = (f1 * particles + 2) / (particles + 4)
    return math.sqrt(adjusted * (1 - adjusted) / (particles + 4))


def _plain(value, digits: int | None = None):
    """A Python int or float: the result is stored in model files, which may hold no numpy scalars."""
    if isinstance(value, (int, np.integer)):
        return int(value)
    return float(value) if digits is None else round(float(value), digits)


def _rises_to_the_edge(f1: np.ndarray, best: tuple, axis: int) -> bool:
    """Whether ``best`` is at an end of ``axis`` with a lower F1 next to it: the optimum may lie beyond."""
    index, length = best[axis], f1.shape[axis]
    if length < 2 or index not in (0, length - 1):
        return False
    inner = best[:axis] + (1 if index == 0 else length - 2,) + best[axis + 1:]
    return f1[inner] < f1[best]


def calibrate_postprocess(network, slabs: list, radius: float, device, log: Callable[[str], None] | None = None,
                          split: bool = SPLIT_TOUCHING, whole_tomograms: list | None = None) -> dict | None:
    """:func:`choose_postprocess` on the network's predictions of the validation ``slabs`` (see :func:`predict_slabs`).

    ``whole_tomograms`` (the same form as ``slabs``, covering the training parts too) are used when the
    validation slabs hold too few particles (rare particles such as FAS: about 7 in three dev tomograms'
    slabs). The network has seen most of them, which makes its probabilities there optimistic and a
    threshold chosen there too high, so only the minimum size is chosen, at :data:`UNCALIBRATED_THRESHOLD`
    (``"source": "whole training tomograms"`` in the result).
    """
    result = choose_postprocess(predict_slabs(network, slabs, device, log), radius, split, log)
    if result is not None or not whole_tomograms:
        return result
    if log:
        log("choosing the minimum cluster size on the whole training tomograms instead (threshold "
            f"{UNCALIBRATED_THRESHOLD:g})")
    predictions = predict_slabs(network, whole_tomograms, device, log, WHOLE_TOMOGRAMS)
    result = choose_postprocess(predictions, radius, split, log, thresholds=(UNCALIBRATED_THRESHOLD,),
                                duplicate_radii=(1.0,), where=WHOLE_TOMOGRAMS)
    if result is not None:
        result["source"] = "whole training tomograms"
    return result

