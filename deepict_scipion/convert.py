"""Conversions between Scipion objects and the engine's files (light bookkeeping, no voxel work).

Coordinates go to the engine as CSV files of 0-based voxel positions (x, y, z) of their tomogram,
i.e. Scipion's ``BOTTOM_LEFT_CORNER`` frame, and come back the same way.
"""

import os

import numpy as np
from tomo.constants import BOTTOM_LEFT_CORNER
from tomo.objects import Coordinate3D, TomoMask

from deepict.io import CoordinateTable, read_coordinates, write_coordinates


def tomogramKey(tomo):
    """The key that joins tomograms, coordinates and masks: the tsId, else the file's base name."""
    return tomo.getTsId() or os.path.splitext(os.path.basename(tomo.getFileName()))[0]


def tomogramsByKey(tomograms):
    """{key: tomogram clone} of a SetOfTomograms, in set order."""
    return {tomogramKey(t): t.clone() for t in tomograms.iterItems(orderBy="id")}


def coordinatesByKey(coordinates):
    """{tomogram key: (N, 3) BOTTOM_LEFT x, y, z} of a SetOfCoordinates3D.

    The precedents are cloned into a list first: nesting ``iterCoordinates`` inside an iteration over
    ``getPrecedents()`` silently stops after the first tomogram.
    """
    result = {}
    for tomo in [t.clone() for t in coordinates.getPrecedents().iterItems()]:
        points = [c.getPosition(BOTTOM_LEFT_CORNER) for c in coordinates.iterCoordinates(volume=tomo)]
        if points:
            result[tomogramKey(tomo)] = np.array(points, dtype=float)
    return result


def writeCoordinatesCsv(path, xyz, voxelSize):
    write_coordinates(path, CoordinateTable(np.asarray(xyz).reshape(-1, 3), {}, voxelSize))


def readPicks(path):
    """The engine's picks CSV as a CoordinateTable (x, y, z, score, size, class)."""
    return read_coordinates(path)


def appendPicks(coordSet, tomo, picks, groupId=1):
    """Add picks (BOTTOM_LEFT voxels of ``tomo``) to a SetOfCoordinates3D with their scores."""
    scores = picks.column("score")
    for (x, y, z), score in zip(picks.xyz, scores):
        coord = Coordinate3D()
        coord.setVolume(tomo)  # before setPosition: the conversion needs the tomogram's origin
        coord.setPosition(float(x), float(y), float(z), BOTTOM_LEFT_CORNER)
        coord.setScore(float(score))
        coord.setGroupId(groupId)
        coordSet.append(coord)


def newTomoMask(tomo, fileName):
    """A TomoMask for ``fileName`` linked to its tomogram (full path in volName, tsId and origin kept)."""
    mask = TomoMask()
    mask.copyInfo(tomo)
    mask.setLocation(fileName)
    mask.setVolName(tomo.getFileName())
    mask.setSamplingRate(tomo.getSamplingRate())
    return mask
