"""Procedural nuclear-envelope tomograms with nuclear pore complexes (NPC), with exact ground truth.

A scene is a piece of a nucleus's edge at a coarse voxel size (2x the usual binning, 26.96 Å):

* the **nuclear envelope**: two bilayers (outer and inner nuclear membrane) ~35 nm apart around the
  perinuclear space, on a large sphere (curved, radius 1.5-2.5x the box) crossing the box;
* **NPC-like pores** spanning it: at each pore the two membranes fuse into the pore membrane (a
  half-torus joining them around a hole ~95 nm across), and an 8-fold scaffold sits in the hole
  (eight spokes spanning the envelope, a cytoplasmic and a nucleoplasmic ring; ~110 nm across),
  its symmetry axis along the envelope's normal;
* **decoys**: the same scaffolds floating free in the cytoplasm or nucleoplasm, away from the
  envelope (what a detector without the envelope context mistakes for pores);
* cytoplasm (outside the sphere) and nucleoplasm (inside, lighter) crowded with small blobs.

It is imaged as the cell phantoms are (:mod:`deepict.synthetic.cells`: low-pass, noise, ±60°
missing wedge about Y, normalisation). Ground truth: masks ``envelope`` (both membranes, the
perinuclear space between them and the pore membrane), ``membrane`` (the bilayers only), ``npc``
(the space each pore's complex fills: a solid cylinder around the scaffold, less the envelope, so
that one NPC is one connected region whose centroid is its centre; not the decoys), ``cytoplasm`` and ``nucleoplasm``; the NPC centres
(the middle of each pore, halfway between the membranes) with their orientation, RELION ZYZ angles
(:mod:`deepict.orientations`) putting the reference's z axis along the envelope's normal, pointing
to the cytoplasm, ``rot`` the scaffold's spin about it.

Lengths in the configuration are in nm (converted with the voxel size); coordinates are 0-based
voxels ``(x, y, z)``, x the last numpy axis.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from deepict.conventions import ANGLE_COLUMNS
from deepict.io import CoordinateTable, write_coordinates, write_volume
from deepict.orientations import direction_to_euler, euler_to_matrix
from deepict.synthetic.cells import ImagingConfig, _grid, _image, _scatter_blobs, _smooth_step

#: The masks of an envelope scene, in this order.
ENVELOPE_MASK_NAMES = ("envelope", "membrane", "npc", "cytoplasm", "nucleoplasm")
#: Number of spokes (and the rotational symmetry) of an NPC scaffold.
NPC_SYMMETRY = 8


@dataclass
class EnvelopeConfig(ImagingConfig):
    """What an envelope tomogram holds and how it is imaged. Lengths in nm unless said otherwise."""

    shape_zyx: tuple = (96, 96, 96)
    voxel_size: float = 26.96
    n_npc: int = 3
    #: Free scaffolds in the cytoplasm / nucleoplasm, not in the envelope (not in the NPC truth).
    n_decoys: int = 1
    #: Distance between the middles of the outer and inner nuclear membranes.
    membrane_gap: float = 35.0
    #: Radius of the pore's hole (to the middle of the pore membrane, ~ half the pore's width).
    pore_radius: float = 47.0
    #: Radius at which the spokes stand, their half-sizes (radial, tangential, along the axis).
    spoke_radius: float = 33.0
    spoke_half_axes: tuple = (11.0, 8.0, 30.0)
    #: The cytoplasmic / nucleoplasmic rings: radius, tube radius, height from the middle.
    ring_radius: float = 42.0
    ring_tube: float = 9.0
    ring_height: float = 24.0
    #: Radius of the envelope's sphere, as a range of multiples of the box's largest side.
    envelope_curvature_range: tuple = (1.5, 2.5)
    #: Volume fraction of cytoplasm and nucleoplasm covered by small blobs.
    crowding: float = 0.05
    seed: int = 0

    def __post_init__(self):
        self.shape_zyx = tuple(int(s) for s in self.shape_zyx)
        if len(self.shape_zyx) != 3 or min(self.shape_zyx) < 32:
            raise ValueError(f"shape_zyx must be three sizes of at least 32 voxels, got {self.shape_zyx}")
        if self.voxel_size <= 0 or self.snr <= 0:
            raise ValueError("voxel_size and snr must be positive")
        if min(self.n_npc, self.n_decoys) < 0:
            raise ValueError("object counts must not be negative")
        if not self.spoke_radius < self.pore_radius:
            raise ValueError("the spokes must stand inside the pore (spoke_radius < pore_radius)")


@dataclass
class EnvelopeScene:
    """A synthetic nuclear-envelope tomogram and its ground truth."""

    tomogram: np.ndarray     #: float32 (z, y, x), zero mean, unit variance
    voxel_size: float
    npc_xyz: np.ndarray      #: (N, 3) NPC centres, x, y, z voxels
    npc_angles: np.ndarray   #: (N, 3) rot, tilt, psi (RELION ZYZ, degrees): z axis along the normal
    npc_normals: np.ndarray  #: (N, 3) unit normals (x, y, z) of the envelope at the NPCs, to the cytoplasm
    masks: dict              #: ENVELOPE_MASK_NAMES -> int8 0/1 (z, y, x)
    decoy_xyz: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    config: EnvelopeConfig | None = None


class _Geometry:
    """The envelope's sphere and the pores: signed distances on the voxel grid (in voxels)."""

    def __init__(self, config: EnvelopeConfig, rng: np.random.Generator):
        self.config, self.rng = config, rng
        self.shape = config.shape_zyx
        self.nm = 10.0 / config.voxel_size  # voxels per nm
        self.z, self.y, self.x = _grid(self.shape)
        nz, ny, nx = self.shape
        centre_of_box = (np.array(self.shape, float) - 1) / 2.0
        # Mostly upright envelope (normal near the xy plane), which the tilt range sees.
        normal = rng.normal(size=3)
        normal[0] *= 0.4
        normal /= np.linalg.norm(normal)
        self.sphere_radius = rng.uniform(*config.envelope_curvature_range) * max(self.shape)
        through = centre_of_box + rng.uniform(-0.1, 0.1, size=3) * np.array(self.shape)
        self.sphere_centre_zyx = through - normal * self.sphere_radius
        dz, dy, dx = (self.z - self.sphere_centre_zyx[0], self.y - self.sphere_centre_zyx[1],
                      self.x - self.sphere_centre_zyx[2])
        #: Height above the envelope's middle surface (positive in the cytoplasm).
        self.height = (np.sqrt(dz ** 2 + dy ** 2 + dx ** 2) - self.sphere_radius).astype(np.float32)
        self.half_gap = 0.5 * config.membrane_gap * self.nm
        #: Signed distance to the perinuclear space's boundary (the membranes' middles), negative inside.
        self.lumen = np.abs(self.height) - self.half_gap

    def normal_at(self, centre_zyx) -> np.ndarray:
        """Unit normal (z, y, x) of the envelope at a point, pointing to the cytoplasm."""
        vector = np.asarray(centre_zyx, float) - self.sphere_centre_zyx
        return vector / np.linalg.norm(vector)

    def local(self, centre_zyx, frame_xyz):
        """Cylindrical coordinates about an axis: (height along it, distance from it, azimuth) per voxel."""
        axis_x, axis_y, axis_z = frame_xyz[:, 2]
        dz, dy, dx = self.z - centre_zyx[0], self.y - centre_zyx[1], self.x - centre_zyx[2]
        height = dx * axis_x + dy * axis_y + dz * axis_z
        u = dx * frame_xyz[0, 0] + dy * frame_xyz[1, 0] + dz * frame_xyz[2, 0]
        v = dx * frame_xyz[0, 1] + dy * frame_xyz[1, 1] + dz * frame_xyz[2, 1]
        return height.astype(np.float32), np.sqrt(u ** 2 + v ** 2).astype(np.float32), np.arctan2(v, u)

    def cut_pore(self, centre_zyx, frame_xyz) -> None:
        """Fuse the membranes around a hole: the pore membrane, a half-torus joining them."""
        height, rho, _ = self.local(centre_zyx, frame_xyz)
        joint = self.config.pore_radius * self.nm + self.half_gap  # the torus's centre line, from the axis
        near = (rho < joint) & (np.abs(height) < 3 * self.half_gap)
        pore = np.sqrt((rho[near] - joint) ** 2 + height[near] ** 2) - self.half_gap
        self.lumen[near] = np.maximum(self.lumen[near], pore)


