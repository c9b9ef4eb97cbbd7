"""Conversions between Scipion objects and the engine's files (light bookkeeping, no voxel work).

Coordinates go to the engine as CSV files of 0-based voxel positions (x, y, z) of their tomogram,
i.e. Scipion's ``BOTTOM_LEFT_CORNER`` frame, and come back the same way. Orientations travel as
RELION angles (``rot, tilt, psi`` columns; :mod:`deepict.orientations`) and live in each
Coordinate3D's matrix as reliontomo stores them, so tomo's extraction and the RELION/Dynamo
plugins use them.
"""

import os

import numpy as np
from pyworkflow.object import Boolean
from tomo.constants import BOTTOM_LEFT_CORNER, TR_RELION
from tomo.objects import Coordinate3D, TomoMask

from deepict.conventions import ANGLE_COLUMNS, ARC_LENGTH_COLUMN, CLASS_COLUMN, FILAMENT_ID_COLUMN, SCORE_COLUMN
from deepict.io import CoordinateTable, read_coordinates, write_coordinates
from deepict.orientations import euler_to_matrix, matrix_to_euler
from deepict.spectrum import DEFAULT_LOWPASS_WIDTH

from .constants import LOWPASS_ATTRIBUTE, LOWPASS_WIDTH_ATTRIBUTE, SPECTRUM_ATTRIBUTE


def baseName(path):
    """A file's name without folder and extension ('' for none)."""
    return os.path.splitext(os.path.basename(path or ""))[0]


def tomogramKey(tomo):
    """The key that joins tomograms, coordinates and masks: the tsId, else the file's base name."""
    return tomo.getTsId() or baseName(tomo.getFileName())


def tomogramsByKey(tomograms):
    """{key: tomogram clone} of a SetOfTomograms, in set order."""
    return {tomogramKey(t): t.clone() for t in tomograms.iterItems(orderBy="id")}


def splitList(text):
    """The items of a comma (or semicolon) separated form field, stripped, empty ones left out."""
    return [item.strip() for item in (text or "").replace(";", ",").split(",") if item.strip()]


def coordinatesByKey(coordinates, tomograms=None):
    """{tomogram key: (N, 3) BOTTOM_LEFT x, y, z} of a SetOfCoordinates3D on ``tomograms`` (default its precedents).

    A protocol passes its own input tomograms: each coordinate is matched to them by its tsId, so the
    coordinates' pointer to their precedents (an object id) is not needed, and in a scheduled copy of a
    workflow that id may name another object. The tomograms are cloned into a list first: nesting a query
    of the coordinates inside an iteration over a set silently stops after the first tomogram.
    """
    tomograms = coordinates.getPrecedents() if tomograms is None else tomograms
    result = {}
    for tomo in [t.clone() for t in tomograms.iterItems()]:
        points = [_positionOn(coord, tomo) for coord in
                  coordinates.iterItems(where=f'{Coordinate3D.TOMO_ID_ATTR}="{tomo.getTsId()}"')]
        if points:
            result[tomogramKey(tomo)] = np.array(points, dtype=float)
    return result


def _positionOn(coord, tomo):
    """A coordinate's BOTTOM_LEFT voxel position on ``tomo``, whose origin the conversion needs."""
    coord.setVolume(tomo)
    return coord.getPosition(BOTTOM_LEFT_CORNER)


def writeCoordinatesCsv(path, xyz, voxelSize):
    write_coordinates(path, CoordinateTable(np.asarray(xyz).reshape(-1, 3), {}, voxelSize))


def readPicks(path):
    """The engine's picks CSV as a CoordinateTable (x, y, z, score, size, class)."""
    return read_coordinates(path)


def orientationMatrix(rot, tilt, psi):
    """Scipion's 4x4 matrix (``Coordinate3D.setMatrix(M, convention=TR_RELION)``) of RELION angles in degrees.

    reliontomo builds it as ``inv(euler_matrix(-rot, -tilt, -psi, 'szyz'))`` (``genTransformMatrix``),
    i.e. the transpose of RELION's matrix A; for a pure rotation tomo's RELION and Scipion
    conventions then hold the same matrix.
    """
    matrix = np.eye(4)
    matrix[:3, :3] = euler_to_matrix(rot, tilt, psi).T
    return matrix


