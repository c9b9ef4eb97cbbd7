"""Procedural tomograms of filaments with exact centre lines, for the filament tracing tests and benchmark.

A scene holds microtubule-like filaments (hollow tubes 25 nm across with a 17 nm lumen) and
actin-like ones (solid, 7 nm across) on smooth curved centre lines, arranged so that every case a
tracer must handle appears: filaments running out of the volume, two actin filaments **crossing**
in one plane, a microtubule lying **on** another (touching, not crossing), an actin filament that
**leaves the volume and comes back** (two true filaments, since the volume sees two pieces), and an
actin filament ending inside the volume. More random filaments can be added. Filament ends are flat
(a cut tube), not rounded. The density is imaged like :mod:`deepict.synthetic.cells` (low-pass,
noise, missing wedge; protein dark).

Positions are fractions of the volume's size (so any size keeps the layout), radii are physical
(Å, through the voxel size). Centre lines are 0-based voxel (x, y, z) points every
:data:`CENTRE_LINE_STEP` voxels of arc, one array per piece of filament inside the volume.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.interpolate import CubicSpline
from scipy.spatial import cKDTree

from deepict.conventions import FILAMENT_ID_COLUMN
from deepict.io import CoordinateTable, write_coordinates, write_volume
from deepict.synthetic.cells import ImagingConfig, _image

#: Kinds of filament, in the order of their masks.
FILAMENT_KINDS = ("microtubule", "actin")
#: (inner, outer) radius in Å: microtubules are hollow (25 nm across, 17 nm lumen), actin solid (7 nm).
FILAMENT_RADII_ANGSTROM = {"microtubule": (85.0, 125.0), "actin": (0.0, 35.0)}
#: Arc length (voxels) between two points of a true centre line.
CENTRE_LINE_STEP = 0.25
_ICE = 0.25
#: Centre-line points rasterised together (a piece of tube at a time keeps the work near the filament).
_CHUNK_POINTS = 64


@dataclass
class FilamentSceneConfig(ImagingConfig):
    """What a filament scene holds and how it is imaged (the imaging fields are :class:`ImagingConfig`'s)."""

    shape_zyx: tuple = (64, 192, 192)
    voxel_size: float = 13.48
    #: Random gently curved filaments added to the fixed layout.
    n_random_microtubules: int = 0
    n_random_actin: int = 0
    seed: int = 0

    def __post_init__(self):
        self.shape_zyx = tuple(int(s) for s in self.shape_zyx)
        if len(self.shape_zyx) != 3 or min(self.shape_zyx) < 32:
            raise ValueError(f"shape_zyx must be three sizes of at least 32 voxels, got {self.shape_zyx}")
        if self.voxel_size <= 0 or self.snr <= 0:
            raise ValueError("voxel_size and snr must be positive")


@dataclass
class FilamentScene:
    """A synthetic filament tomogram and its ground truth."""

    tomogram: np.ndarray | None     #: float32 (z, y, x), zero mean, unit variance (None if not imaged)
    voxel_size: float
    masks: dict                     #: 'microtubule', 'actin', 'filaments' -> bool (z, y, x), lumens filled
    centre_lines: list              #: (K, 3) xyz voxel points, one per piece of filament in the volume
    kinds: list                     #: the kind of each centre line
    config: FilamentSceneConfig = field(default=None)


# Fixed layout: (kind, control points as fractions of (x, y, z) size, z offset in outer radii of a microtubule).
_LAYOUT = (
    # a microtubule across the whole volume, gently curved
    ("microtubule", [(-0.05, 0.30, 0.5), (0.5, 0.36, 0.5), (1.05, 0.26, 0.5)], 0.0),
    # a microtubule lying on the first one (centres two outer radii apart where they cross)
    ("microtubule", [(0.58, -0.05, 0.5), (0.6, 0.5, 0.5), (0.52, 1.05, 0.5)], 2.0),
    # two actin filaments crossing in one plane
    ("actin", [(-0.05, 0.62, 0.35), (0.4, 0.7, 0.35), (0.95, 0.88, 0.35)], 0.0),
    ("actin", [(0.2, 1.05, 0.35), (0.35, 0.75, 0.35), (0.5, 0.5, 0.35)], 0.0),
    # an actin filament leaving the volume through y = 0 and coming back
    ("actin", [(0.05, 0.4, 0.8), (0.15, 0.08, 0.8), (0.24, -0.12, 0.8), (0.33, 0.08, 0.8), (0.42, 0.4, 0.8)], 0.0),
    # an actin filament ending inside the volume at both ends
    ("actin", [(0.68, 0.55, 0.2), (0.8, 0.62, 0.2), (0.9, 0.78, 0.2)], 0.0),
)


def _dense_curve(control_xyz: np.ndarray) -> np.ndarray:
    """Points every CENTRE_LINE_STEP voxels of arc along the cubic spline through control points."""
    chord = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(control_xyz, axis=0), axis=1))])
    spline = CubicSpline(chord, control_xyz, bc_type="natural")
    fine = spline(np.linspace(0.0, chord[-1], int(chord[-1] / CENTRE_LINE_STEP) * 8 + 2))
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(fine, axis=0), axis=1))])
    positions = np.arange(0.0, arc[-1], CENTRE_LINE_STEP)
    return np.stack([np.interp(positions, arc, fine[:, i]) for i in range(3)], 1)


