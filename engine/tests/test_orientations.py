"""RELION ZYZ angles, matrices, directions, Dynamo angles and 4x4 matrices agree with each other."""

import numpy as np
import pytest

from deepict.orientations import (angle_between_axes, direction_to_euler, direction_to_tilt_psi, dynamo_matrix,
                                  dynamo_to_relion, euler_to_matrix, euler_to_transform, is_rotation,
                                  matrix_to_euler, relion_to_dynamo, tilt_psi_to_direction, transform_to_euler)

RNG = np.random.default_rng(7)
ANGLES = np.stack([RNG.uniform(-179, 179, 50), RNG.uniform(1, 179, 50), RNG.uniform(-179, 179, 50)], 1)


def test_relion_matrix_matches_relion_euler_cpp_entries():
    rot, tilt, psi = 30.0, 50.0, -70.0
    a = euler_to_matrix(rot, tilt, psi)
    ca, sa = np.cos(np.radians(rot)), np.sin(np.radians(rot))
    cb, sb = np.cos(np.radians(tilt)), np.sin(np.radians(tilt))
    cg, sg = np.cos(np.radians(psi)), np.sin(np.radians(psi))
    expected = [[cg * cb * ca - sg * sa, cg * cb * sa + sg * ca, -cg * sb],
                [-sg * cb * ca - cg * sa, -sg * cb * sa + cg * ca, sg * sb],
                [sb * ca, sb * sa, cb]]
    assert np.allclose(a, expected)


def test_angles_matrix_round_trip():
    matrices = euler_to_matrix(*ANGLES.T)
    assert matrices.shape == (50, 3, 3) and is_rotation(matrices).all()
    back = np.stack(matrix_to_euler(matrices), 1)
    assert np.allclose(back, ANGLES, atol=1e-9)


def test_along_z_sets_rot_zero_and_keeps_the_matrix():
    for tilt in (0.0, 180.0):
        a = euler_to_matrix(40.0, tilt, 25.0)
        rot, back_tilt, psi = matrix_to_euler(a)
        assert rot == 0.0 and np.isclose(back_tilt, tilt)
        assert np.allclose(euler_to_matrix(rot, back_tilt, psi), a, atol=1e-9)


def test_third_column_is_the_direction():
    matrices = euler_to_matrix(*ANGLES.T)
    assert np.allclose(matrices[:, :, 2], tilt_psi_to_direction(ANGLES[:, 1], ANGLES[:, 2]))


@pytest.mark.parametrize("direction, tilt, psi", [
    ((0, 0, 1), 0.0, 0.0), ((0, 0, -1), 180.0, 0.0), ((-1, 0, 0), 90.0, 0.0), ((1, 0, 0), 90.0, 180.0),
    ((0, 1, 0), 90.0, 90.0), ((0, -1, 0), 90.0, -90.0)])
def test_known_directions(direction, tilt, psi):
    got_tilt, got_psi = direction_to_tilt_psi(direction)
    assert np.isclose(got_tilt, tilt) and np.isclose(got_psi, psi)


def test_direction_round_trip_any_rot():
    directions = RNG.normal(size=(40, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    rot, tilt, psi = direction_to_euler(directions, rot=RNG.uniform(-180, 180, 40))
    assert np.allclose(euler_to_matrix(rot, tilt, psi)[:, :, 2], directions)
    assert np.allclose(angle_between_axes(tilt_psi_to_direction(tilt, psi), -directions), 0, atol=1e-6)


def test_zero_direction_is_refused():
    with pytest.raises(ValueError):
        direction_to_tilt_psi((0, 0, 0))


def test_dynamo_known_pair_and_matrix():
    # a pair of equivalent angles from the two programs (they give identical reconstructions)
    rot, tilt, psi = dynamo_to_relion(-47.2730, 1.1777, -132.3000)
    assert np.allclose([rot, tilt, psi], [137.7, 1.1777, 42.727])
    tdrot, tilt, narot = relion_to_dynamo(*ANGLES.T)
    assert np.allclose(np.stack(dynamo_to_relion(tdrot, tilt, narot), 1), ANGLES)
    assert np.allclose(dynamo_matrix(tdrot, tilt, narot), np.swapaxes(euler_to_matrix(*ANGLES.T), 1, 2))


def test_transform_round_trip():
    transforms = euler_to_transform(*ANGLES.T, shift=np.ones((50, 3)))
    assert transforms.shape == (50, 4, 4) and np.allclose(transforms[:, 3], [0, 0, 0, 1])
    assert np.allclose(np.stack(transform_to_euler(transforms), 1), ANGLES)
    assert np.allclose(euler_to_transform(0, 0, 0), np.eye(4))


def test_axis_angle_ignores_polarity():
    assert np.isclose(angle_between_axes((1, 0, 0), (-1, 0, 0)), 0.0)
    assert np.isclose(angle_between_axes((1, 0, 0), (1, 1, 0)), 45.0)