def _scaffold(geometry: _Geometry, centre_zyx, frame_xyz) -> np.ndarray:
    """Density (0..~1) of an 8-fold NPC scaffold centred at ``centre_zyx``, its axis ``frame_xyz[:, 2]``."""
    cfg, nm = geometry.config, geometry.nm
    height, rho, azimuth = geometry.local(centre_zyx, frame_xyz)
    sector = 2 * np.pi / NPC_SYMMETRY
    offset = np.mod(azimuth + sector / 2, sector) - sector / 2  # azimuth from the nearest spoke
    radial = rho * np.cos(offset) - cfg.spoke_radius * nm
    tangential = rho * np.sin(offset)
    a, b, c = (h * nm for h in cfg.spoke_half_axes)
    spokes = _smooth_step((1.0 - np.sqrt((radial / a) ** 2 + (tangential / b) ** 2 + (height / c) ** 2)) * min(a, b))
    modulation = 0.75 + 0.25 * np.cos(NPC_SYMMETRY * azimuth)
    rings = np.zeros_like(spokes)
    for side in (-1.0, 1.0):
        tube = np.sqrt((rho - cfg.ring_radius * nm) ** 2 + (height - side * cfg.ring_height * nm) ** 2)
        rings = np.maximum(rings, _smooth_step(cfg.ring_tube * nm - tube) * modulation)
    return np.maximum(spokes, 0.9 * rings).astype(np.float32)


