"""Join centre-line pieces that continue each other (across a cut crossing, a contact or a gap in the mask).

Two piece ends are joined when they lie within ``max_distance`` voxels, their outward directions
point at each other within ``max_angle`` degrees, and (for ends more than a voxel apart) the gap
runs along both directions within ``max_angle``. Candidate pairs are taken best first (nearest and
straightest), each end once, never closing a loop; so at a crossing each arm joins its straight
continuation, not the other filament.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

#: Voxels at the end of a piece from which its outward direction is estimated.
END_DIRECTION_VOXELS = 10
#: Ends closer than this (voxels) are joined on their directions alone (the gap has no direction).
_TOUCHING_ENDS = 1.5


def end_direction(chain: np.ndarray, at_start: bool) -> np.ndarray:
    """Unit outward direction at one end of an ordered chain: the principal axis of its last voxels."""
    tail = chain[:END_DIRECTION_VOXELS] if at_start else chain[-END_DIRECTION_VOXELS:]
    end = tail[0] if at_start else tail[-1]
    if len(tail) < 2:
        return np.zeros(3)
    centred = tail - tail.mean(axis=0)
    axis = np.linalg.svd(centred, full_matrices=False)[2][0]
    return axis if np.dot(axis, end - tail.mean(axis=0)) >= 0 else -axis


def _outward_angle(a: np.ndarray, b: np.ndarray) -> float:
    """Angle (0-180) between two vectors, with their polarity (an outward direction has one)."""
    cosine = np.dot(a, b) / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12)
    return float(np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0))))


def join_chains(chains: list[np.ndarray], max_distance: float, max_angle: float,
                trim: int = 0, junction_ends: list | None = None) -> list[np.ndarray]:
    """Join ordered (M, 3) chains end to end (see the module docstring); return the joined chains.

    ``trim`` voxels are dropped from each joined end: a skeleton bends into a junction over about a
    filament radius, and the smooth curve fitted later bridges the gap straight instead.
    ``junction_ends``: per chain, whether its (start, end) lies at a cut branch point. A joined
    chain shorter than ``max_distance`` whose two free ends both lie at junctions is the skeleton's
    bridge between two filaments that touch or cross (not a filament) and is left out.
    """
    junction_ends = junction_ends or [(False, False)] * len(chains)
    if len(chains) < 2 or max_distance <= 0:
        partner = {}
    else:
        partner = _partners(chains, max_distance, max_angle)
    joined = []
    for chain, (start_at_junction, end_at_junction) in _assemble(chains, partner, trim, junction_ends):
        length = float(np.linalg.norm(np.diff(chain, axis=0), axis=1).sum())
        if not (start_at_junction and end_at_junction and length < max_distance):
            joined.append(chain)
    return joined


def _partners(chains: list[np.ndarray], max_distance: float, max_angle: float) -> dict:
    """{end: end it joins}, ends numbered ``2 * chain + (0 start, 1 end)``."""
    ends = np.array([chain[0] if side == 0 else chain[-1] for chain in chains for side in (0, 1)], dtype=float)
    directions = np.array([end_direction(chain, side == 0) for chain in chains for side in (0, 1)])
    candidates = []
    for a, b in cKDTree(ends).query_pairs(max_distance):
        if a // 2 == b // 2:
            continue
        facing = _outward_angle(directions[a], -directions[b])
        if facing > max_angle:
            continue
        gap = ends[b] - ends[a]
        distance = float(np.linalg.norm(gap))
        bend = 0.0
        if distance > _TOUCHING_ENDS:
            bend = max(_outward_angle(directions[a], gap), _outward_angle(-directions[b], gap))
            if bend > max_angle:
                continue
        candidates.append((distance / max_distance + (facing + bend) / max_angle, a, b))
    parent = list(range(len(chains)))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    partner = {}
    for _, a, b in sorted(candidates):
        if a in partner or b in partner or root(a // 2) == root(b // 2):
            continue
        partner[a], partner[b] = b, a
        parent[root(a // 2)] = root(b // 2)
    return partner


def _trimmed(chain: np.ndarray, start: bool, end: bool, trim: int) -> np.ndarray:
    keep = max(len(chain) - trim * (start + end), 2)
    cut = min(trim, (len(chain) - keep)) if start else 0
    return chain[cut:cut + keep] if (start or end) else chain


def _assemble(chains: list[np.ndarray], partner: dict, trim: int, junction_ends: list) -> list:
    """Walk each joined sequence from a free end and concatenate its chains; with its free ends' junction flags."""
    used = [False] * len(chains)
    out = []
    for first in range(len(chains)):
        if used[first]:
            continue
        # go back to a free end of this sequence
        index, entry = first, 0
        seen = {first}
        while 2 * index + entry in partner:
            other = partner[2 * index + entry]
            if other // 2 in seen:
                break
            index, entry = other // 2, 1 - other % 2
            seen.add(index)
        pieces = []
        first_free = junction_ends[index][entry]
        while True:
            used[index] = True
            exit_end = 2 * index + 1 - entry
            chain = chains[index] if entry == 0 else chains[index][::-1]
            joined_in = (2 * index + entry) in partner and pieces
            joined_out = exit_end in partner and not used[partner[exit_end] // 2]
            pieces.append(_trimmed(chain, bool(joined_in), bool(joined_out), trim))
            if not joined_out:
                last_free = junction_ends[index][1 - entry]
                break
            other = partner[exit_end]
            index, entry = other // 2, other % 2
        out.append((np.concatenate(pieces).astype(float), (first_free, last_free)))
    return out

