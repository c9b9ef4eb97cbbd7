"""Procedural cell-like tomograms with exact ground truth, for the demo and the tests.

A phantom is a piece of a cryo-FIB lamella at roughly 4x binning (13.48 Å/voxel): a slab of ice
(vacuum above and below), crossed by membranes (an organelle with a double membrane, vesicles, an
ER-like cisterna), filled with a crowded cytosol, and holding two particle species to pick:

``ribosome``
    two unequal dense subunits (a large sphere and a smaller flattened ellipsoid), ~27 nm across;
``fas``
    a hollow barrel (dense ellipsoidal shell, light interior, a central wheel), ~26 x 23 nm;

plus distractors that must *not* be picked (proteasome-like rods, TRiC-like open rings, globular
complexes) and many small blobs (other proteins). Every particle has a random orientation, none
overlaps another, and all lie in the cytosol: never inside the organelle, a vesicle lumen, a
membrane or the vacuum outside the lamella. Protein is dark, as in real data. The volume is
low-pass filtered (a crude stand-in for the CTF envelope), noise is added, a ±60° missing wedge
about Y is applied in Fourier space, and the result is normalised to zero mean and unit variance.

Everything is procedural and seeded: the same :class:`PhantomConfig` gives the same phantom, and
the particle templates depend only on the particle radii, so every phantom made with the same
radii holds the same "molecules" (train on some phantoms, pick on another).

Coordinates are 0-based voxel positions ``(x, y, z)`` with x the last numpy axis; orientations are
ZYZ Euler angles in degrees with the convention density(x) = T(R^T (x - c)), R = Rz(rot) Ry(tilt)
Rz(psi) acting on (x, y, z) column vectors about the template's centre of mass.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.fft
from scipy import ndimage
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from deepict.conventions import CLASS_COLUMN
from deepict.io import CoordinateTable, write_coordinates, write_volume

#: The classes written as coordinate tables, in this order.
PARTICLE_CLASSES = ("ribosome", "fas")
#: The compartment masks, in this order.
MASK_NAMES = ("membrane", "cytosol", "organelles")

# Half-distance between the two dark lines (head groups) of a bilayer, and their Gaussian width,
# in voxels (≈ 4 nm between leaflets at 13.48 Å/voxel).
_LEAFLET_OFFSET = 1.5
_LEAFLET_SIGMA = 0.8
# Half-thickness of the band written to the membrane mask.
_MEMBRANE_HALF = 2.5
# Density scale: solid protein = 1 (ribosomes are a little denser), ice = _ICE, vacuum = 0.
_ICE = 0.25
_FFT_WORKERS = 2


@dataclass
class ImagingConfig:
    """How a scene is imaged (:func:`_image`): noise, background, missing wedge and resolution. Every
    scene's configuration (cells, filaments, nuclear envelopes) extends it."""

    #: Solid-protein contrast (1.0) over the standard deviation of the noise after the low-pass and
    #: the wedge: low enough that a naive detector (darkest minima after a Gaussian) confuses the
    #: particles with the distractors and the crowding, while a small 3D U-Net tells them apart.
    snr: float = 1.5
    #: Strength of the smooth (low-frequency) background fluctuation, relative to protein contrast.
    background_fluctuation: float = 0.2
    #: Half-angle of the tilt range (±60° tilt about Y -> a missing wedge around Z).
    tilt_range_deg: float = 60.0
    #: Gaussian low-pass width in cycles/voxel (Nyquist = 0.5) of the signal: the resolution envelope.
    lowpass: float = 0.22
    #: Gaussian low-pass width of the noise (wider than the signal's: finer-grained, as after
    #: weighted back-projection).
    noise_lowpass: float = 0.35


