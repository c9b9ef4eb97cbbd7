"""From a filament body to ordered centre-line chains: skeleton, branch points cut, voxels put in order."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree
from skimage.morphology import skeletonize

from deepict.filaments.masks import CONNECTIVITY_26

#: Skeleton pieces shorter than this (voxels) are crumbs of a junction, not filament.
MIN_PIECE_VOXELS = 4
#: Largest distance between 26-neighbours (sqrt 3), with a margin.
_NEIGHBOUR_DISTANCE = 1.75


def skeleton_chains(body: np.ndarray) -> list[tuple[np.ndarray, tuple[bool, bool]]]:
    """The centre-line pieces of a boolean body: ordered (M, 3) arrays of (z, y, x) voxels, and for
    each whether its (start, end) lies at a cut branch point.

    Every skeleton voxel with 3 or more skeleton neighbours is a branch point (a crossing, a
    contact, a spur) and is removed, so that no chain runs through a junction; the joining step
    reconnects the pieces that continue each other.
    """
    skeleton = skeletonize(body).astype(bool)
    if not skeleton.any():
        return []
    neighbours = ndimage.convolve(skeleton.astype(np.uint8), CONNECTIVITY_26.astype(np.uint8), mode="constant") - 1
    branch_points = np.argwhere(skeleton & (neighbours >= 3))
    skeleton &= neighbours < 3
    junctions = cKDTree(branch_points) if len(branch_points) else None
    labels, count = ndimage.label(skeleton, structure=CONNECTIVITY_26)
    points = np.argwhere(labels)
    which = labels[tuple(points.T)]
    order = np.argsort(which, kind="stable")
    points, which = points[order], which[order]
    starts = np.searchsorted(which, np.arange(1, count + 2))
    chains = []
    for k in range(count):
        piece = points[starts[k]:starts[k + 1]]
        if len(piece) >= MIN_PIECE_VOXELS:
            chain = order_chain(piece)
            at_junction = (False, False) if junctions is None else tuple(
                bool(junctions.query(end)[0] <= _NEIGHBOUR_DISTANCE) for end in (chain[0], chain[-1]))
            chains.append((chain, at_junction))
    return chains


def order_chain(points: np.ndarray) -> np.ndarray:
    """The voxels of one connected piece in order along it: the longest shortest path through it.

    Two sweeps find the path's ends (the voxel farthest from any voxel, then the one farthest from
    it); voxels off that path (1-voxel spurs, corners of a staircase) are dropped.
    """
    if len(points) <= 2:
        return points
    pairs = cKDTree(points).query_pairs(_NEIGHBOUR_DISTANCE, output_type="ndarray")
    if len(pairs) == 0:
        return points[:1]
    weights = np.linalg.norm(points[pairs[:, 0]] - points[pairs[:, 1]], axis=1)
    graph = coo_matrix((weights, (pairs[:, 0], pairs[:, 1])), shape=(len(points), len(points))).tocsr()
    first = _farthest(dijkstra(graph, directed=False, indices=0))
    distances, predecessors = dijkstra(graph, directed=False, indices=first, return_predecessors=True)
    node = _farthest(distances)
    path = [node]
    while predecessors[node] >= 0:
        node = predecessors[node]
        path.append(node)
    return points[np.array(path[::-1])]


def _farthest(distances: np.ndarray) -> int:
    finite = np.where(np.isfinite(distances), distances, -1.0)
    return int(np.argmax(finite))