def _pieces_inside(curve: np.ndarray, shape_zyx) -> list[np.ndarray]:
    """The runs of a curve's points inside the volume (voxel centres -0.5 .. size-0.5), 2 voxels or longer."""
    upper = np.array(shape_zyx[::-1], dtype=float) - 0.5
    inside = np.all((curve >= -0.5) & (curve <= upper), axis=1)
    edges = np.diff(np.concatenate([[0], inside.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [curve[a:b] for a, b in zip(starts, stops) if (b - a) * CENTRE_LINE_STEP >= 2.0]


def _rasterise(curve: np.ndarray, radii: tuple, mask: np.ndarray, density: np.ndarray | None) -> None:
    """Set ``mask`` inside the tube of outer radius ``radii[1]`` (flat ends), and its wall density."""
    inner, outer = radii
    tree = cKDTree(curve)
    shape = np.array(mask.shape)
    for start in range(0, len(curve), _CHUNK_POINTS):
        chunk = curve[start:start + _CHUNK_POINTS + 1]
        low = np.maximum(np.floor(chunk.min(axis=0)[::-1] - outer - 1).astype(int), 0)
        high = np.minimum(np.ceil(chunk.max(axis=0)[::-1] + outer + 2).astype(int), shape)
        if np.any(high <= low):
            continue
        grid = np.stack(np.meshgrid(*[np.arange(a, b) for a, b in zip(low, high)], indexing="ij"), -1)
        voxels = grid.reshape(-1, 3)[:, ::-1].astype(float)
        distance, nearest = tree.query(voxels, distance_upper_bound=outer + 1.0)
        near = np.isfinite(distance)
        # flat ends: a voxel whose nearest centre-line point is an end and that lies beyond it is outside
        for end, before in ((0, 1), (len(curve) - 1, len(curve) - 2)):
            at_end = near & (nearest == end)
            if at_end.any():
                outward = curve[end] - curve[before]
                beyond = (voxels[at_end] - curve[end]) @ outward > 0
                near[np.flatnonzero(at_end)[beyond]] = False
        inside = near & (distance <= outer)
        index = tuple((grid.reshape(-1, 3)[inside]).T)
        mask[index] = True
        if density is not None:
            wall = np.clip(outer + 0.5 - distance[inside], 0, 1) * np.clip(distance[inside] - inner + 0.5, 0, 1)
            density[index] = np.maximum(density[index], _ICE + (1.0 - _ICE) * wall.astype(np.float32))


def _random_controls(rng, count: int) -> list:
    """Control points of gently curved filaments entering and leaving through the sides."""
    layouts = []
    for _ in range(count):
        angle = rng.uniform(0, np.pi)
        centre = np.array([rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8)])
        direction = np.array([np.cos(angle), np.sin(angle), rng.uniform(-0.1, 0.1)])
        normal = np.array([-np.sin(angle), np.cos(angle), 0.0])
        bend = rng.uniform(-0.08, 0.08)
        layouts.append([centre - 0.9 * direction, centre + bend * normal, centre + 0.9 * direction])
    return layouts


def make_filament_scene(config: FilamentSceneConfig | None = None, image: bool = True) -> FilamentScene:
    """Build a filament scene (``image=False``: masks and centre lines only, for large volumes)."""
    config = config or FilamentSceneConfig()
    rng = np.random.default_rng(config.seed)
    shape = config.shape_zyx
    size_xyz = np.array(shape[::-1], dtype=float)
    mt_outer = FILAMENT_RADII_ANGSTROM["microtubule"][1] / config.voxel_size
    filaments = [(kind, np.array(points) * size_xyz + [0, 0, lift * mt_outer]) for kind, points, lift in _LAYOUT]
    for kind, count in (("microtubule", config.n_random_microtubules), ("actin", config.n_random_actin)):
        filaments += [(kind, np.array(points) * size_xyz) for points in _random_controls(rng, count)]
    masks = {kind: np.zeros(shape, dtype=bool) for kind in FILAMENT_KINDS}
    density = np.full(shape, _ICE, dtype=np.float32) if image else None
    centre_lines, kinds = [], []
    for kind, controls in filaments:
        curve = _dense_curve(controls)
        radii = tuple(r / config.voxel_size for r in FILAMENT_RADII_ANGSTROM[kind])
        _rasterise(curve, radii, masks[kind], density)
        for piece in _pieces_inside(curve, shape):
            centre_lines.append(piece)
            kinds.append(kind)
    masks["filaments"] = masks["microtubule"] | masks["actin"]
    tomogram = _image(density, config, rng) if image else None
    return FilamentScene(tomogram=tomogram, voxel_size=float(config.voxel_size), masks=masks,
                         centre_lines=centre_lines, kinds=kinds, config=config)


def centre_line_table(scene: FilamentScene) -> CoordinateTable:
    """The true centre lines as one coordinate table (x, y, z, filament_id 1..K, kind)."""
    xyz = np.concatenate(scene.centre_lines) if scene.centre_lines else np.zeros((0, 3))
    ids = np.concatenate([np.full(len(c), i, dtype=np.int64) for i, c in enumerate(scene.centre_lines, 1)] or
                         [np.zeros(0, dtype=np.int64)])
    kinds = np.concatenate([np.array([k] * len(c), dtype=object) for k, c in zip(scene.kinds, scene.centre_lines)]
                           or [np.zeros(0, dtype=object)])
    return CoordinateTable(xyz, {FILAMENT_ID_COLUMN: ids, "kind": kinds}, scene.voxel_size)


def write_filament_scene(scene: FilamentScene, folder, name: str) -> dict:
    """Write ``<name>.mrc`` (if imaged), ``<name>_<kind>.mrc`` masks and ``<name>_centre_lines.csv``; return paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    if scene.tomogram is not None:
        paths["tomogram"] = folder / f"{name}.mrc"
        write_volume(paths["tomogram"], scene.tomogram, scene.voxel_size)
    for kind, mask in scene.masks.items():
        paths[kind] = folder / f"{name}_{kind}.mrc"
        write_volume(paths[kind], mask.astype(np.int8), scene.voxel_size)
    paths["centre_lines"] = folder / f"{name}_centre_lines.csv"
    write_coordinates(paths["centre_lines"], centre_line_table(scene))
    return {k: str(v) for k, v in paths.items()}