@dataclass
class PhantomConfig(ImagingConfig):
    """What a synthetic tomogram holds and how it is imaged. Lengths are in voxels."""

    shape_zyx: tuple = (96, 160, 160)
    voxel_size: float = 13.48
    n_ribosomes: int = 40
    n_fas: int = 12
    #: Other complexes (not to be picked): proteasome-like, TRiC-like and globular.
    n_distractors: int = 40
    #: Overall radius of a ribosome (80S ≈ 27 nm across -> 10 voxels at 13.48 Å).
    ribosome_radius: float = 10.0
    #: Half-length of the FAS barrel along its axis (≈ 26 nm long, 23 nm wide).
    fas_radius: float = 10.0
    #: Organelles with a double membrane (mitochondrion / nucleus-like); 0 or 1 is typical.
    n_organelles: int = 1
    n_vesicles: int = 3
    vesicle_radius_range: tuple = (7.0, 15.0)
    #: ER-like cisternae (two bilayers around a thin lumen) crossing the volume.
    n_sheets: int = 1
    #: Volume fraction of the cytosol occupied by small blobs (other proteins).
    crowding: float = 0.06
    #: Lamella thickness as a fraction of the z size: what lies above and below is vacuum.
    lamella_fraction: float = 0.8
    #: Largest tilt of the lamella surfaces with respect to the xy plane, in degrees.
    lamella_tilt_deg: float = 4.0
    seed: int = 0

    def __post_init__(self):
        self.shape_zyx = tuple(int(s) for s in self.shape_zyx)
        if len(self.shape_zyx) != 3 or min(self.shape_zyx) < 8:
            raise ValueError(f"shape_zyx must be three sizes of at least 8 voxels, got {self.shape_zyx}")
        if self.voxel_size <= 0 or self.snr <= 0:
            raise ValueError("voxel_size and snr must be positive")
        if not 0 < self.lamella_fraction <= 1:
            raise ValueError("lamella_fraction must be in (0, 1]")
        if min(self.n_ribosomes, self.n_fas, self.n_distractors, self.n_organelles,
               self.n_vesicles, self.n_sheets) < 0:
            raise ValueError("object counts must not be negative")


@dataclass
class Phantom:
    """A synthetic tomogram and its ground truth."""

    tomogram: np.ndarray            #: float32 (z, y, x), zero mean, unit variance
    voxel_size: float
    coords: dict                    #: class -> (N, 3) float xyz, 0-based voxels
    angles: dict                    #: class -> (N, 3) ZYZ Euler angles in degrees (rot, tilt, psi)
    masks: dict                     #: 'membrane', 'cytosol', 'organelles' -> int8 0/1 (z, y, x)
    distractors: dict = field(default_factory=dict)  #: other complexes: class -> (N, 3) xyz
    config: PhantomConfig | None = None


# --------------------------------------------------------------------------------------------
# Particle templates (built once per radius; identical in every phantom)
# --------------------------------------------------------------------------------------------

def _smooth_step(signed_inside, width=0.6):
    """~1 inside, ~0 outside, from a signed distance that is positive inside."""
    return 0.5 * (1.0 + np.tanh(signed_inside / width))


def _template_grid(extent):
    half = int(np.ceil(extent)) + 2
    axis = np.arange(-half, half + 1, dtype=np.float32)
    z, y, x = np.meshgrid(axis, axis, axis, indexing="ij")
    return x, y, z


def _ellipsoid_inside(x, y, z, axes):
    """Approximate signed distance to an axis-aligned ellipsoid surface, positive inside."""
    ax, ay, az = axes
    f = np.sqrt((x / ax) ** 2 + (y / ay) ** 2 + (z / az) ** 2)
    grad = np.sqrt((x / ax ** 2) ** 2 + (y / ay ** 2) ** 2 + (z / az ** 2) ** 2)
    safe = grad > 1e-6
    ratio = np.where(safe, f / np.where(safe, grad, 1.0), min(axes))   # -> the semi-axis at the centre
    return (1.0 - f) * ratio


def _texture(shape, seed, sigma=1.2):
    noise = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    noise = ndimage.gaussian_filter(noise, sigma)
    return noise / max(float(noise.std()), 1e-6)


def _centre_on_mass(build, extent):
    """Evaluate ``build(x, y, z)`` on a cube, then again shifted so the centre of mass is central."""
    x, y, z = _template_grid(extent)
    density = build(x, y, z)
    total = density.sum()
    shift = [float((density * c).sum() / total) for c in (x, y, z)]
    return build(x + shift[0], y + shift[1], z + shift[2]).astype(np.float32)


