"""Orienting picks by the normal of their context mask (deepict.infer.normals)."""

from __future__ import annotations

import numpy as np
import pytest

from deepict.infer.normals import context_normals, neighbourhood_radius, orientation_columns
from deepict.io import read_volume, write_volume
from deepict.orientations import angle_between_axes, tilt_psi_to_direction
from deepict.synthetic import EnvelopeConfig, make_envelope_scene


def _slab(shape, normal_xyz, through_xyz, half_thickness, hole_radius=0.0):
    """A thick plane (z, y, x mask) through a point, optionally with a round hole around that point."""
    z, y, x = np.mgrid[:shape[0], :shape[1], :shape[2]].astype(float)
    n = np.asarray(normal_xyz, float) / np.linalg.norm(normal_xyz)
    d = (x - through_xyz[0]) * n[0] + (y - through_xyz[1]) * n[1] + (z - through_xyz[2]) * n[2]
    mask = np.abs(d) <= half_thickness
    if hole_radius:
        in_plane = (x - through_xyz[0]) ** 2 + (y - through_xyz[1]) ** 2 + (z - through_xyz[2]) ** 2 - d ** 2
        mask &= in_plane > hole_radius ** 2
    return mask.astype(np.int8), n


@pytest.mark.parametrize("normal", [(0, 0, 1), (1, 0, 0), (1, 2, 0.5), (-0.3, 1, -0.8)])
def test_normal_of_a_holed_slab_at_its_hole_and_beside_it(normal):
    mask, n = _slab((48, 56, 60), normal, (30, 28, 24), half_thickness=3, hole_radius=9)
    points = [(30, 28, 24), (30.5, 27, 23.4) + 0.0 * n]
    found = context_normals(points, mask, radius=10)
    assert np.all(angle_between_axes(found, n) < 2.0)
    # the polarity rule: +z first (then +y, then +x)
    for f in found:
        first = next(c for c in f[::-1] if abs(c) > 1e-6)
        assert first > 0


def test_point_away_from_the_surface_takes_the_nearest_part_and_empty_masks_give_nan():
    mask, n = _slab((40, 40, 40), (0, 1, 0), (20, 20, 20), half_thickness=2)
    far = context_normals([(20, 35, 20)], mask, radius=6)
    assert angle_between_axes(far[0], n) < 1.0 and far[0][1] > 0
    assert np.isnan(context_normals([(5, 5, 5)], np.zeros((10, 10, 10), np.int8), 4)).all()
    columns = orientation_columns([(5, 5, 5)], np.zeros((10, 10, 10), np.int8), [100])
    assert all(np.isnan(columns[name][0]) for name in ("rot", "tilt", "psi"))


def test_orientation_columns_put_the_reference_axis_along_the_normal():
    mask, n = _slab((40, 40, 40), (1, 1, 1), (20, 20, 20), half_thickness=2)
    columns = orientation_columns([(20, 20, 20), (22, 19, 20)], mask, [50, 50])
    direction = tilt_psi_to_direction(columns["tilt"], columns["psi"])
    assert np.all(angle_between_axes(direction, n) < 2.0) and np.all(columns["rot"] == 0)
    assert neighbourhood_radius(1) == pytest.approx(4.0)
    assert neighbourhood_radius(4000) == pytest.approx(2 * np.cbrt(3000 / np.pi))


def test_memory_mapped_mask_and_the_envelope_scene(tmp_path):
    scene = make_envelope_scene(EnvelopeConfig(seed=4, shape_zyx=(64, 96, 96), n_npc=2, n_decoys=0))
    write_volume(tmp_path / "envelope.mrc", scene.masks["envelope"], scene.voxel_size)
    envelope = read_volume(tmp_path / "envelope.mrc").data
    npc_size = scene.masks["npc"].sum() / len(scene.npc_xyz)
    found = context_normals(scene.npc_xyz, envelope, neighbourhood_radius(npc_size))
    assert np.all(angle_between_axes(found, scene.npc_normals) < 8.0)
