"""Hard negatives: training boxes centred where the network sees a particle that is not annotated.

Boxes drawn uniformly over a tomogram rarely hold the few things a particle network confuses with its
particle (for FAS on the development data: clumps of crowded cytosol, predicted at the same probability
and size as real FAS). So during training the network predicts the training part of every tomogram a
few times (:data:`MINING_EPOCHS` of the epochs), and the centres of its clusters that lie outside every
label become *hard negatives*: a share of the background boxes is centred on them from then on
(:class:`~deepict.train.train3d.PatchSampler`), which teaches the network what the particle is not.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from deepict.infer.options import DEFAULT_MARGIN, DEFAULT_WINDOW
from deepict.infer.sliding_window import predict_tomogram, window_count
from deepict.progress import Progress
from deepict.train.calibrate import UNCALIBRATED_THRESHOLD

#: When the network predicts its training tomograms: after these fractions of the epochs.
MINING_EPOCHS = (0.25, 0.5, 0.75)
#: Voxels within this distance of a label belong to its particle (a prediction a little larger than
#: the training sphere is not a false positive).
LABEL_MARGIN = 3
#: The share of the background boxes centred on a hard negative once there are some.
HARD_NEGATIVE_SHARE = 0.5


def mining_epochs(epochs: int) -> set:
    """The epochs after which the network predicts its training tomograms (none in a training of < 4)."""
    return {round(fraction * epochs) for fraction in MINING_EPOCHS} - {0} if epochs >= 4 else set()


def find_hard_negatives(network, tomograms: list, stats: list, widths: list, min_voxels: int, device,
                        log) -> list:
    """Per tomogram, the centres (z, y, x; int) of the clusters the network predicts in its first ``widths[i]``
    voxels along x, outside every label (any class), holding at least ``min_voxels`` voxels; a voxel is
    predicted above an uncalibrated pick's threshold (:data:`~deepict.train.calibrate.UNCALIBRATED_THRESHOLD`)."""
    parts = [np.asarray(t.data[:, :, :width]) for t, width in zip(tomograms, widths)]
    windows = sum(window_count(part.shape, DEFAULT_WINDOW, DEFAULT_MARGIN) for part in parts)
    progress = Progress("looking for hard negatives in the training tomograms", windows, "windows", log)
    found = []
    for tomo, part, tomo_stats, width in zip(tomograms, parts, stats, widths):
        predicted = np.zeros(part.shape, bool)

        def write(z0, probs, predicted=predicted):
            predicted[z0:z0 + probs.shape[1]] = (probs > UNCALIBRATED_THRESHOLD).any(axis=0)

        predict_tomogram(network, part, write, window=DEFAULT_WINDOW, margin=DEFAULT_MARGIN, batch_size=2,
                         device=device, stats=tomo_stats, progress=progress)
        labelled = ndimage.binary_dilation(tomo.targets[:, :, :, :width].any(axis=0), iterations=LABEL_MARGIN)
        clusters, count = ndimage.label(predicted & ~labelled)
        kept = np.flatnonzero(np.bincount(clusters.ravel(), minlength=count + 1)[1:] >= min_voxels) + 1
        centres = ndimage.center_of_mass(clusters > 0, clusters, kept) if len(kept) else []
        found.append(np.round(np.asarray(centres, float).reshape(-1, 3)).astype(int))
    return found
