"""From a probability map to particles: threshold, clusters, context, centroids.

The map is read in z slabs, so tomograms larger than memory can be processed: each slab is
thresholded and labelled on its own (``scipy.ndimage.label``), and clusters that continue across
a slab boundary are joined with a union-find over the touching voxels of the two boundary slices.
Per-cluster sums (voxel count, coordinates, probability) are kept instead of label volumes.

Context masks (e.g. cytosol from the 2D network) restrict the result:

* ``intersection`` — only voxels inside the mask are clustered (ribosomes in the cytosol);
* ``contact`` — whole clusters are kept if any voxel lies within ``distance`` voxels of the mask;
* ``colocalization`` — clusters are kept if their centroid lies within ``distance`` voxels of the mask.

Empty results are valid results.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from deepict.conventions import CONTEXT_MODES
from deepict.errors import ParameterError
from deepict.io import read_slab

SLAB = 64


#: A cluster covering more of the map than this is no particle: the map lies above the threshold nearly
#: everywhere (seen with a briefly trained network picked at a lowered threshold: 81 % in one cluster).
MAP_FILLING_FRACTION = 0.1


def fills_the_map(sizes, map_voxels: int) -> bool:
    """Whether the largest of the clusters of ``sizes`` voxels (a picks table's ``size`` column) covers more than
    :data:`MAP_FILLING_FRACTION` of a map of ``map_voxels`` voxels."""
    return len(sizes) > 0 and float(np.max(sizes)) > MAP_FILLING_FRACTION * map_voxels


#: A segmentation covering more than this many times the share of the training tomograms its class's labels
#: covered (``ModelInfo.training[LABEL_SHARE]``), and more than :data:`MAP_FILLING_FRACTION`, of what could be
#: segmented is suspect: membranes cover 3-6 % of a tomogram (the development data), so five times that is not
#: another cell but a map above the threshold nearly everywhere (a network trained too briefly, or a tomogram
#: unlike its training data).
SEGMENTATION_EXCESS_FACTOR = 5.0
#: The share of what could be segmented above which a segmentation is suspect whatever its class: even cytosol,
#: which covers most of a cellular tomogram, leaves its membranes, organelles and the ice outside (a 2D network
#: trained for two epochs marked 100 % of a tomogram as cytosol).
NEARLY_ALL_FRACTION = 0.98
#: The share of what could be segmented above which a structure's segmentation (3D) is suspect when the model
#: does not record its training labels' share (models of older versions, imported ones); a compartment's (2D)
#: is then held to :data:`NEARLY_ALL_FRACTION`.
UNKNOWN_SHARE_FILLING_LIMIT = 0.5


def segmentation_fills_the_map(voxels: int, region_voxels: int, training_share: float | None = None,
                               unknown_share_limit: float = UNKNOWN_SHARE_FILLING_LIMIT) -> bool:
    """Whether a segmentation of ``voxels`` voxels fills the ``region_voxels`` that could be segmented (see
    :data:`SEGMENTATION_EXCESS_FACTOR` and :data:`NEARLY_ALL_FRACTION`); ``training_share``: its class's share of
    the training tomograms, else ``unknown_share_limit`` applies."""
    limit = unknown_share_limit if training_share is None else \
        max(MAP_FILLING_FRACTION, SEGMENTATION_EXCESS_FACTOR * training_share)
    return region_voxels > 0 and voxels > min(limit, NEARLY_ALL_FRACTION) * region_voxels


def picking_region(map_voxels: int, context=None, context_mode: str = "intersection") -> tuple[int, str]:
    """The voxels a pick's clusters can cover, and their name: the ``context`` mask's (its nonzero voxels) when
    intersected, as clusters are cut to it (one filling the mask fills what can be picked); otherwise the whole map
    of ``map_voxels``."""
    if context is not None and context_mode == "intersection":
        return int(np.count_nonzero(context)), "the context mask"
    return int(map_voxels), "the tomogram"


@dataclass
class Clusters:
    """Kept clusters: centroids (N, 3) as x, y, z voxels, sizes in voxels, mean probabilities, and the
    bounding box of each, (N, 2, 3): z, y, x of its first voxel and one past its last (``None`` where
    unknown)."""

    xyz: np.ndarray
    size: np.ndarray
    mean_probability: np.ndarray
    box_zyx: np.ndarray | None = None

    def __len__(self):
        return len(self.size)


@dataclass
class ClusterParameters:
    threshold: float = 0.5
    min_size: int = 1
    max_size: int | None = None
    connectivity: int = 1
    border_xyz: tuple = (0, 0, 0)
    context_mode: str = "intersection"
    context_distance: float = 0.0

    def validate(self) -> None:
        if not 0 <= self.threshold < 1:
            raise ParameterError(f"the threshold must be in [0, 1), got {self.threshold}")
        if self.connectivity not in (1, 2, 3):
            raise ParameterError("the connectivity must be 1 (faces), 2 (edges) or 3 (corners)")
        if self.max_size is not None and self.max_size < self.min_size:
            raise ParameterError(f"the maximum cluster size ({self.max_size}) is below the minimum ({self.min_size})")
        if self.context_mode not in CONTEXT_MODES:
            raise ParameterError(f"unknown context mode '{self.context_mode}': use one of {', '.join(CONTEXT_MODES)}")
        if self.context_distance < 0:
            raise ParameterError("the context distance must not be negative")
        if min(self.border_xyz) < 0:
            raise ParameterError(f"the border must not be negative, got {self.border_xyz} voxels (x, y, z)")


class _UnionFind:
    def __init__(self):
        self.parent = np.zeros(0, np.int64)

    def grow(self, size: int) -> None:
        self.parent = np.concatenate([self.parent, np.arange(len(self.parent), size)])

    def find(self, i: int) -> int:
        root = i
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[i] != root:
            self.parent[i], i = root, self.parent[i]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def roots(self) -> np.ndarray:
        return np.array([self.find(i) for i in range(len(self.parent))], dtype=np.int64)


def _neighbour_offsets(connectivity: int) -> list:
    """In-plane (dy, dx) offsets linking a voxel to the next z slice for the given connectivity."""
    offsets = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    return [(dy, dx) for dy, dx in offsets if 1 + abs(dy) + abs(dx) <= connectivity]


def _shifted_pairs(lower: np.ndarray, upper: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Label pairs (lower[y, x], upper[y + dy, x + dx]) where both are non-zero."""
    ny, nx = lower.shape
    a = lower[max(0, -dy):ny - max(0, dy), max(0, -dx):nx - max(0, dx)]
    b = upper[max(0, dy):ny - max(0, -dy), max(0, dx):nx - max(0, -dx)]
    both = (a > 0) & (b > 0)
    return np.unique(np.stack([a[both], b[both]], axis=1), axis=0) if both.any() else np.zeros((0, 2), np.int64)


def _context_slab(context: np.ndarray, z0: int, z1: int, distance: float) -> np.ndarray:
    """Voxels of slab z0:z1 lying within ``distance`` of the context mask."""
    halo = int(np.ceil(distance))
    mask = read_slab(context, z0 - halo, z1 + halo) != 0
    if halo:
        near = ndimage.distance_transform_edt(~mask) <= distance if mask.any() else mask
        start = z0 - max(0, z0 - halo)
        return near[start:start + (z1 - z0)]
    return mask


def _label_slab(binary: np.ndarray, structure: np.ndarray) -> tuple[np.ndarray, int]:
    """Slab-local labels 1..n (int32: half the memory of int64 for a large slab)."""
    labels = np.zeros(binary.shape, np.int32)
    count = ndimage.label(binary, structure=structure, output=labels)
    return labels, int(count)


def _binary_slab(values: np.ndarray, context, z0, z1, shape, params: ClusterParameters) -> np.ndarray:
    binary = values > params.threshold
    bx, by, bz = (int(b) for b in params.border_xyz)
    if any((bx, by, bz)):
        z = np.arange(z0, z1)
        binary[(z < bz) | (z >= shape[0] - bz)] = False
        binary[:, :by] = binary[:, shape[1] - by:] = False
        binary[:, :, :bx] = binary[:, :, shape[2] - bx:] = False
    if context is not None and params.context_mode == "intersection":
        binary &= read_slab(context, z0, z1) != 0
    return binary


def _slab_statistics(labels: np.ndarray, n: int, values: np.ndarray, z0: int) -> tuple[np.ndarray, np.ndarray]:
    """Voxel count and sums of z, y, x and probability of each of the ``n`` labels of a slab.

    Accumulated plane by plane, so that the temporaries stay the size of one plane's foreground.
    """
    count = np.zeros(n, np.float64)
    sums = np.zeros((n, 4), np.float64)  # z, y, x, probability
    if n == 0:
        return count, sums
    for k, plane in enumerate(labels):
        yy, xx = np.nonzero(plane)
        if not len(yy):
            continue
        ids = plane[yy, xx] - 1
        in_plane = np.bincount(ids, minlength=n)
        count += in_plane
        sums[:, 0] += in_plane * float(z0 + k)
        sums[:, 1] += np.bincount(ids, weights=yy, minlength=n)
        sums[:, 2] += np.bincount(ids, weights=xx, minlength=n)
        sums[:, 3] += np.bincount(ids, weights=values[k, yy, xx], minlength=n)
    return count, sums


def _slab_boxes(labels: np.ndarray, n: int, z0: int) -> np.ndarray:
    """(n, 2, 3) bounding boxes (start, stop; z, y, x in the whole map) of the ``n`` labels of a slab."""
    boxes = np.zeros((n, 2, 3), np.int64)
    for index, box in enumerate(ndimage.find_objects(labels, max_label=n)):
        boxes[index] = [[s.start for s in box], [s.stop for s in box]]
    boxes[:, :, 0] += z0
    return boxes


def find_clusters(probability: np.ndarray, params: ClusterParameters, context: np.ndarray | None = None,
                  slab: int = SLAB, keep_mask_writer=None) -> Clusters:
    """Cluster a (z, y, x) probability map (array or memory map); see the module docstring.

    If ``keep_mask_writer`` is given (a ``write(z0, slab)`` function, see ``io.volume_writer``),
    the binary mask of the kept clusters is written through it.
    """
    params.validate()
    shape = probability.shape
    if context is not None and context.shape != shape:
        raise ParameterError(f"the context mask has shape {context.shape} but the map has {shape}")
    structure = ndimage.generate_binary_structure(3, params.connectivity)
    offsets = _neighbour_offsets(params.connectivity)
    union = _UnionFind()
    counts, all_sums, all_touches, all_boxes = [], [], [], []
    total = 0
    previous_last, previous_offset = None, 0
    slab_offsets = []
    for z0 in range(0, shape[0], slab):
        z1 = min(shape[0], z0 + slab)
        values = read_slab(probability, z0, z1)
        labels, n = _label_slab(_binary_slab(values, context, z0, z1, shape, params), structure)
        offset = total  # global index of this slab's label 1
        slab_offsets.append(offset)
        total += n
        union.grow(total)
        count, sums = _slab_statistics(labels, n, values, z0)
        del values
        counts.append(count)
        all_sums.append(sums)
        all_boxes.append(_slab_boxes(labels, n, z0))
        touches = np.zeros(n, bool)
        if n and context is not None and params.context_mode == "contact":
            near = _context_slab(context, z0, z1, params.context_distance)
            touched = np.unique(labels[near & (labels > 0)])
            touches[touched - 1] = True
        all_touches.append(touches)
        if previous_last is not None and n:
            for dy, dx in offsets:
                for a, b in _shifted_pairs(previous_last, labels[0], dy, dx):
                    union.union(previous_offset + int(a) - 1, offset + int(b) - 1)
        previous_last, previous_offset = labels[-1].copy(), offset

    count = np.concatenate(counts) if counts else np.zeros(0)
    sums = np.concatenate(all_sums) if all_sums else np.zeros((0, 4))
    touches = np.concatenate(all_touches) if all_touches else np.zeros(0, bool)
    roots = union.roots() if total else np.zeros(0, np.int64)
    merged_count = np.bincount(roots, weights=count, minlength=total)
    merged_sums = np.stack([np.bincount(roots, weights=sums[:, c], minlength=total) for c in range(4)], axis=1) \
        if total else np.zeros((0, 4))
    merged_touches = np.zeros(total, bool)
    np.logical_or.at(merged_touches, roots, touches)
    boxes = np.concatenate(all_boxes) if all_boxes else np.zeros((0, 2, 3), np.int64)
    merged_boxes = np.stack([np.full((total, 3), np.iinfo(np.int64).max), np.zeros((total, 3), np.int64)], axis=1)
    np.minimum.at(merged_boxes[:, 0], roots, boxes[:, 0])
    np.maximum.at(merged_boxes[:, 1], roots, boxes[:, 1])
    is_root = roots == np.arange(total)
    keep = is_root & (merged_count >= params.min_size)
    if params.max_size is not None:
        keep &= merged_count <= params.max_size
    if context is not None and params.context_mode == "contact":
        keep &= merged_touches
    centroids_zyx = merged_sums[:, :3] / np.maximum(merged_count, 1)[:, None]
    if context is not None and params.context_mode == "colocalization":
        for index in np.flatnonzero(keep):
            keep[index] = _near_mask(context, centroids_zyx[index], params.context_distance)
    if keep_mask_writer is not None:
        _write_kept(probability, context, params, structure, slab, slab_offsets, roots, keep, keep_mask_writer)
    kept = np.flatnonzero(keep)
    return Clusters(xyz=centroids_zyx[kept][:, ::-1].copy(), size=merged_count[kept].astype(np.int64),
                    mean_probability=merged_sums[kept, 3] / merged_count[kept], box_zyx=merged_boxes[kept])


def _near_mask(context: np.ndarray, centre_zyx: np.ndarray, distance: float) -> bool:
    """Whether any mask voxel lies within ``distance`` (Euclidean, voxels) of a point."""
    halo = int(np.ceil(distance)) + 1
    low = np.maximum(np.floor(centre_zyx).astype(int) - halo, 0)
    high = np.minimum(np.ceil(centre_zyx).astype(int) + halo + 1, context.shape)
    window = np.asarray(context[low[0]:high[0], low[1]:high[1], low[2]:high[2]]) != 0
    if not window.any():
        return False
    points = np.argwhere(window) + low
    return bool(np.min(np.linalg.norm(points - centre_zyx, axis=1)) <= max(distance, 0.5 * np.sqrt(3)))


def _write_kept(probability, context, params, structure, slab, slab_offsets, roots, keep, write) -> None:
    """Second pass: label each slab again (deterministic) and write the voxels of kept clusters."""
    shape = probability.shape
    for z0, offset in zip(range(0, shape[0], slab), slab_offsets):
        z1 = min(shape[0], z0 + slab)
        labels, n = _label_slab(_binary_slab(read_slab(probability, z0, z1), context, z0, z1, shape, params),
                                structure)
        kept_label = np.zeros(n + 1, np.int8)  # label -> 0/1 (label 0 is background)
        kept_label[1:] = keep[roots[offset:offset + n]]
        write(z0, kept_label[labels])


def remove_duplicates(xyz: np.ndarray, scores: np.ndarray, min_distance: float) -> np.ndarray:
    """Indices of picks kept when no two may be closer than ``min_distance`` (higher score wins)."""
    if min_distance <= 0 or len(xyz) < 2:
        return np.arange(len(xyz))
    order = np.argsort(-np.asarray(scores), kind="stable")
    tree = cKDTree(xyz)
    removed = np.zeros(len(xyz), bool)
    kept = []
    for index in order:
        if removed[index]:
            continue
        kept.append(index)
        removed[tree.query_ball_point(xyz[index], r=min_distance - 1e-9)] = True
    return np.array(sorted(kept), dtype=np.int64)