def _cylinder(geometry: _Geometry, centre_zyx, frame_xyz) -> np.ndarray:
    """The solid cylinder around the axis that holds a scaffold (rings and spokes)."""
    cfg, nm = geometry.config, geometry.nm
    height, rho, _ = geometry.local(centre_zyx, frame_xyz)
    radius = max(cfg.ring_radius + cfg.ring_tube, cfg.spoke_radius + cfg.spoke_half_axes[0])
    half_height = max(cfg.ring_height + cfg.ring_tube, cfg.spoke_half_axes[2])
    return (rho <= radius * nm) & (np.abs(height) <= half_height * nm)


def _scaffold_extent(config: EnvelopeConfig) -> float:
    """Radius (nm) of the sphere holding a scaffold."""
    lateral = max(config.ring_radius + config.ring_tube, config.spoke_radius + config.spoke_half_axes[0])
    axial = max(config.ring_height + config.ring_tube, config.spoke_half_axes[2])
    return float(np.hypot(lateral, axial))


def _frame(normal_zyx, spin_deg):
    """The angles (rot, tilt, psi) putting a reference's z along the normal, and the matrix (xyz columns)."""
    angles = np.array(direction_to_euler(np.asarray(normal_zyx)[::-1], rot=spin_deg), float)
    return angles, euler_to_matrix(*angles)


def _place_pores(geometry: _Geometry, count: int) -> list:
    """NPC centres (z, y, x) on the envelope's middle surface, inside the box, not overlapping."""
    cfg, rng = geometry.config, geometry.rng
    shape = np.array(geometry.shape, float)
    reach = _scaffold_extent(cfg) * geometry.nm
    margin = 0.35 * reach
    spacing = 2.1 * reach
    candidates = np.argwhere(np.abs(geometry.height) < 0.5)
    placed = []
    for _ in range(40 * max(count, 1)):
        if len(placed) == count or not len(candidates):
            break
        point = candidates[rng.integers(len(candidates))].astype(float)
        point = geometry.sphere_centre_zyx + geometry.normal_at(point) * geometry.sphere_radius
        if np.any(point < margin) or np.any(point > shape - 1 - margin):
            continue
        if all(np.linalg.norm(point - other) >= spacing for other in placed):
            placed.append(point)
    return placed


def _place_decoys(geometry: _Geometry, count: int, taken: list) -> list:
    """Free scaffold centres (z, y, x) away from the envelope and the pores, inside the box."""
    cfg, rng = geometry.config, geometry.rng
    shape = np.array(geometry.shape, float)
    reach = _scaffold_extent(cfg) * geometry.nm
    placed = []
    for _ in range(200 * max(count, 1)):
        if len(placed) == count:
            break
        point = rng.uniform(0.3 * reach, shape - 1 - 0.3 * reach)
        clearance = abs(geometry.height[tuple(np.round(point).astype(int))]) - geometry.half_gap
        if clearance < reach + 2:
            continue
        if all(np.linalg.norm(point - other) >= 2.1 * reach for other in taken + placed):
            placed.append(point)
    return placed