def _ribosome_template(radius):
    r = float(radius)
    texture = None

    def build(x, y, z):
        nonlocal texture
        large = _smooth_step(0.72 * r - np.sqrt(x ** 2 + y ** 2 + (z + 0.22 * r) ** 2))
        small = _smooth_step(_ellipsoid_inside(x - 0.12 * r, y, z - 0.56 * r, (0.62 * r, 0.48 * r, 0.36 * r)))
        density = np.maximum(large, small)
        if texture is None:
            texture = _texture(x.shape, seed=80)
        return density * (1.0 + 0.12 * texture)

    return 1.1 * _centre_on_mass(build, 1.05 * r)


def _fas_template(radius):
    r = float(radius)
    outer = (0.86 * r, 0.86 * r, r)
    thickness = 0.24 * r

    def build(x, y, z):
        shell_out = _smooth_step(_ellipsoid_inside(x, y, z, outer))
        inner = tuple(a - thickness for a in outer)
        shell_in = _smooth_step(_ellipsoid_inside(x, y, z, inner))
        shell = np.clip(shell_out - shell_in, 0.0, 1.0)
        # Central wheel: an equatorial ring, leaving a hole at the axis.
        rho = np.sqrt(x ** 2 + y ** 2)
        wheel = _smooth_step(0.11 * r - np.abs(z)) * _smooth_step(rho - 0.25 * r) * shell_in
        # Six-fold modulation of the domes (the arches of the real barrel).
        phi = np.arctan2(y, x)
        arches = 0.8 + 0.2 * np.cos(3.0 * phi)
        return np.maximum(shell * arches, 0.9 * wheel)

    return _centre_on_mass(build, 1.05 * r)


def _proteasome_template(radius):
    r = float(radius)

    def build(x, y, z):
        rho = np.sqrt(x ** 2 + y ** 2)
        body = _smooth_step(0.5 * r - rho) * _smooth_step(0.8 * r - np.abs(z))
        rings = 0.85 + 0.15 * np.cos(2 * np.pi * z / (0.4 * r))
        return 0.9 * body * rings

    return _centre_on_mass(build, 0.85 * r)


def _tric_template(radius):
    r = float(radius)

    def build(x, y, z):
        rho = np.sqrt(x ** 2 + y ** 2)
        wall = _smooth_step(0.62 * r - rho) * _smooth_step(rho - 0.3 * r)
        return 0.9 * wall * _smooth_step(0.68 * r - np.abs(z))

    return _centre_on_mass(build, 0.9 * r)


def _globular_template(radius, axes_fraction, seed):
    r = float(radius)
    axes = tuple(a * r for a in axes_fraction)

    def build(x, y, z):
        body = _smooth_step(_ellipsoid_inside(x, y, z, axes))
        bump = _smooth_step(_ellipsoid_inside(x - 0.6 * axes[0], y, z, (0.45 * axes[0],) * 3))
        density = np.maximum(body, bump)
        return 0.85 * density * (1.0 + 0.1 * _texture(x.shape, seed))

    return _centre_on_mass(build, max(axes) + 0.3 * axes[0])


_TEMPLATE_CACHE: dict = {}


def particle_templates(ribosome_radius=10.0, fas_radius=10.0) -> dict:
    """Unrotated density templates (cubes, density ≥ 0, protein = ~1) for every species."""
    key = (float(ribosome_radius), float(fas_radius))
    if key not in _TEMPLATE_CACHE:
        r = float(ribosome_radius)
        _TEMPLATE_CACHE[key] = {
            "ribosome": _ribosome_template(r),
            "fas": _fas_template(fas_radius),
            "proteasome": _proteasome_template(r),
            "tric": _tric_template(r),
            "globular_a": _globular_template(0.75 * r, (0.8, 0.65, 0.55), seed=11),
            "globular_b": _globular_template(0.75 * r, (0.6, 0.6, 0.9), seed=12),
        }
    return _TEMPLATE_CACHE[key]


def _template_radius(template, threshold=0.3):
    """Radius of the sphere around the template centre that holds all its density above ``threshold``."""
    idx = np.argwhere(template > threshold)
    centre = (np.array(template.shape) - 1) / 2.0
    return float(np.sqrt(((idx - centre) ** 2).sum(axis=1)).max()) if len(idx) else 1.0