def setCoordinateAngles(coord, rot, tilt, psi):
    """Put RELION angles (degrees) into a Coordinate3D's matrix."""
    coord.setMatrix(orientationMatrix(rot, tilt, psi), convention=TR_RELION)


def coordinateAngles(coord):
    """The RELION angles (rot, tilt, psi) in degrees of a Coordinate3D's matrix."""
    matrix = np.asarray(coord.getMatrix(convention=TR_RELION), dtype=float)
    return tuple(float(a) for a in matrix_to_euler(matrix[:3, :3].T))


def appendPicks(coordSet, tomo, picks, groupId=1, groupIds=None):
    """Add picks (BOTTOM_LEFT voxels of ``tomo``) to a SetOfCoordinates3D with their scores and orientations.

    A table with RELION angles (rot, tilt, psi) sets each coordinate's matrix; ``groupIds`` gives each
    coordinate its own group (e.g. its filament), else all get ``groupId``.
    """
    scores = picks.column(SCORE_COLUMN)
    angles = picks.angles()
    groups = [groupId] * len(picks) if groupIds is None else groupIds
    for i, ((x, y, z), score) in enumerate(zip(picks.xyz, scores)):
        coord = Coordinate3D()
        coord.setVolume(tomo)  # before setPosition: the conversion needs the tomogram's origin
        coord.setPosition(float(x), float(y), float(z), BOTTOM_LEFT_CORNER)
        coord.setScore(float(score))
        coord.setGroupId(int(groups[i]))
        if angles is not None:
            setCoordinateAngles(coord, *angles[i])
        coordSet.append(coord)


def newTomoMask(tomo, fileName):
    """A TomoMask for ``fileName`` linked to its tomogram (full path in volName, tsId and origin kept)."""
    mask = TomoMask()
    mask.copyInfo(tomo)
    mask.setLocation(fileName)
    mask.setVolName(tomo.getFileName())
    mask.setSamplingRate(tomo.getSamplingRate())
    return mask


#: Column of a coordinate table written by :meth:`CoordinateGroup.table` holding each coordinate's
#: Scipion id, so that a table the engine splits or filters leads back to the coordinates themselves.
COORDINATE_ID_COLUMN = "scipion_id"


class CoordinateGroup:
    """The coordinates of one tomogram: BOTTOM_LEFT voxels, scores, group ids (class labels) and Scipion ids."""

    def __init__(self, tomogram):
        self.tomogram = tomogram
        self.key = tomogramKey(tomogram)
        self.xyz, self.scores, self.groups, self.ids, self.angles = [], [], [], [], []

    def add(self, coord):
        self.xyz.append(coord.getPosition(BOTTOM_LEFT_CORNER))
        self.scores.append(coord.getScore() or 0.0)
        self.groups.append(coord.getGroupId() or 0)
        self.ids.append(coord.getObjId())
        self.angles.append(coordinateAngles(coord))

    def __len__(self):
        return len(self.xyz)

    def table(self, voxelSize, scale=1.0, withClass=True, withIds=False, filaments=False):
        """A CoordinateTable (x, y, z, score[, class][, Scipion id][, rot, tilt, psi]) in voxels times ``scale``.

        The class is the group id, 1 for coordinates without one (0), as reliontomo does for
        ``rlnTomoManifoldIndex``. With ``filaments`` (a trace filaments output, marked with
        :data:`.constants.FILAMENTS_ATTRIBUTE`) the group id is the filament instead, with each point's arc length
        along it in Å, in the coordinates' order.
        """
        xyz = np.array(self.xyz, dtype=float).reshape(-1, 3) * scale
        columns = {SCORE_COLUMN: np.array(self.scores, dtype=float)}
        groups = np.array([g if g else 1 for g in self.groups], dtype=int)
        if filaments:
            columns[FILAMENT_ID_COLUMN] = groups
            columns[ARC_LENGTH_COLUMN] = _arc_lengths(xyz, groups) * voxelSize
        elif withClass:
            columns[CLASS_COLUMN] = groups
        if withIds:
            columns[COORDINATE_ID_COLUMN] = np.array(self.ids, dtype=int)
        angles = np.array(self.angles, dtype=float).reshape(-1, 3)
        if np.any(angles != 0):  # coordinates with an orientation take it along (exports write it)
            columns.update({name: angles[:, i] for i, name in enumerate(ANGLE_COLUMNS)})
        return CoordinateTable(xyz, columns, voxelSize)


