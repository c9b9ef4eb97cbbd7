"""Orientations of particles: RELION Euler angles, rotation matrices, directions, Dynamo angles, 4x4 matrices.

One convention everywhere in the engine: **RELION's** ZYZ Euler angles ``(rot, tilt, psi)`` in
degrees, positions ``x, y, z`` with x the fastest MRC axis. RELION's matrix (``Euler_angles2matrix``
in relion's ``src/euler.cpp``) is ``A = Rz(psi) Ry(tilt) Rz(rot)`` built from *passive* axis
rotations; its projector samples the reference at ``A^T p`` for a particle-frame point ``p``
(``projector.cpp`` uses the inverse matrix), so ``A`` maps reference coordinates to particle
(tomogram) coordinates: the reference's z axis lies along ``A[:, 2] = (-cos psi sin tilt,
sin psi sin tilt, cos tilt)`` in the tomogram. A filament (helical reference along z) whose tangent
is ``d`` therefore has ``tilt = arccos(d_z)`` and ``psi = atan2(d_y, -d_x)``; ``rot`` (the spin
about the filament axis) is free.

Other programs:
  * Warp / M and RELION 4/5 star files: the same angles (``rlnAngleRot/Tilt/Psi``).
  * Dynamo (``tdrot, tilt, narot``, ZXZ): ``tdrot = psi - 90``, ``tilt = tilt``, ``narot = rot + 90``
    (the relation dynamo2relion-style converters use; checked here through the matrices).
  * copick: a 4x4 matrix whose rotation block is ``A`` (copick-utils turns RELION angles into
    ``Rotation.from_euler("ZYZ", angles).inv()``, which is ``A``).
  * Scipion (tomo's ``Coordinate3D.setMatrix(M, convention=TR_RELION)``): ``M``'s rotation block is
    ``A^T`` (reliontomo's ``genTransformMatrix`` inverts ``euler_matrix(-rot, -tilt, -psi, 'szyz') = A``).

All functions take scalars or arrays (angles of shape (N,), directions (N, 3), matrices (N, 3, 3)).
"""

from __future__ import annotations

import numpy as np

#: Below this |sin tilt| a direction is along z and ``psi`` is undefined (set to 0).
_GIMBAL_EPSILON = 1e-9


def _axis_rotation_z(angle: np.ndarray) -> np.ndarray:
    """RELION's passive rotation about z by ``angle`` radians, shape (..., 3, 3)."""
    c, s = np.cos(angle), np.sin(angle)
    zero, one = np.zeros_like(c), np.ones_like(c)
    return np.stack([np.stack([c, s, zero], -1), np.stack([-s, c, zero], -1), np.stack([zero, zero, one], -1)], -2)


def _axis_rotation_y(angle: np.ndarray) -> np.ndarray:
    """RELION's passive rotation about y by ``angle`` radians, shape (..., 3, 3)."""
    c, s = np.cos(angle), np.sin(angle)
    zero, one = np.zeros_like(c), np.ones_like(c)
    return np.stack([np.stack([c, zero, -s], -1), np.stack([zero, one, zero], -1), np.stack([s, zero, c], -1)], -2)


def euler_to_matrix(rot, tilt, psi) -> np.ndarray:
    """RELION's matrix ``A`` (reference -> particle frame) of ZYZ angles in degrees: (3, 3) or (N, 3, 3)."""
    rot, tilt, psi = (np.radians(np.asarray(a, dtype=np.float64)) for a in (rot, tilt, psi))
    return _axis_rotation_z(psi) @ _axis_rotation_y(tilt) @ _axis_rotation_z(rot)