# --------------------------------------------------------------------------------------------
# Rendering helpers
# --------------------------------------------------------------------------------------------

def _paste(volume, block, corner):
    """Add ``block`` into ``volume`` with its [0, 0, 0] voxel at ``corner`` (cropped at the borders)."""
    dst, src = [], []
    for c, n, size in zip(corner, block.shape, volume.shape):
        lo, hi = max(c, 0), min(c + n, size)
        if hi <= lo:
            return
        dst.append(slice(lo, hi))
        src.append(slice(lo - c, hi - c))
    volume[tuple(dst)] += block[tuple(src)]


def _paste_rotated(volume, template, rotation, centre_xyz):
    """Add ``template`` rotated by ``rotation`` (xyz frame) with its centre at ``centre_xyz``."""
    shape = np.array(template.shape)
    t_centre = (shape - 1) / 2.0
    p_zyx = np.asarray(centre_xyz, dtype=np.float64)[::-1]
    corner = np.round(p_zyx).astype(int) - (shape - 1) // 2
    r_zyx = rotation.as_matrix()[::-1, ::-1]
    matrix = r_zyx.T
    offset = t_centre + matrix @ (corner - p_zyx)
    block = ndimage.affine_transform(template, matrix, offset=offset, output_shape=tuple(shape),
                                     order=1, mode="constant", cval=0.0)
    _paste(volume, block, corner)


def _bilayer(signed_distance, surface_offset=0.0):
    """Two dark head-group lines around the surface ``signed_distance == surface_offset``."""
    d = signed_distance - surface_offset
    s2 = 2.0 * _LEAFLET_SIGMA ** 2
    return np.exp(-((d - _LEAFLET_OFFSET) ** 2) / s2) + np.exp(-((d + _LEAFLET_OFFSET) ** 2) / s2)


def _grid(shape):
    z = np.arange(shape[0], dtype=np.float32)[:, None, None]
    y = np.arange(shape[1], dtype=np.float32)[None, :, None]
    x = np.arange(shape[2], dtype=np.float32)[None, None, :]
    return z, y, x


def _random_rotation(rng):
    return Rotation.random(random_state=rng)


