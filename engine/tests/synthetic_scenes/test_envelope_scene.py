"""Tests of the nuclear-envelope scene (deepict.synthetic.envelope): its geometry matches its ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from deepict import synthetic
from deepict.conventions import ANGLE_COLUMNS
from deepict.io import read_coordinates, read_volume
from deepict.orientations import angle_between_axes, tilt_psi_to_direction
from deepict.synthetic import ENVELOPE_MASK_NAMES, EnvelopeConfig, make_envelope_dataset, make_envelope_scene

SMALL = dict(shape_zyx=(64, 96, 96), n_npc=2, n_decoys=1)


@pytest.fixture(scope="module")
def scene():
    return make_envelope_scene(EnvelopeConfig(seed=4, **SMALL))


def test_tomogram_and_masks(scene):
    assert scene.tomogram.shape == (64, 96, 96) and scene.tomogram.dtype == np.float32
    assert abs(float(scene.tomogram.mean())) < 1e-3 and float(scene.tomogram.std()) == pytest.approx(1.0, abs=1e-3)
    masks = scene.masks
    assert set(masks) == set(ENVELOPE_MASK_NAMES)
    assert all(m.shape == scene.tomogram.shape and m.dtype == np.int8 and m.any() for m in masks.values())
    # the membranes lie in the envelope; the compartments, the envelope and the pores do not overlap
    assert not np.any(masks["membrane"] & ~masks["envelope"])
    parts = masks["envelope"].astype(int) + masks["cytoplasm"] + masks["nucleoplasm"] + masks["npc"]
    assert parts.max() == 1


def test_npc_centres_sit_in_holes_of_the_envelope_along_its_normal(scene):
    assert len(scene.npc_xyz) == 2 and scene.npc_angles.shape == (2, 3)
    envelope, npc = scene.masks["envelope"], scene.masks["npc"]
    for (x, y, z), normal, (_, tilt, psi) in zip(scene.npc_xyz, scene.npc_normals, scene.npc_angles):
        assert np.linalg.norm(normal) == pytest.approx(1.0)
        # the angles put a reference's z axis along the normal (RELION ZYZ, deepict.orientations)
        assert angle_between_axes(tilt_psi_to_direction(tilt, psi), normal) < 1e-6
        centre = tuple(int(round(v)) for v in (z, y, x))
        assert envelope[centre] == 0 and npc[centre] == 1, "the pore's middle: a hole in the envelope, in the NPC"
        # the scaffold is around the centre, the envelope beside it in the plane, not along the normal
        ball = _ball(npc.shape, (x, y, z), 14)
        assert npc[ball].sum() > 200
        side = _any_perpendicular(normal)
        in_plane = [np.round(np.array([x, y, z]) + t * side).astype(int)[::-1] for t in (24, -24)]
        along = [np.round(np.array([x, y, z]) + t * normal).astype(int)[::-1] for t in (14, -14)]
        inside = lambda p: np.all(p >= 0) and np.all(p < envelope.shape)  # noqa: E731
        assert any(envelope[tuple(p)] for p in in_plane if inside(p))
        assert not any(envelope[tuple(p)] for p in along if inside(p))
    # the normal points to the cytoplasm
    for (x, y, z), normal in zip(scene.npc_xyz, scene.npc_normals):
        out = np.round(np.array([x, y, z]) + 16 * normal).astype(int)[::-1]
        if np.all(out >= 0) and np.all(out < scene.tomogram.shape):
            assert scene.masks["cytoplasm"][tuple(out)] or scene.masks["npc"][tuple(out)]


def test_decoys_are_away_from_the_envelope_and_not_in_the_npc_mask(scene):
    assert len(scene.decoy_xyz) == 1
    x, y, z = np.round(scene.decoy_xyz[0]).astype(int)
    assert scene.masks["npc"][z, y, x] == 0 and scene.masks["envelope"][z, y, x] == 0


def test_same_seed_same_scene_and_written_files(tmp_path):
    config = EnvelopeConfig(seed=9, n_npc=1, n_decoys=0, shape_zyx=(48, 64, 64))
    assert np.array_equal(make_envelope_scene(config).tomogram, make_envelope_scene(config).tomogram)
    written = make_envelope_dataset(tmp_path, n_tomograms=1, config=config, seed=2)
    paths = written[0]
    assert paths["name"] == "envelope_000"
    table = read_coordinates(paths["npc_coords"])
    assert table.voxel_size == pytest.approx(config.voxel_size) and len(table) == 1
    assert all(column in table.columns for column in ANGLE_COLUMNS)
    for name in ENVELOPE_MASK_NAMES:
        volume = read_volume(paths[name])
        assert volume.data.shape == (48, 64, 64) and volume.voxel_size == pytest.approx(config.voxel_size)
    assert synthetic.make_envelope_scene is make_envelope_scene


def test_bad_configurations_are_refused():
    with pytest.raises(ValueError, match="32 voxels"):
        EnvelopeConfig(shape_zyx=(16, 64, 64))
    with pytest.raises(ValueError, match="inside the pore"):
        EnvelopeConfig(spoke_radius=60.0)


def _ball(shape, centre_xyz, radius):
    z, y, x = np.ogrid[:shape[0], :shape[1], :shape[2]]
    cx, cy, cz = centre_xyz
    return (x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2 <= radius ** 2


def _any_perpendicular(normal):
    helper = np.array([0.0, 0.0, 1.0]) if abs(normal[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    side = np.cross(normal, helper)
    return side / np.linalg.norm(side)