def _arc_lengths(xyz, filaments):
    """Each point's distance along its filament from the filament's first point, in voxels (points in order)."""
    lengths = np.zeros(len(xyz))
    for filament in np.unique(filaments):
        index = np.flatnonzero(filaments == filament)
        steps = np.linalg.norm(np.diff(xyz[index], axis=0), axis=1)
        lengths[index] = np.concatenate([[0.0], np.cumsum(steps)])
    return lengths


def mark(obj, attribute):
    """Mark a set (before it becomes an output) as what ``attribute`` says (:mod:`..constants`)."""
    setattr(obj, attribute, Boolean(True))


def isMarked(obj, attribute):
    """Whether :func:`mark` marked ``obj`` with ``attribute``."""
    marked = getattr(obj, attribute, None)
    return bool(marked is not None and marked.get())


def coordinateGroups(coordinates, keepEmpty=False):
    """{tomogram key: CoordinateGroup} of a SetOfCoordinates3D, in precedents order.

    The precedents are cloned into a list first: nesting ``iterCoordinates`` inside an iteration over
    ``getPrecedents()`` silently stops after the first tomogram. Tomograms without coordinates are
    left out unless ``keepEmpty``.
    """
    groups = {}
    precedents = coordinates.getPrecedents()
    if precedents is None:
        return groups
    for tomo in [t.clone() for t in precedents.iterItems(orderBy="id")]:
        group = CoordinateGroup(tomo)
        for coord in coordinates.iterCoordinates(volume=tomo):
            group.add(coord)
        if len(group) or keepEmpty:
            groups[group.key] = group
    return groups


def coordinateSetErrors(coordinates, label):
    """Coordinates without a tomogram among the precedents, and tomogram files that do not exist."""
    precedents = coordinates.getPrecedents()
    if precedents is None or precedents.getSize() == 0:
        return [f"{label}: the coordinates have no tomograms (their precedents are missing): import or pick "
                "them on a set of tomograms."]
    byTsId = {t.getTsId(): t.getFileName() for t in precedents.iterItems()}
    errors = []
    orphans = sorted(str(ts) for ts in coordinates.getTSIds() if ts not in byTsId)
    if orphans:
        errors.append(f"{label}: coordinates of tomogram(s) {', '.join(orphans)} have no tomogram among the "
                      f"precedents ({', '.join(sorted(map(str, byTsId))) or 'none'}).")
    missing = sorted(f"{ts} ({path})" for ts, path in byTsId.items()
                     if ts in set(coordinates.getTSIds()) and not (path and os.path.exists(path)))
    if missing:
        errors.append(f"{label}: tomogram file(s) not found: {', '.join(missing)}. The exports need each "
                      "tomogram's size; restore the files or re-import the tomograms.")
    return errors


def equalizedReference(tomograms):
    """(reference spectrum file, low-pass Å or None, low-pass width) a set was equalized with, or None.

    Sets made by the equalize spectrum protocol carry these as attributes; any other set gives None.
    """
    spectrum = getattr(tomograms, SPECTRUM_ATTRIBUTE, None)
    if spectrum is None or not spectrum.get():
        return None
    lowpass = getattr(tomograms, LOWPASS_ATTRIBUTE, None)
    width = getattr(tomograms, LOWPASS_WIDTH_ATTRIBUTE, None)
    return (spectrum.get(), lowpass.get() if lowpass is not None else None,
            width.get() if width is not None and width.get() else DEFAULT_LOWPASS_WIDTH)


def spectrumFileHeader(path):
    """The column names of a spectrum TSV (first line that is not a comment), or None if unreadable."""
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                line = line.strip()
                if line and not line.startswith("#"):
                    return [c.strip().lower() for c in (line.split("\t") if "\t" in line else line.split())]
    except (OSError, UnicodeDecodeError):
        return None
    return None