class _Scene:
    """Membrane-bounded compartments: signed distances, masks and membrane density."""

    def __init__(self, config: PhantomConfig, rng: np.random.Generator):
        self.config = config
        self.rng = rng
        self.shape = config.shape_zyx
        self.z, self.y, self.x = _grid(self.shape)
        self.density = np.zeros(self.shape, np.float32)
        # Distance from each voxel to the nearest non-cytosol voxel (capped), for placing particles.
        self.clearance = np.full(self.shape, 64.0, np.float32)
        self.organelles = np.zeros(self.shape, bool)
        self.membrane = np.zeros(self.shape, bool)
        self.organelle_interior = np.zeros(self.shape, bool)   # matrix of the big organelles
        self._lamella()

    # -- lamella --------------------------------------------------------------------------
    def _lamella(self):
        cfg, rng = self.config, self.rng
        nz, ny, nx = self.shape
        thickness = cfg.lamella_fraction * nz
        slope = np.tan(np.radians(cfg.lamella_tilt_deg)) * rng.uniform(-1, 1, size=2)
        mid = (nz - 1) / 2.0 + rng.uniform(-0.05, 0.05) * nz
        plane = mid + slope[0] * (self.x - (nx - 1) / 2.0) + slope[1] * (self.y - (ny - 1) / 2.0)
        self.lamella_depth = (thickness / 2.0 - np.abs(self.z - plane)).astype(np.float32)
        if cfg.lamella_fraction >= 1.0:
            self.lamella_depth[...] = 1e3
        self.lamella = self.lamella_depth > 0
        np.minimum(self.clearance, self.lamella_depth, out=self.clearance)

    # -- compartments ---------------------------------------------------------------------
    def _add_compartment(self, signed, membranes, outer):
        """Record a compartment given its signed distance (negative inside).

        ``membranes``: surface offsets of its bilayers; ``outer``: offset of its outermost surface.
        """
        band = np.zeros(self.shape, bool)
        for offset in membranes:
            distance = np.abs(signed - offset)
            band |= distance <= _MEMBRANE_HALF
            near = np.nonzero(distance < 5.0)
            self.density[near] += 1.1 * _bilayer(signed[near], offset)
        self.membrane |= band
        self.organelles |= band | (signed < outer)
        np.minimum(self.clearance, signed - outer - _MEMBRANE_HALF, out=self.clearance)

    def _ellipsoid_distance(self, centre_zyx, axes_xyz, rotation):
        dz, dy, dx = self.z - centre_zyx[0], self.y - centre_zyx[1], self.x - centre_zyx[2]
        m = rotation.as_matrix().T.astype(np.float32)   # body = R^T (p - c), in xyz
        bx = m[0, 0] * dx + m[0, 1] * dy + m[0, 2] * dz
        by = m[1, 0] * dx + m[1, 1] * dy + m[1, 2] * dz
        bz = m[2, 0] * dx + m[2, 1] * dy + m[2, 2] * dz
        return -_ellipsoid_inside(bx, by, bz, axes_xyz)

    def add_organelle(self):
        nz, ny, nx = self.shape
        rng = self.rng
        lateral = min(ny, nx)
        axes = (rng.uniform(0.35, 0.45) * lateral, rng.uniform(0.28, 0.38) * lateral, max(0.6 * nz, 0.4 * lateral))
        angle = rng.uniform(0, 2 * np.pi)
        centre = np.array([(nz - 1) / 2.0 + rng.uniform(-0.1, 0.1) * nz,
                           (ny - 1) / 2.0 + 0.5 * ny * np.sin(angle),
                           (nx - 1) / 2.0 + 0.5 * nx * np.cos(angle)])
        rotation = Rotation.from_euler("z", rng.uniform(0, 360), degrees=True)
        signed = self._ellipsoid_distance(centre, axes, rotation)
        gap = rng.uniform(5.0, 7.0)   # intermembrane space
        self._add_compartment(signed, membranes=(0.0, -gap), outer=0.0)
        self.organelle_interior |= signed < -gap - _MEMBRANE_HALF

    def add_vesicle(self):
        nz, ny, nx = self.shape
        rng = self.rng
        lo, hi = self.config.vesicle_radius_range
        for _ in range(50):
            radius = rng.uniform(lo, hi)
            centre = rng.uniform([0, 0, 0], [nz - 1, ny - 1, nx - 1])
            c = tuple(int(round(v)) for v in centre)
            # The whole vesicle, membrane included, must sit in free cytosol.
            if self.clearance[c] < radius + _MEMBRANE_HALF + 2 or not self.lamella[c]:
                continue
            signed = np.sqrt((self.z - centre[0]) ** 2 + (self.y - centre[1]) ** 2 + (self.x - centre[2]) ** 2) - radius
            self._add_compartment(signed, membranes=(0.0,), outer=0.0)
            return True
        return False

    def add_sheet(self):
        nz, ny, nx = self.shape
        rng = self.rng
        for _ in range(50):
            point = rng.uniform([0, 0, 0], [nz - 1, ny - 1, nx - 1])
            c = tuple(int(round(v)) for v in point)
            if self.clearance[c] < 8:
                continue
            normal = rng.normal(size=3)
            normal[0] *= 0.4            # mostly upright sheets, which the tilt range can see
            normal /= np.linalg.norm(normal)
            big = rng.uniform(1.5, 3.0) * max(ny, nx)
            centre = point - normal * big
            signed = np.abs(np.sqrt((self.z - centre[0]) ** 2 + (self.y - centre[1]) ** 2
                                    + (self.x - centre[2]) ** 2) - big)
            lumen = rng.uniform(2.5, 3.5)   # half-width of the lumen
            signed = signed - lumen         # negative inside the lumen
            # Stop at the organelle: an ER sheet abutting it, not crossing it.
            signed[self.organelles] = 1e3
            self._add_compartment(signed, membranes=(0.0,), outer=0.0)
            return True
        return False

    def finish(self):
        self.organelles &= self.lamella
        self.membrane &= self.lamella
        self.organelle_interior &= self.lamella
        self.cytosol = self.lamella & ~self.organelles
        self.clearance[~self.cytosol] = -1.0


# --------------------------------------------------------------------------------------------
# Placement
# --------------------------------------------------------------------------------------------

