"""copick projects (the CZ cryo-ET data portal's format): picks written and read, reader beside writer.

A copick project is a config JSON and folders, read here without the ``copick`` library (which needs
numpy >= 2): the engine writes files that copick reads, and reads the files copick writes
(engine/tests/formats/test_copick.py checks both against the real library).

The config (``copick_config.json``)
    ``{"config_type": "filesystem", "name", "description", "version", "pickable_objects": [{"name",
    "is_particle", "label", "color", "radius" (Å), ...}], "overlay_root": "local:///abs/folder",
    "static_root": ... (optional), ...}``. Picks are written to the overlay root and read from the
    overlay, then the static root. Only local roots (``local://``, ``file://`` or a plain path) are
    supported; a project on S3 or the data portal must be copied locally first (``copick`` can).

Picks
    ``<root>/ExperimentRuns/<run>/Picks/<user_id>_<session_id>_<object_name>.json``:
    ``{"pickable_object_name", "user_id", "session_id", "run_name", "voxel_spacing", "unit": "angstrom",
    "points": [{"location": {"x", "y", "z"} (Å), "transformation_": 4x4, "instance_id", "score"}],
    "trust_orientation"}``. copick splits the file name at every ``_``, so user, session and object
    names must not contain one. The particle centre is ``location + transformation_[:3, 3]`` (copick's
    definition); we write a zero shift.

Coordinates
    ``location = voxel index * voxel size`` (voxel 0's centre is 0 Å, as in the data portal), so
    reading at the voxel size it was written at gives back the same 0-based voxel values.

Tomograms
    ``<root>/ExperimentRuns/<run>/VoxelSpacing<size with 3 decimals>/<tomo_type>.zarr`` (OME-Zarr,
    level ``0`` the full resolution, z, y, x). Reading one needs the optional ``zarr`` package
    (``pip install ./engine[zarr]``): :func:`read_tomogram`.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from deepict.conventions import ANGLE_COLUMNS, CLASS_COLUMN, SCORE_COLUMN
from deepict.errors import InputFileError, ParameterError
from deepict.formats.picks import PickedTomogram
from deepict.io import CoordinateTable, atomic_path
from deepict.orientations import euler_to_transform, transform_to_euler

#: The ``--format`` value of ``deepict export`` for a copick project.
COPICK_FORMAT = "copick"
#: File name of a project's config when ``--out`` names a folder.
CONFIG_NAME = "copick_config.json"
PICKS_FOLDER = "Picks"
RUNS_FOLDER = "ExperimentRuns"
IDENTITY = [[1.0 if i == j else 0.0 for j in range(4)] for i in range(4)]
_LOCAL_PREFIXES = ("local://", "file://")
_NAME = re.compile(r"^[A-Za-z0-9.\-]+$")


# --------------------------------------------------------------------------------------------
# The project: config and roots
# --------------------------------------------------------------------------------------------

def config_path(project) -> Path:
    """The config file of a project given as its config JSON or its folder (``<folder>/copick_config.json``)."""
    path = Path(project)
    return path / CONFIG_NAME if path.suffix.lower() != ".json" else path


def new_config(folder) -> dict:
    """A config for a new project whose picks live in ``folder`` (the overlay root)."""
    return {"config_type": "filesystem", "name": Path(folder).name or "deepict", "description": "written by deepict",
            "version": "0.2.0", "pickable_objects": [],
            "overlay_root": "local://" + str(Path(folder).resolve()), "overlay_fs_args": {"auto_mkdir": True}}


def read_config(project) -> dict:
    """The config of a project (see :func:`config_path`); a missing or bad file is an :class:`InputFileError`."""
    path = config_path(project)
    if not path.is_file():
        raise InputFileError(path, "no copick config file there",
                             "Give the project's config JSON (or its folder holding copick_config.json).")
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputFileError(path, f"not a readable JSON file ({exc})", "Give a copick config JSON.") from None
    if not isinstance(config, dict) or not isinstance(config.get("pickable_objects"), list):
        raise InputFileError(path, "no 'pickable_objects' list: not a copick config", "Give a copick config JSON.")
    return config


def _local_root(value, path: Path, key: str) -> Optional[Path]:
    if value in (None, ""):
        return None
    text = str(value)
    for prefix in _LOCAL_PREFIXES:
        if text.startswith(prefix):
            text = text[len(prefix):]
            break
    else:
        if "://" in text:
            raise InputFileError(path, f"{key} {value!r} is not on the local file system",
                                 "Copy the project locally (e.g. with copick) and point the config at that folder.")
    return Path(text)


def roots(project) -> tuple[Path, Optional[Path]]:
    """(overlay root, static root or None) of a project, as local folders."""
    path = config_path(project)
    config = read_config(path)
    overlay = _local_root(config.get("overlay_root"), path, "overlay_root")
    if overlay is None:
        raise InputFileError(path, "no overlay_root", "Set overlay_root to the project's folder (local:///path).")
    return overlay, _local_root(config.get("static_root"), path, "static_root")


def check_name(value: str, what: str) -> str:
    """A user id, session id or object name copick can parse back from a picks file name."""
    text = str(value)
    if not _NAME.match(text):
        raise ParameterError(f"The copick {what} {value!r} must be letters, digits, '.' or '-' only: copick splits "
                             "picks file names at '_' (use a hyphen instead).")
    return text


def pickable_object(config: dict, name: str) -> Optional[dict]:
    return next((o for o in config["pickable_objects"] if o.get("name") == name), None)


def add_pickable_object(config: dict, name: str, radius: Optional[float]) -> dict:
    """The object ``name`` of ``config``, added as a particle (next free label, ``radius`` Å) when missing."""
    found = pickable_object(config, name)
    if found is not None:
        if found.get("radius") is None and radius is not None:
            found["radius"] = float(radius)
        return found
    labels = [int(o.get("label") or 0) for o in config["pickable_objects"]]
    added = {"name": check_name(name, "object name"), "is_particle": True, "label": max(labels, default=0) + 1,
             "color": [100, 100, 100, 255], "radius": None if radius is None else float(radius)}
    config["pickable_objects"].append(added)
    return added


def picks_path(root, run: str, object_name: str, user_id: str, session_id: str) -> Path:
    return (Path(root) / RUNS_FOLDER / run / PICKS_FOLDER /
            f"{check_name(user_id, 'user id')}_{check_name(session_id, 'session id')}_"
            f"{check_name(object_name, 'object name')}.json")


# --------------------------------------------------------------------------------------------
# Picks: writer and reader
# --------------------------------------------------------------------------------------------

def write_picks(project, run: str, object_name: str, user_id: str, session_id: str, coordinates: CoordinateTable,
                voxel_size: float, radius: Optional[float] = None,
                transformations: Optional[Sequence] = None) -> Path:
    """Write ``coordinates`` (0-based voxels at ``voxel_size`` Å) as one picks file of ``run``; return its path.

    ``project`` is a config JSON or a folder; a missing config is created (overlay root = its folder).
    The object is added to the config when missing (a particle with ``radius`` Å). Each point gets
    the identity orientation unless ``transformations`` gives one 4x4 matrix per point; a ``score``
    column becomes the points' scores. An existing picks file of the same run, object, user and
    session is replaced.
    """
    path = config_path(project)
    config = read_config(path) if path.exists() else new_config(path.parent)
    overlay = _local_root(config.get("overlay_root"), path, "overlay_root")
    if overlay is None:
        raise InputFileError(path, "no overlay_root", "Set overlay_root to the project's folder (local:///path).")
    if not voxel_size or voxel_size <= 0:
        raise ParameterError(f"The voxel size of the picks must be > 0 Å, got {voxel_size}.")
    if not run or "/" in run or run.startswith("."):
        raise ParameterError(f"The copick run name {run!r} must be a non-empty name without '/'.")
    add_pickable_object(config, object_name, radius)
    matrices = _transformations(transformations, len(coordinates))
    scores = coordinates.column(SCORE_COLUMN, 1.0).astype(float)
    locations = np.asarray(coordinates.xyz, dtype=float) * float(voxel_size)
    points = [{"location": {"x": float(x), "y": float(y), "z": float(z)}, "transformation_": matrix,
               "instance_id": 0, "score": float(score)}
              for (x, y, z), matrix, score in zip(locations, matrices, scores)]
    content = {"pickable_object_name": object_name, "user_id": user_id, "session_id": session_id, "run_name": run,
               "voxel_spacing": float(voxel_size), "unit": "angstrom", "points": points,
               "trust_orientation": transformations is not None}
    target = picks_path(overlay, run, object_name, user_id, session_id)
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(content, indent=2))
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(config, indent=2))
    return target


def write_project(project, picks: Sequence[PickedTomogram], object_name: Optional[str], user_id: str,
                  session_id: str, radius: Optional[float] = None) -> list[Path]:
    """Write each tomogram's picks into the run of its name (tsId); return the picks files written.

    Points of a table with RELION angles (rot, tilt, psi) get their 4x4 matrices (rotation ``A``,
    reference to particle: :func:`deepict.orientations.euler_to_transform`), others the identity.

    All picks go to ``object_name``; without one, each row goes to the object named by its class
    (a table without a class column, or with numbered classes, needs ``object_name``).
    """
    files = []
    for tomogram, coordinates in picks:
        for name, rows in _by_object(coordinates, object_name, tomogram.name).items():
            subset = CoordinateTable(coordinates.xyz[rows], {k: v[rows] for k, v in coordinates.columns.items()})
            angles = subset.angles()
            files.append(write_picks(project, tomogram.name, name, user_id, session_id, subset,
                                     tomogram.voxel_size, radius=radius,
                                     transformations=None if angles is None else euler_to_transform(*angles.T)))
    return files


def _by_object(coordinates: CoordinateTable, object_name: Optional[str], run: str) -> dict:
    if object_name is not None:
        return {check_name(object_name, "object name"): np.arange(len(coordinates))}
    classes = coordinates.columns.get(CLASS_COLUMN)
    if classes is None or classes.dtype != object:
        raise ParameterError(f"The picks of {run} have no class names: give the copick object name "
                             "(--copick-object, e.g. ribosome).")
    return {check_name(name, "object name"): np.flatnonzero(classes == name) for name in sorted(set(classes))}


def _transformations(transformations, count: int) -> list:
    if transformations is None:
        return [IDENTITY] * count
    matrices = np.asarray(transformations, dtype=float)
    if matrices.shape != (count, 4, 4):
        raise ParameterError(f"Give one 4x4 orientation matrix per point: got shape {matrices.shape} for {count} "
                             "points.")
    return matrices.tolist()


def find_picks(project, run: str, object_name: str, user_id: str, session_id: str) -> Path:
    """The picks file of a run, object, user and session: in the overlay root, else the static root."""
    path = config_path(project)
    overlay, static = roots(path)
    candidates = [picks_path(root, run, object_name, user_id, session_id) for root in (overlay, static) if root]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    available = sorted(p.stem for root in (overlay, static) if root
                       for p in (Path(root) / RUNS_FOLDER / run / PICKS_FOLDER).glob("*.json"))
    raise InputFileError(candidates[0], f"no picks of object {object_name!r} by user {user_id!r}, session "
                         f"{session_id!r} in run {run!r} of {path}",
                         "Pick one of this run's picks (user_session_object): " + (", ".join(available) or "none")
                         + ".")


def read_picks_file(picks_file, voxel_size: float) -> tuple[CoordinateTable, np.ndarray]:
    """Points of a copick picks file as (0-based voxels at ``voxel_size`` Å with a score column, 4x4 matrices).

    Points with rotations also get RELION angles (rot, tilt, psi columns) of their matrices.

    The centre of each point is its location plus the translation of its transformation (copick's rule).
    """
    if not voxel_size or voxel_size <= 0:
        raise ParameterError(f"The voxel size to read the picks at must be > 0 Å, got {voxel_size}.")
    try:
        content = json.loads(Path(picks_file).read_text())
        points = content.get("points") or []
        unit = content.get("unit", "angstrom")
        locations = np.array([[float(p["location"][k]) for k in "xyz"] for p in points]).reshape(-1, 3)
        matrices = np.array([p.get("transformation_") or IDENTITY for p in points], dtype=float).reshape(-1, 4, 4)
        scores = np.array([1.0 if p.get("score") is None else float(p["score"]) for p in points])
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError, KeyError, TypeError,
            ValueError) as exc:
        raise InputFileError(picks_file, f"not a copick picks file ({exc})",
                             "Give a picks JSON written by copick (or deepict export --format copick).") from None
    if unit != "angstrom":
        raise InputFileError(picks_file, f"locations in {unit!r}, not angstrom", "Convert the picks to Å first.")
    centres = locations + matrices[:, :3, 3]
    table = CoordinateTable(centres / float(voxel_size), {SCORE_COLUMN: scores}, voxel_size=float(voxel_size))
    if len(matrices) and not np.allclose(matrices[:, :3, :3], np.eye(3)):  # oriented picks keep their angles
        table.columns.update(zip(ANGLE_COLUMNS, transform_to_euler(matrices)))
    return table, matrices


def read_picks(project, run: str, object_name: str, user_id: str, session_id: str,
               voxel_size: float) -> CoordinateTable:
    """The picks of one run, object, user and session in 0-based voxels at ``voxel_size`` Å."""
    return read_picks_file(find_picks(project, run, object_name, user_id, session_id), voxel_size)[0]


def runs(project) -> list[str]:
    """The run names of a project (folders of ``ExperimentRuns`` in the overlay and static roots), sorted."""
    names = set()
    for root in roots(project):
        if root is not None and (Path(root) / RUNS_FOLDER).is_dir():
            names.update(entry.name for entry in os.scandir(Path(root) / RUNS_FOLDER)
                         if entry.is_dir() and not entry.name.startswith("."))
    return sorted(names)


# --------------------------------------------------------------------------------------------
# Tomograms (OME-Zarr), optional
# --------------------------------------------------------------------------------------------

def tomogram_path(project, run: str, voxel_size: float, tomo_type: str) -> Path:
    """``<root>/ExperimentRuns/<run>/VoxelSpacing<size:.3f>/<tomo_type>.zarr`` in the overlay, else static root."""
    candidates = [Path(root) / RUNS_FOLDER / run / f"VoxelSpacing{float(voxel_size):.3f}" / f"{tomo_type}.zarr"
                  for root in roots(project) if root is not None]
    for candidate in candidates:
        if candidate.exists():
            return candidate
    raise InputFileError(candidates[-1], f"no {tomo_type!r} tomogram of run {run!r} at {voxel_size:g} Å",
                         "Give a voxel spacing and tomogram type the run has (see its VoxelSpacing* folders).")


def read_tomogram(path) -> np.ndarray:
    """The full-resolution level (``0``) of an OME-Zarr tomogram as a (z, y, x) array; needs ``zarr``."""
    try:
        import zarr
    except ImportError:
        raise ParameterError(
            f"Reading {path} needs the zarr package: pip install './engine[zarr]'. Or convert the tomogram to MRC "
            "elsewhere, e.g. with copick's environment: python -c \"import zarr, mrcfile; mrcfile.write('t.mrc', "
            f"zarr.open('{path}')['0'][:], voxel_size=SIZE)\"") from None
    return np.asarray(zarr.open(str(path), mode="r")["0"][:])