def matrix_to_euler(matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(rot, tilt, psi)`` in degrees of RELION matrices ``A`` (as relion's ``Euler_matrix2angles``).

    ``tilt`` is in [0, 180]; ``rot`` and ``psi`` in (-180, 180]. Along z (tilt 0 or 180) only
    ``rot + psi`` (or ``psi - rot``) is defined: ``rot`` is set to 0.
    """
    a = np.asarray(matrix, dtype=np.float64)
    sin_tilt = np.hypot(a[..., 0, 2], a[..., 1, 2])
    regular = sin_tilt > _GIMBAL_EPSILON
    psi = np.where(regular, np.arctan2(a[..., 1, 2], -a[..., 0, 2]),
                   np.where(a[..., 2, 2] > 0, np.arctan2(-a[..., 1, 0], a[..., 0, 0]),
                            np.arctan2(a[..., 1, 0], -a[..., 0, 0])))
    rot = np.where(regular, np.arctan2(a[..., 2, 1], a[..., 2, 0]), 0.0)
    tilt = np.arctan2(sin_tilt, a[..., 2, 2])
    return np.degrees(rot), np.degrees(tilt), np.degrees(psi)


def tilt_psi_to_direction(tilt, psi) -> np.ndarray:
    """The unit vector (x, y, z) along which a reference's z axis lies at ``(tilt, psi)`` degrees."""
    tilt, psi = np.radians(np.asarray(tilt, dtype=np.float64)), np.radians(np.asarray(psi, dtype=np.float64))
    return np.stack([-np.cos(psi) * np.sin(tilt), np.sin(psi) * np.sin(tilt), np.cos(tilt)], -1)


def direction_to_tilt_psi(direction) -> tuple[np.ndarray, np.ndarray]:
    """``(tilt, psi)`` in degrees that put a reference's z axis along ``direction`` (x, y, z; any length > 0).

    ``tilt = arccos(d_z)`` in [0, 180], ``psi = atan2(d_y, -d_x)`` in (-180, 180]; a direction along
    z gives psi 0. The polarity is kept: ``-d`` gives ``(180 - tilt, psi + 180)``.
    """
    d = np.asarray(direction, dtype=np.float64)
    length = np.linalg.norm(d, axis=-1)
    if np.any(length == 0) or not np.all(np.isfinite(d)):
        raise ValueError("A direction must be a finite vector of length > 0.")
    d = d / length[..., None]
    tilt = np.degrees(np.arccos(np.clip(d[..., 2], -1.0, 1.0)))
    along_z = np.hypot(d[..., 0], d[..., 1]) <= _GIMBAL_EPSILON
    psi = np.where(along_z, 0.0, np.degrees(np.arctan2(d[..., 1], -d[..., 0])))
    return tilt, psi


def direction_to_euler(direction, rot=0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(rot, tilt, psi)`` of a direction, ``rot`` (the free spin about it) as given (degrees)."""
    tilt, psi = direction_to_tilt_psi(direction)
    return np.broadcast_to(np.asarray(rot, dtype=np.float64), np.shape(tilt)).copy(), tilt, psi


def wrap_degrees(angle) -> np.ndarray:
    """An angle in degrees brought into (-180, 180]."""
    wrapped = np.mod(np.asarray(angle, dtype=np.float64) + 180.0, 360.0) - 180.0
    return np.where(wrapped == -180.0, 180.0, wrapped)


def relion_to_dynamo(rot, tilt, psi) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dynamo's ``(tdrot, tilt, narot)`` (degrees, in (-180, 180]) of RELION's ``(rot, tilt, psi)``."""
    tilt = np.asarray(tilt, dtype=np.float64)
    return wrap_degrees(np.asarray(psi) - 90.0), tilt, wrap_degrees(np.asarray(rot) + 90.0)


def dynamo_to_relion(tdrot, tilt, narot) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RELION's ``(rot, tilt, psi)`` (degrees, in (-180, 180]) of Dynamo's ``(tdrot, tilt, narot)``."""
    tilt = np.asarray(tilt, dtype=np.float64)
    return wrap_degrees(np.asarray(narot) - 90.0), tilt, wrap_degrees(np.asarray(tdrot) + 90.0)


def dynamo_matrix(tdrot, tilt, narot) -> np.ndarray:
    """Dynamo's ``dynamo_euler2matrix`` (``Rz(narot) Rx(tilt) Rz(tdrot)``, active rotations), (3, 3) or (N, 3, 3).

    It equals ``euler_to_matrix(*dynamo_to_relion(...)).T``: Dynamo's matrix rotates the particle
    onto the reference where RELION's rotates the reference onto the particle.
    """
    td, ti, na = (np.radians(np.asarray(a, dtype=np.float64)) for a in (tdrot, tilt, narot))
    # active rotation about z = transpose of the passive one; about x built directly
    c, s = np.cos(ti), np.sin(ti)
    zero, one = np.zeros_like(c), np.ones_like(c)
    about_x = np.stack([np.stack([one, zero, zero], -1), np.stack([zero, c, -s], -1),
                        np.stack([zero, s, c], -1)], -2)
    return np.swapaxes(_axis_rotation_z(na), -1, -2) @ about_x @ np.swapaxes(_axis_rotation_z(td), -1, -2)


def euler_to_transform(rot, tilt, psi, shift=None) -> np.ndarray:
    """4x4 matrices (reference -> particle, copick's ``transformation_``): rotation ``A``, translation ``shift``."""
    rotation = euler_to_matrix(rot, tilt, psi)
    transform = np.zeros(rotation.shape[:-2] + (4, 4))
    transform[..., :3, :3] = rotation
    transform[..., 3, 3] = 1.0
    if shift is not None:
        transform[..., :3, 3] = np.asarray(shift, dtype=np.float64)
    return transform


def transform_to_euler(transform) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(rot, tilt, psi)`` of 4x4 matrices as :func:`euler_to_transform` writes them (translation ignored)."""
    return matrix_to_euler(np.asarray(transform, dtype=np.float64)[..., :3, :3])


def is_rotation(matrix, tolerance: float = 1e-4) -> np.ndarray:
    """Whether (..., 3, 3) matrices are proper rotations (orthonormal, determinant +1)."""
    m = np.asarray(matrix, dtype=np.float64)
    identity = np.eye(3)
    orthonormal = np.all(np.abs(m @ np.swapaxes(m, -1, -2) - identity) <= tolerance, axis=(-1, -2))
    return orthonormal & (np.abs(np.linalg.det(m) - 1.0) <= tolerance)


def angle_between_axes(a, b) -> np.ndarray:
    """Angle in degrees (0-90) between two undirected axes (polarity ignored), e.g. filament tangents."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    cosine = np.abs(np.sum(a * b, axis=-1)) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    return np.degrees(np.arccos(np.clip(cosine, 0.0, 1.0)))