def _place(rng, clearance, radii, placed_xyz, placed_r, attempts=512):
    """Random sequential addition of spheres of ``radii`` in free space (centre clearance ≥ 0.9 radius).

    ``placed_xyz`` / ``placed_r`` are lists of already placed spheres, extended in place.
    Returns the indices (into ``radii``) that found a place, in order.
    """
    accepted = []
    if len(radii) == 0:
        return accepted
    shape = np.array(clearance.shape)
    flat = clearance.ravel()
    free = np.flatnonzero(flat >= 0.9 * min(radii))
    if len(free) == 0:
        return accepted
    for i, radius in enumerate(radii):
        picks = free[rng.integers(0, len(free), size=attempts)]
        picks = picks[flat[picks] >= 0.9 * radius]
        if len(picks) == 0:
            continue
        zyx = np.stack(np.unravel_index(picks, clearance.shape), axis=1).astype(np.float64)
        zyx = np.clip(zyx + rng.uniform(-0.5, 0.5, size=zyx.shape), 0, shape - 1)
        xyz = zyx[:, ::-1]
        if placed_xyz:
            others = np.asarray(placed_xyz)
            dist = np.sqrt(((xyz[:, None, :] - others[None, :, :]) ** 2).sum(-1))
            ok = np.all(dist >= radius + np.asarray(placed_r)[None, :], axis=1)
        else:
            ok = np.ones(len(xyz), bool)
        if not ok.any():
            continue
        placed_xyz.append(xyz[np.argmax(ok)])
        placed_r.append(radius)
        accepted.append(i)
    return accepted


def _blob_bank(rng, radii, count=6):
    """Small random ellipsoidal blobs (other proteins) of the given radii."""
    bank = []
    for r in radii:
        for _ in range(count):
            axes = tuple(r * rng.uniform(0.7, 1.2, size=3))
            x, y, z = _template_grid(max(axes))
            rot = _random_rotation(rng).as_matrix().T
            bx = rot[0, 0] * x + rot[0, 1] * y + rot[0, 2] * z
            by = rot[1, 0] * x + rot[1, 1] * y + rot[1, 2] * z
            bz = rot[2, 0] * x + rot[2, 1] * y + rot[2, 2] * z
            bank.append((r, _smooth_step(_ellipsoid_inside(bx, by, bz, axes)).astype(np.float32)))
    return bank


