"""Splitting clusters that hold touching particles, so that each particle gets its own pick.

The above-threshold voxels of two touching particles (ribosomes of a polysome, or side by side on
a membrane) form one cluster, whose centroid lies between them: one particle is lost, often both,
when the centroid is farther than the matching tolerance from either. So a cluster of at least
:data:`SPLIT_VOLUMES` expected particle volumes (a sphere of the particle radius) is split:

* its Euclidean distance transform peaks at the centre of each roughly spherical particle in it;
* a peak becomes a seed if it is at least :data:`PEAK_DEPTH` radii deep (a particle's centre lies a
  radius from the cluster's surface, a bump on the surface does not) and if one must descend at
  least :data:`PEAK_DYNAMIC` radii from it to reach a higher peak (an h-maximum: two spheres
  whose centres are d apart are joined by a neck of half-width sqrt(r² - d²/4), so they are told
  apart from d ≈ 1.35 r on; an elongated blob has a ridge, not two peaks, and stays whole); seeds
  closer than one radius to a deeper seed are dropped;
* a watershed of the distance transform from the seeds gives each particle its own voxels, hence
  its centroid, size and mean probability. Parts smaller than the minimum cluster size are dropped;
  a cluster that yields fewer than two parts is kept whole.

Each large cluster is read from the map in its bounding box only (arrays or memory maps), so
memory stays bounded by the largest cluster, not the tomogram.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from deepict.infer.clusters import ClusterParameters, Clusters

#: Clusters of at least this many expected particle volumes are split.
SPLIT_VOLUMES = 1.5
#: A seed lies at least this many particle radii inside its cluster.
PEAK_DEPTH = 0.5
#: ... and at least this many radii above the saddle to any higher peak.
PEAK_DYNAMIC = 0.25


def split_touching(probability, clusters: Clusters, params: ClusterParameters, radius: float,
                   context=None) -> Clusters:
    """``clusters`` (from :func:`~deepict.infer.clusters.find_clusters` with ``params`` on ``probability``)
    with every cluster of touching particles of ``radius`` voxels replaced by one cluster per particle."""
    if radius <= 0 or not len(clusters):
        return clusters
    if clusters.box_zyx is None:
        raise ValueError("splitting needs the clusters' bounding boxes (clusters from find_clusters)")
    large = SPLIT_VOLUMES * 4 / 3 * math.pi * radius ** 3
    structure = ndimage.generate_binary_structure(3, params.connectivity)
    xyz, size, mean, box = [], [], [], []
    for index in range(len(clusters)):
        parts = None
        if clusters.size[index] >= large:
            parts = _split_cluster(probability, context, params, structure, clusters, index, radius)
        if parts is None:
            parts = (clusters.xyz[index:index + 1], clusters.size[index:index + 1],
                     clusters.mean_probability[index:index + 1], clusters.box_zyx[index:index + 1])
        for collected, part in zip((xyz, size, mean, box), parts):
            collected.append(part)
    return Clusters(xyz=np.concatenate(xyz), size=np.concatenate(size).astype(np.int64),
                    mean_probability=np.concatenate(mean), box_zyx=np.concatenate(box).astype(np.int64))


def _cluster_mask(probability, context, params: ClusterParameters, structure, clusters: Clusters, index: int):
    """The cluster's voxels in its bounding box (the box may hold pieces of other clusters too), and the box."""
    start, stop = clusters.box_zyx[index]
    region = tuple(slice(int(a), int(b)) for a, b in zip(start, stop))
    values = np.asarray(probability[region], np.float32)
    binary = values > params.threshold
    border_zyx = tuple(int(b) for b in params.border_xyz[::-1])
    for axis, (border, length) in enumerate(zip(border_zyx, np.shape(probability))):
        if border:
            coordinate = np.arange(start[axis], stop[axis]).reshape([-1 if a == axis else 1 for a in range(3)])
            binary &= (coordinate >= border) & (coordinate < length - border)
    if context is not None and params.context_mode == "intersection":
        binary &= np.asarray(context[region]) != 0
    labels, n = ndimage.label(binary, structure=structure)
    counts = np.bincount(labels.ravel(), minlength=n + 1)
    candidates = [label for label in np.flatnonzero(counts == clusters.size[index]) if label]
    if not candidates:
        return None, values, start
    centre_zyx = clusters.xyz[index, ::-1] - start
    offsets = [np.linalg.norm(np.argwhere(labels == label).mean(axis=0) - centre_zyx) for label in candidates]
    return labels == candidates[int(np.argmin(offsets))], values, start


def _seeds(distance: np.ndarray, radius: float) -> list:
    """Voxel indices (z, y, x) of the particle centres in a cluster's distance transform, deepest first."""
    from skimage.morphology import h_maxima  # only when a cluster is split: keeps `deepict pick` start-up light
    peaks = h_maxima(distance, PEAK_DYNAMIC * radius) & (distance >= PEAK_DEPTH * radius)
    labels, n = ndimage.label(peaks, structure=np.ones((3, 3, 3)))
    candidates = []
    for label in range(1, n + 1):
        voxels = np.argwhere(labels == label)
        centre = voxels[np.argmin(np.linalg.norm(voxels - voxels.mean(axis=0), axis=1))]  # a plateau's middle
        candidates.append((float(distance[tuple(centre)]), tuple(int(c) for c in centre)))
    seeds = []
    for _, voxel in sorted(candidates, key=lambda c: -c[0]):
        if all(np.linalg.norm(np.subtract(voxel, kept)) >= radius for kept in seeds):
            seeds.append(voxel)
    return seeds


def _split_cluster(probability, context, params, structure, clusters, index, radius):
    """(xyz, size, mean probability, box) of the parts of one cluster, or ``None`` to keep it whole."""
    from skimage.segmentation import watershed
    mask, values, start = _cluster_mask(probability, context, params, structure, clusters, index)
    if mask is None:
        return None
    # Padded, so that the box's faces count as outside the cluster.
    distance = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1, 1:-1]
    seeds = _seeds(distance, radius)
    if len(seeds) < 2:
        return None
    markers = np.zeros(mask.shape, np.int32)
    for label, voxel in enumerate(seeds, start=1):
        markers[voxel] = label
    parts = watershed(-distance, markers, mask=mask)
    labels = np.arange(1, len(seeds) + 1)
    count = np.asarray(ndimage.sum_labels(mask, parts, labels))
    keep = count >= max(params.min_size, 1)
    if keep.sum() < 2:
        return None
    labels, count = labels[keep], count[keep]
    centres_zyx = np.array(ndimage.center_of_mass(mask, parts, labels)).reshape(-1, 3) + start
    means = np.asarray(ndimage.mean(values, parts, labels))
    boxes = np.array([[[s.start for s in box], [s.stop for s in box]]
                      for box in ndimage.find_objects(parts)]).reshape(-1, 2, 3)[labels - 1] + start
    return centres_zyx[:, ::-1], count.astype(np.int64), means, boxes