def make_envelope_scene(config: EnvelopeConfig | None = None) -> EnvelopeScene:
    """Build one nuclear-envelope tomogram with its NPCs, decoys, masks and NPC centres + orientations."""
    config = config or EnvelopeConfig()
    rng = np.random.default_rng(config.seed)
    geometry = _Geometry(config, rng)
    nm = geometry.nm
    pores = _place_pores(geometry, config.n_npc)
    decoys = _place_decoys(geometry, config.n_decoys, pores)

    density = np.zeros(geometry.shape, np.float32)
    npc = np.zeros(geometry.shape, bool)
    angles, normals = [], []
    for centre in pores:
        normal = geometry.normal_at(centre)
        pose, frame = _frame(normal, rng.uniform(0, 360.0 / NPC_SYMMETRY))
        geometry.cut_pore(centre, frame)
        scaffold = _scaffold(geometry, centre, frame)
        np.maximum(density, scaffold, out=density)
        npc |= _cylinder(geometry, centre, frame)
        angles.append(pose)
        normals.append(normal[::-1])
    for centre in decoys:
        pose = np.array([rng.uniform(0, 360), np.degrees(np.arccos(rng.uniform(-1, 1))), rng.uniform(-180, 180)])
        np.maximum(density, _scaffold(geometry, centre, euler_to_matrix(*pose)), out=density)

    # Membranes: a bilayer (two head-group lines, unresolved at this voxel size) on each side of the lumen.
    lumen = geometry.lumen
    leaflet = 2.0 * nm  # head groups ±2 nm from the bilayer's middle
    width = max(0.8, 1.0 * nm)
    membrane_density = np.zeros_like(density)
    for side in (-1.0, 1.0):
        membrane_density += np.exp(-((lumen - side * leaflet) ** 2) / (2 * width ** 2))
    density += 0.9 * np.minimum(membrane_density, 1.2) * (density < 0.3)
    membrane_half = max(1.0, 3.0 * nm)
    membrane = np.abs(lumen) <= membrane_half
    envelope = lumen <= membrane_half
    npc &= ~envelope
    cytoplasm = (geometry.height > 0) & ~envelope & ~npc
    nucleoplasm = (geometry.height <= 0) & ~envelope & ~npc

    # Crowded cytoplasm, a lighter and finer-grained nucleoplasm, the perinuclear space nearly empty.
    occupied = (density > 0.1) | envelope
    free = ~ndimage.binary_dilation(occupied, iterations=2)
    _scatter_blobs(rng, density, free & cytoplasm, config.crowding, (1.0, 1.5, 2.0), (0.35, 0.7))
    _scatter_blobs(rng, density, free & nucleoplasm, 0.6 * config.crowding, (1.0, 1.5), (0.25, 0.5))
    density += 0.25 + np.float32(0.05) * (geometry.height > 0)

    tomogram = _image(density, config, rng)
    masks = {"envelope": envelope, "membrane": membrane, "npc": npc, "cytoplasm": cytoplasm,
             "nucleoplasm": nucleoplasm}
    as_rows = lambda rows: np.asarray(rows, dtype=np.float64).reshape(-1, 3)  # noqa: E731
    return EnvelopeScene(tomogram=tomogram, voxel_size=float(config.voxel_size),
                         npc_xyz=as_rows([p[::-1] for p in pores]), npc_angles=as_rows(angles),
                         npc_normals=as_rows(normals), masks={k: v.astype(np.int8) for k, v in masks.items()},
                         decoy_xyz=as_rows([p[::-1] for p in decoys]), config=config)


def write_envelope_scene(scene: EnvelopeScene, folder, name: str) -> dict:
    """Write the tomogram, the NPC table and the masks; return {kind: path}.

    Files: ``<name>.mrc``, ``<name>_npc.csv`` (x, y, z, rot, tilt, psi), ``<name>_decoys.csv``
    (x, y, z) and ``<name>_<mask>.mrc`` for each of :data:`ENVELOPE_MASK_NAMES`, all with the voxel size.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vs = scene.voxel_size
    paths = {"tomogram": folder / f"{name}.mrc", "npc_coords": folder / f"{name}_npc.csv",
             "decoys": folder / f"{name}_decoys.csv"}
    write_volume(paths["tomogram"], scene.tomogram, vs)
    columns = {column: scene.npc_angles[:, i] for i, column in enumerate(ANGLE_COLUMNS)}
    write_coordinates(paths["npc_coords"], CoordinateTable(scene.npc_xyz, columns, vs))
    write_coordinates(paths["decoys"], CoordinateTable(scene.decoy_xyz, {}, vs))
    for mask in ENVELOPE_MASK_NAMES:
        paths[mask] = folder / f"{name}_{mask}.mrc"
        write_volume(paths[mask], scene.masks[mask], vs)
    return {k: str(v) for k, v in paths.items()}


def make_envelope_dataset(folder, n_tomograms: int = 3, config: EnvelopeConfig | None = None, seed: int = 0,
                          prefix: str = "envelope") -> list:
    """Write ``n_tomograms`` independent scenes ``<prefix>_000`` … into ``folder``; one {kind: path} each
    (with the scene's ``name``)."""
    config = config or EnvelopeConfig()
    written = []
    for index in range(n_tomograms):
        sub_seed = int(np.random.SeedSequence([int(seed), index]).generate_state(1)[0])
        name = f"{prefix}_{index:03d}"
        paths = write_envelope_scene(make_envelope_scene(dataclasses.replace(config, seed=sub_seed)), folder, name)
        paths["name"] = name
        written.append(paths)
    return written