def _scatter_blobs(rng, volume, allowed, fraction, radii, amplitude, avoid_tree=None, avoid_r=None):
    """Paste small blobs at random voxels of ``allowed`` until ~``fraction`` of it is covered."""
    n_allowed = int(allowed.sum())
    if n_allowed == 0 or fraction <= 0:
        return
    bank = _blob_bank(rng, radii)
    mean_volume = np.mean([b.sum() for _, b in bank])
    n = int(fraction * n_allowed / max(mean_volume, 1.0))
    if n == 0:
        return
    positions = np.argwhere(allowed)
    picks = positions[rng.integers(0, len(positions), size=n)]
    choice = rng.integers(0, len(bank), size=n)
    if avoid_tree is not None:
        dist, idx = avoid_tree.query(picks[:, ::-1].astype(np.float64))
        keep = dist >= np.asarray(avoid_r)[np.minimum(idx, len(avoid_r) - 1)] + np.array([bank[c][0] for c in choice])
        picks, choice = picks[keep], choice[keep]
    amplitudes = rng.uniform(*amplitude, size=len(picks)).astype(np.float32)
    for p, c, a in zip(picks, choice, amplitudes):
        block = bank[c][1]
        _paste(volume, a * block, p - (np.array(block.shape) - 1) // 2)


# --------------------------------------------------------------------------------------------
# Imaging
# --------------------------------------------------------------------------------------------

def _frequency_grids(shape):
    kz = scipy.fft.fftfreq(shape[0]).astype(np.float32)[:, None, None]
    ky = scipy.fft.fftfreq(shape[1]).astype(np.float32)[None, :, None]
    kx = scipy.fft.rfftfreq(shape[2]).astype(np.float32)[None, None, :]
    return kz, ky, kx


def missing_wedge_mask(shape_zyx, tilt_range_deg=60.0) -> np.ndarray:
    """rfftn-layout (z, y, x//2+1) 0/1 mask of the Fourier components a ±tilt series about Y measures."""
    kz, ky, kx = _frequency_grids(shape_zyx)
    measured = np.abs(kz) <= np.tan(np.radians(tilt_range_deg)) * np.abs(kx) + 1e-6
    return np.broadcast_to(measured, (shape_zyx[0], shape_zyx[1], shape_zyx[2] // 2 + 1)).astype(np.float32)


def _image(density, config: PhantomConfig, rng):
    """Low-pass, add noise (white + a smooth background), apply the wedge and normalise."""
    shape = density.shape
    kz, ky, kx = _frequency_grids(shape)
    k2 = kz ** 2 + ky ** 2 + kx ** 2
    wedge = missing_wedge_mask(shape, config.tilt_range_deg)
    transfer = wedge * np.exp(-k2 / (2.0 * config.lowpass ** 2)).astype(np.float32)
    noise_transfer = wedge * np.exp(-k2 / (2.0 * config.noise_lowpass ** 2)).astype(np.float32)
    # Standard deviation, after a filter, of unit white noise (Parseval over the full spectrum).
    weights = np.full(shape[2] // 2 + 1, 2.0, np.float32)
    weights[0] = 1.0
    if shape[2] % 2 == 0:
        weights[-1] = 1.0
    noise_gain = float(np.sqrt((np.square(noise_transfer) * weights).sum() / density.size))
    noise_std = 1.0 / config.snr / max(noise_gain, 1e-12)
    smooth = wedge * np.exp(-k2 / (2.0 * 0.02 ** 2)).astype(np.float32)
    smooth_gain = float(np.sqrt((np.square(smooth) * weights).sum() / density.size))
    smooth_std = config.background_fluctuation / max(smooth_gain, 1e-12)

    spectrum = scipy.fft.rfftn(-density, workers=_FFT_WORKERS)
    spectrum *= transfer
    noise = scipy.fft.rfftn(rng.standard_normal(shape, dtype=np.float32), workers=_FFT_WORKERS)
    spectrum += noise * (noise_std * noise_transfer + smooth_std * smooth)
    del noise
    image = scipy.fft.irfftn(spectrum, s=shape, workers=_FFT_WORKERS).astype(np.float32, copy=False)
    image -= image.mean()
    image /= max(float(image.std()), 1e-12)
    return image


# --------------------------------------------------------------------------------------------
# The phantom
# --------------------------------------------------------------------------------------------

def make_phantom(config: PhantomConfig | None = None) -> Phantom:
    """Build one synthetic tomogram with its particle coordinates and compartment masks."""
    config = config or PhantomConfig()
    rng = np.random.default_rng(config.seed)
    scene = _Scene(config, rng)
    for _ in range(config.n_organelles):
        scene.add_organelle()
    for _ in range(config.n_sheets):
        scene.add_sheet()
    for _ in range(config.n_vesicles):
        scene.add_vesicle()
    scene.finish()

    density = scene.density
    density += _ICE * _smooth_step(scene.lamella_depth, 1.0).astype(np.float32)

    templates = particle_templates(config.ribosome_radius, config.fas_radius)
    species = (["ribosome"] * config.n_ribosomes + ["fas"] * config.n_fas
               + list(rng.choice(["proteasome", "tric", "globular_a", "globular_b"], size=config.n_distractors)))
    radii = {name: _template_radius(t) + 0.5 for name, t in templates.items()}
    placed_xyz, placed_r = [], []
    accepted = _place(rng, scene.clearance, [radii[s] for s in species], placed_xyz, placed_r)
    coords = {name: [] for name in PARTICLE_CLASSES}
    angles = {name: [] for name in PARTICLE_CLASSES}
    distractors = {}
    for i, xyz in zip(accepted, placed_xyz):
        name = species[i]
        rotation = _random_rotation(rng)
        _paste_rotated(density, templates[name], rotation, xyz)
        if name in coords:
            coords[name].append(xyz)
            angles[name].append(rotation.as_euler("ZYZ", degrees=True) % 360.0)
        else:
            distractors.setdefault(name.split("_")[0], []).append(xyz)

    # Crowded cytosol (small blobs avoiding the particles) and a granular organelle matrix.
    tree = cKDTree(np.asarray(placed_xyz)) if placed_xyz else None
    _scatter_blobs(rng, density, scene.clearance >= 2.0, config.crowding, (2.0, 3.0, 4.5), (0.35, 0.7),
                   avoid_tree=tree, avoid_r=placed_r)
    # Organelle matrix: denser (mitochondrion-like) or lighter (vacuole-like) than the cytosol.
    density += np.float32(rng.uniform(-0.12, 0.15)) * scene.organelle_interior
    _scatter_blobs(rng, density, scene.organelle_interior, 1.5 * config.crowding, (1.5, 2.5), (0.3, 0.6))
    density *= _smooth_step(scene.lamella_depth, 1.0).astype(np.float32)

    tomogram = _image(density, config, rng)
    masks = {"membrane": scene.membrane.astype(np.int8),
             "cytosol": scene.cytosol.astype(np.int8),
             "organelles": scene.organelles.astype(np.int8)}
    as_array = lambda rows: np.asarray(rows, dtype=np.float64).reshape(-1, 3)  # noqa: E731
    return Phantom(tomogram=tomogram, voxel_size=float(config.voxel_size),
                   coords={k: as_array(v) for k, v in coords.items()},
                   angles={k: as_array(v) for k, v in angles.items()},
                   masks=masks,
                   distractors={k: as_array(v) for k, v in distractors.items()},
                   config=config)


def write_phantom(phantom: Phantom, folder, name: str) -> dict:
    """Write the tomogram, coordinate tables and masks; return {kind: path}.

    Files: ``<name>.mrc``, ``<name>_ribosome.csv``, ``<name>_fas.csv`` (x, y, z, rot, tilt, psi),
    ``<name>_distractors.csv`` (x, y, z, class), ``<name>_membrane.mrc``, ``<name>_cytosol.mrc``,
    ``<name>_organelles.mrc``; every file carries the voxel size.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vs = phantom.voxel_size
    paths = {"tomogram": folder / f"{name}.mrc"}
    write_volume(paths["tomogram"], phantom.tomogram, vs)
    for cls in PARTICLE_CLASSES:
        xyz = phantom.coords.get(cls, np.zeros((0, 3)))
        eul = phantom.angles.get(cls, np.zeros((len(xyz), 3)))
        columns = {"rot": eul[:, 0], "tilt": eul[:, 1], "psi": eul[:, 2]}
        paths[cls] = folder / f"{name}_{cls}.csv"
        write_coordinates(paths[cls], CoordinateTable(xyz, columns, vs))
    rows = [(xyz, cls) for cls, arr in sorted(phantom.distractors.items()) for xyz in arr]
    table = CoordinateTable(np.array([r[0] for r in rows]).reshape(-1, 3),
                            {CLASS_COLUMN: np.array([r[1] for r in rows], dtype=object)}, vs)
    paths["distractors"] = folder / f"{name}_distractors.csv"
    write_coordinates(paths["distractors"], table)
    for mask in MASK_NAMES:
        paths[mask] = folder / f"{name}_{mask}.mrc"
        write_volume(paths[mask], phantom.masks[mask].astype(np.int8), vs)
    return {k: str(v) for k, v in paths.items()}


def make_dataset(folder, n_tomograms: int = 4, config: PhantomConfig | None = None, seed: int = 0,
                 prefix: str = "synthetic") -> list:
    """Write ``n_tomograms`` independent phantoms ``<prefix>_000`` … into ``folder``.

    Each gets its own seed derived from ``seed`` and its index (the templates are shared, so the
    particles are the same "molecules" in all of them). Returns one {kind: path} dict per tomogram,
    with the tomogram's ``name`` added.
    """
    config = config or PhantomConfig()
    written = []
    for index in range(n_tomograms):
        sub_seed = int(np.random.SeedSequence([int(seed), index]).generate_state(1)[0])
        phantom = make_phantom(dataclasses.replace(config, seed=sub_seed))
        name = f"{prefix}_{index:03d}"
        paths = write_phantom(phantom, folder, name)
        paths["name"] = name
        written.append(paths)
    return written
