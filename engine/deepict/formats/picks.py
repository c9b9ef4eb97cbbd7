"""What every export reads: tomograms (:class:`TomogramInfo`), their picks, and the rescaling to output pixels.

Coordinates are :class:`~deepict.io.CoordinateTable` rows in 0-based voxels of the tomogram,
x = fastest MRC axis (Scipion's ``BOTTOM_LEFT_CORNER`` frame).

Rescaling to an output pixel size (e.g. unbinned tilt-series pixels)
    ``x_out = x * vs_in / vs_out`` on the 0-based corner-frame values, exactly as Scipion does
    (``coordsScale = coordsSR / targetSR`` applied to ``BOTTOM_LEFT_CORNER`` values in reliontomo,
    dynamo and tomo import). The voxel-centre-preserving alternative
    ``(x + 0.5) * r - 0.5`` differs by ``0.5 * (r - 1)`` output pixels (1.5 px at 4x binning); we
    keep Scipion's so round trips through Scipion/RELION protocols agree. Reading back divides by
    the same ratio. ``output_pixel_size=None`` keeps the tomogram's voxel size.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Optional, Sequence

import numpy as np

from deepict.conventions import CLASS_COLUMN, SCORE_COLUMN, voxel_sizes_differ
from deepict.errors import InputFileError, ParameterError
from deepict.io import CoordinateTable, check_coordinates_in_volume, read_volume

_BAD_NAME = re.compile(r"[\s/\\'\"#]")
#: Why picks outside a :class:`TomogramInfo` would all fit it with x and z swapped: its shape was given in a volume
#: array's (z, y, x) order. RELION 5 centres coordinates on ``shape / 2`` (Å from the tomogram's centre), so such a
#: shape shifts every particle silently wherever the picks happen to fit both ways.
SHAPE_IN_ZYX = ("Was the shape given as (z, y, x), a volume array's .shape? TomogramInfo.shape is (x, y, z): "
                "give it so, or use TomogramInfo.from_volume(path), which reads it from the file.")


@dataclass(frozen=True)
class TomogramInfo:
    """What an export needs to know about a tomogram.

    Attributes:
        name: the tsId, used as ``rlnTomoName``, Warp file / ``.tomostar`` name and motl file name.
        shape: size (x, y, z) in voxels, not a volume array's ``.shape`` (z, y, x): RELION 5's centre is
            ``shape / 2``.
        voxel_size: Å per voxel of the tomogram the coordinates refer to.
        path: the tomogram file (needed for Dynamo's ``.doc``).
    """

    name: str
    shape: tuple
    voxel_size: float
    path: Optional[str] = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name or _BAD_NAME.search(self.name):
            raise ParameterError(
                f"Tomogram name {self.name!r} is not usable as a tsId: give a non-empty name without spaces, "
                "slashes, quotes or '#'.")
        try:
            shape = tuple(int(s) for s in self.shape)
        except (TypeError, ValueError):
            shape = ()
        if len(shape) != 3 or min(shape) < 1:
            raise ParameterError(f"Tomogram {self.name}: shape must be 3 positive sizes (x, y, z), got {self.shape}.")
        object.__setattr__(self, "shape", shape)
        size = _positive(self.voxel_size, f"Tomogram {self.name}: voxel size")
        object.__setattr__(self, "voxel_size", size)
        if self.path is not None:
            object.__setattr__(self, "path", str(self.path))

    @property
    def shape_zyx(self) -> tuple:
        return self.shape[::-1]

    def describe(self, what: str) -> str:
        """``what`` of this tomogram, by name and file: how error messages name it."""
        return f"{what} {self.name}" + (f" ({self.path})" if self.path else "")

    @classmethod
    def from_volume(cls, path, name: Optional[str] = None, voxel_size: Optional[float] = None) -> "TomogramInfo":
        """Read shape and voxel size from an MRC header (``voxel_size`` overrides the header).

        ``name`` defaults to the file name without its extension(s) ``.mrc``/``.rec``/``.gz`` etc.
        """
        volume = read_volume(path, check_finite=False)
        size = voxel_size if voxel_size is not None else volume.voxel_size
        if size is None:
            raise InputFileError(path, "the MRC header holds no voxel size",
                                 "Give the voxel size explicitly (--voxel-size), or fix the header.")
        z, y, x = volume.data.shape
        return cls(name=name or tomogram_stem(path), shape=(x, y, z), voxel_size=size, path=str(path))


def tomogram_stem(path) -> str:
    """File name without the volume extension (``TS_01.mrc`` -> ``TS_01``, ``a.mrc.gz`` -> ``a``)."""
    name = Path(path).name
    if name.endswith(".gz"):
        name = name[:-3]
    return Path(name).stem


class PickedTomogram(NamedTuple):
    """One tomogram and its picks (coordinates in its voxels)."""

    tomogram: TomogramInfo
    coordinates: CoordinateTable


def _positive(value, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{what} must be a number > 0, got {value!r}.") from None
    if not np.isfinite(number) or number <= 0:
        raise ParameterError(f"{what} must be a finite number > 0 Å, got {value!r}.")
    return number


def check_output_pixel_size(output_pixel_size) -> Optional[float]:
    """``None`` or a validated positive pixel size in Å."""
    if output_pixel_size is None:
        return None
    return _positive(output_pixel_size, "The output pixel size")


def scale_factor(tomogram: TomogramInfo, output_pixel_size: Optional[float]) -> float:
    """``vs_in / vs_out``: multiply tomogram-voxel coordinates by this for output pixels."""
    output_pixel_size = check_output_pixel_size(output_pixel_size)
    return 1.0 if output_pixel_size is None else tomogram.voxel_size / output_pixel_size


def check_picks(picks: Sequence[PickedTomogram]) -> list[PickedTomogram]:
    """Refuse what no export can write: unnamed or repeated tomograms, coordinates of another sampling or outside."""
    checked = []
    names = set()
    for item in picks:
        if not isinstance(item, tuple) or len(item) != 2:
            raise ParameterError("Each entry must be a (TomogramInfo, CoordinateTable) pair.")
        tomogram, coords = item
        if not isinstance(tomogram, TomogramInfo):
            raise ParameterError("Coordinates were given without a tomogram: every coordinate table needs "
                                 "a TomogramInfo (name, shape, voxel size).")
        if not isinstance(coords, CoordinateTable):
            coords = CoordinateTable(np.asarray(coords, dtype=np.float64).reshape(-1, 3))
        if tomogram.name in names:
            raise ParameterError(f"Tomogram name {tomogram.name!r} appears twice; every tomogram needs its own tsId.")
        names.add(tomogram.name)
        if voxel_sizes_differ(coords.voxel_size, tomogram.voxel_size):
            raise ParameterError(
                f"The coordinates for {tomogram.name} were picked at {coords.voxel_size:g} Å/voxel but the tomogram "
                f"has {tomogram.voxel_size:g} Å/voxel: pair them with the tomogram they were picked on.")
        check_coordinates_in_volume(coords.xyz, tomogram.shape_zyx, tomogram.describe("coordinates of"),
                                    swapped_cause=SHAPE_IN_ZYX)
        checked.append(PickedTomogram(tomogram, coords))
    return checked


def score_values(coords: CoordinateTable) -> np.ndarray:
    """The scores of a table as numbers (0 where it has none)."""
    try:
        return np.asarray(coords.column(SCORE_COLUMN, 0.0), dtype=np.float64)
    except (TypeError, ValueError):
        raise ParameterError("The 'score' column holds values that are not numbers.") from None


def table_from(tomogram: TomogramInfo, xyz, scores, classes) -> CoordinateTable:
    """What a reader gives back: a table of the tomogram's voxels with scores and class numbers."""
    return CoordinateTable(np.asarray(xyz, dtype=np.float64).reshape(-1, 3),
                           {SCORE_COLUMN: np.asarray(scores, dtype=np.float64),
                            CLASS_COLUMN: np.asarray(classes, dtype=np.int64)},
                           tomogram.voxel_size)


def format_number(value) -> str:
    """A number as the text tables (Dynamo, motl) hold it: whole numbers bare, others with up to 6 decimals."""
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    text = f"{float(value):.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text
