"""From a filament body to ordered centre-line chains: skeleton, branch points cut, voxels put in order."""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, dijkstra
from scipy.spatial import cKDTree
from skimage.morphology import skeletonize

#: Skeleton pieces shorter than this (voxels) are crumbs of a junction, not filament.
MIN_PIECE_VOXELS = 4
#: Side (voxels) of the tiles a large body is thinned in.
SKELETON_TILE = 96
#: Largest distance between 26-neighbours (sqrt 3), with a margin.
_NEIGHBOUR_DISTANCE = 1.75


def tiled_skeleton(body: np.ndarray, halo: int, tile: int = SKELETON_TILE) -> np.ndarray:
    """(N, 3) voxels of the skeleton of ``body``, thinned tile by tile with ``halo`` voxels around each.

    Thinning peels a body from its border inwards, so a voxel's fate depends on the body within
    about its radius: a halo wider than the thickest filament's radius gives the tile's core as the
    whole body's skeleton would. Empty tiles are skipped, so a sparse mask costs its filaments'
    volume, not the volume's (skimage's thinning scans every voxel of its input at every pass).
    """
    found = []
    shape = np.array(body.shape)
    for corner in np.ndindex(*[int(np.ceil(n / tile)) for n in shape]):
        low = np.array(corner) * tile
        high = np.minimum(low + tile, shape)
        core = tuple(slice(a, b) for a, b in zip(low, high))
        if not body[core].any():
            continue
        outer_low, outer_high = np.maximum(low - halo, 0), np.minimum(high + halo, shape)
        skeleton = np.argwhere(skeletonize(body[tuple(slice(a, b) for a, b in zip(outer_low, outer_high))]))
        skeleton += outer_low
        inside = np.all((skeleton >= low) & (skeleton < high), axis=1)
        found.append(skeleton[inside])
    return np.concatenate(found) if found else np.zeros((0, 3), dtype=np.int64)


def skeleton_chains(body: np.ndarray, halo: int = 16) -> list[tuple[np.ndarray, tuple[bool, bool]]]:
    """The centre-line pieces of a boolean body: ordered (M, 3) arrays of (z, y, x) voxels, and for
    each whether its (start, end) lies at a cut branch point. ``halo``: see :func:`tiled_skeleton`.

    Every skeleton voxel with 3 or more skeleton neighbours is a branch point (a crossing, a
    contact, a spur) and is removed, so that no chain runs through a junction; the joining step
    reconnects the pieces that continue each other.
    """
    points = tiled_skeleton(body, halo)
    if len(points) == 0:
        return []
    # neighbour counts and pieces from the skeleton's points alone: the skeleton is a few voxels
    # of a large crop, so a graph of its points is far cheaper than filters over the crop
    tree = cKDTree(points)
    neighbours = tree.query_ball_point(points, _NEIGHBOUR_DISTANCE, return_length=True) - 1
    branching = neighbours >= 3
    junctions = cKDTree(points[branching]) if branching.any() else None
    points = points[~branching]
    if len(points) == 0:
        return []
    pairs = cKDTree(points).query_pairs(_NEIGHBOUR_DISTANCE, output_type="ndarray")
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(points), len(points)))
    count, which = connected_components(graph, directed=False)
    order = np.argsort(which, kind="stable")
    points, which = points[order], which[order]
    starts = np.searchsorted(which, np.arange(count + 1))
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
