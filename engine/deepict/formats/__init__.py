"""Export picked coordinates for RELION 4, RELION 5, Warp/M, Dynamo and DeePiCt motive lists.

Pure functions over coordinates (:class:`~.io.CoordinateTable`, 0-based voxels of the tomogram,
x = fastest MRC axis — Scipion's ``BOTTOM_LEFT_CORNER`` frame) and tomogram metadata
(:class:`TomogramInfo`). STAR files go through ``emtable``.

All or nothing: every export (its files, or its folder for Warp and motl folders, plus the class map)
is first written complete into a hidden scratch folder beside the output, then moved into place,
the previous export being set aside and restored if any move fails. A folder output is replaced as a
whole, so a new export never mixes with an earlier one; a folder holding anything but that format's
files is refused rather than replaced. An output file that exists as a folder is refused.

Columns taken from a coordinate table: ``score`` (default 0) and ``class`` (default 1). Classes may
be numbers (written as they are) or names, as ``deepict pick`` writes them (``ribosome``): names are
numbered 1..K in sorted order over the whole export (a stable map for the same names) and the map is
written beside the export as ``<output name>.classes.csv`` (``number,name``); Warp files carry no
class, so a Warp export has no map.

Conventions
-----------
Rescaling to an output pixel size (e.g. unbinned tilt-series pixels)
    ``x_out = x * vs_in / vs_out`` on the 0-based corner-frame values, exactly as Scipion does
    (``coordsScale = coordsSR / targetSR`` applied to ``BOTTOM_LEFT_CORNER`` values in reliontomo,
    dynamo and tomo import). The voxel-centre-preserving alternative
    ``(x + 0.5) * r - 0.5`` differs by ``0.5 * (r - 1)`` output pixels (1.5 px at 4x binning); we
    keep Scipion's so round trips through Scipion/RELION protocols agree. Reading back divides by
    the same ratio. ``output_pixel_size=None`` keeps the tomogram's voxel size.

RELION 4 (``relion4``, one file, table ``particles``)
    ``rlnCoordinateX/Y/Z`` = rescaled corner-frame pixels with no +1 (as reliontomo's
    ``convert40_tomo`` writes them); ``rlnTomoParticleId`` 1..N over the whole file,
    ``rlnTomoManifoldIndex`` = ``rlnClassNumber`` = class (Scipion puts the group id there),
    ``rlnRandomSubset`` alternating 1/2, origins and angles 0, ``rlnAutopickFigureOfMerit`` = score.

RELION 5 (``relion5``, one file, ``# version 50001`` then table ``particles``)
    ``rlnCenteredCoordinateX/Y/ZAngst = (x - size_x / 2) * voxel_size``, with ``x`` the 0-based
    voxel index and ``size_x`` the tomogram size in voxels: RELION 5's tomogram centre is
    ``w0 / 2.0`` (float division, ``TomogramSet::loadTomogram``), i.e. voxel index 32 of a 64-voxel
    axis and 32.5 of a 65-voxel axis. Being in Å, these do not depend on the output pixel size;
    they assume RELION's ``rlnTomoSizeX/Y/Z`` (bin 1) equals the tomogram size times its binning.
    RELION 5 uses them. Also ``rlnCoordinateX/Y/Z`` in output pixels, as for RELION 4: Scipion's
    RELION 5 reader (``convert50_tomo.Reader.gen3dCoordFromStarRow``, used by reliontomo's "import
    3D coordinates from a star file") reads only those, as ``BOTTOM_LEFT_CORNER`` values times
    (coordinates' sampling rate / tomograms' sampling rate), and would put every particle at 0
    without them. No ``rlnTomoParticleId`` column, so Scipion's reader treats the file as RELION 5.

Warp / M (``warp``, a folder with one ``<tsId>.star`` per tomogram, unnamed ``data_`` table)
    ``rlnCoordinateX/Y/Z`` in pixels of the output pixel size, 0 = centre of the first voxel (Warp's
    convention, same as the corner frame); ``rlnMicrographName = <tsId>.tomostar``. Run WarpTools
    ``ts_export_particles`` with ``--coords_angpix`` = the output pixel size (Scipion's own Warp
    export writes normalised coordinates instead; these are pixels).

Dynamo (``dynamo``, ``<out>.tbl`` + ``<out>.doc``)
    40 numeric columns, 1-based column meaning: 1 tag (1..N), 2 aligned = 1, 3 averaged = 1,
    4-9 shifts and angles 0, 10 cc = score, 13 ftype = 1, 14/15 tilt range (default -60/60),
    20 tomogram index (1-based line of the ``.doc`` file, which maps index -> tomogram path),
    22 class, 24-26 x y z. Like Scipion's dynamo plugin, x y z are the 0-based corner-frame values
    **without +1** even though Dynamo itself is 1-based — consistent with every Scipion plugin, a
    half-voxel-scale difference that sub-tomogram alignment absorbs. The ``.doc`` points at the
    tomograms the picks were made on, so the ``.tbl`` is always in their voxels: an output pixel
    size other than the tomograms' voxel size is refused (the pair would disagree).

DeePiCt motive list (``motl``, 20 comma-separated columns, no header, one file per tomogram)
    col 1 score, 2/3 x/y, 4 index (1-based), 8/9/10 x/y/z, 20 class, others 0 — as DeePiCt's
    ``build_tom_motive_list`` writes (0-based values, no +1). Rows keep the input order.
"""

from __future__ import annotations

import io
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Optional, Sequence

import numpy as np

from deepict.errors import InputFileError, ParameterError
from deepict.io import TEMPORARY_SUFFIX, CoordinateTable, check_coordinates_in_volume, read_volume, scratch_directory

FORMATS = ("relion4", "relion5", "warp", "dynamo", "motl")

#: Formats written as one file per tomogram into a folder.
PER_TOMOGRAM_FORMATS = ("warp", "motl")

SCORE_COLUMN = "score"
CLASS_COLUMN = "class"

RELION4_COLUMNS = [
    "rlnTomoName", "rlnTomoParticleId", "rlnTomoManifoldIndex",
    "rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ",
    "rlnOriginXAngst", "rlnOriginYAngst", "rlnOriginZAngst",
    "rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi",
    "rlnClassNumber", "rlnRandomSubset", "rlnAutopickFigureOfMerit"]

RELION5_COLUMNS = [
    "rlnTomoName",
    "rlnCenteredCoordinateXAngst", "rlnCenteredCoordinateYAngst", "rlnCenteredCoordinateZAngst",
    "rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ",
    "rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi",
    "rlnClassNumber", "rlnAutopickFigureOfMerit"]

WARP_COLUMNS = [
    "rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ",
    "rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi",
    "rlnMicrographName", "rlnAutopickFigureOfMerit"]

RELION5_VERSION_COMMENT = "# version 50001"
DYNAMO_COLUMNS = 40
MOTL_COLUMNS = 20
#: Relative tolerance when comparing voxel sizes.
VOXEL_SIZE_RTOL = 1e-3

_BAD_NAME = re.compile(r"[\s/\\'\"#]")


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TomogramInfo:
    """What an export needs to know about a tomogram.

    Attributes:
        name: the tsId, used as ``rlnTomoName``, Warp file / ``.tomostar`` name and motl file name.
        shape: size (x, y, z) in voxels.
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
    def ts_id(self) -> str:
        """Alias of ``name`` (Scipion's join key)."""
        return self.name

    @property
    def shape_zyx(self) -> tuple:
        return self.shape[::-1]

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


def check_format(fmt: str) -> str:
    name = str(fmt).lower()
    if name not in FORMATS:
        raise ParameterError(f"Unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}.")
    return name


def _check_picks(picks: Sequence[PickedTomogram]) -> list[PickedTomogram]:
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
        if coords.voxel_size and abs(coords.voxel_size - tomogram.voxel_size) > VOXEL_SIZE_RTOL * tomogram.voxel_size:
            raise ParameterError(
                f"The coordinates for {tomogram.name} were picked at {coords.voxel_size:g} Å/voxel but the tomogram "
                f"has {tomogram.voxel_size:g} Å/voxel: pair them with the tomogram they were picked on.")
        check_coordinates_in_volume(coords.xyz, tomogram.shape_zyx, f"coordinates of {tomogram.name}")
        checked.append(PickedTomogram(tomogram, coords))
    return checked


def _scores(coords: CoordinateTable) -> np.ndarray:
    try:
        return np.asarray(coords.column(SCORE_COLUMN, 0.0), dtype=np.float64)
    except (TypeError, ValueError):
        raise ParameterError("The 'score' column holds values that are not numbers.") from None


def class_name_map(picks: Sequence[PickedTomogram]) -> Optional[dict]:
    """``{name: number}`` when the classes are names (sorted names numbered 1..K), else ``None``.

    Sorting makes the numbers stable: the same names always get the same numbers. Tables without
    rows do not count; names in one table and numbers in another are refused.
    """
    named, numbered = [], []
    for tomogram, coords in picks:
        if CLASS_COLUMN in coords.columns and len(coords):
            (named if coords.columns[CLASS_COLUMN].dtype == object else numbered).append(tomogram.name)
    if not named:
        return None
    if numbered:
        raise ParameterError(
            f"The classes of {', '.join(named)} are names but those of {', '.join(numbered)} are numbers: give "
            "every tomogram's classes as names (e.g. ribosome) or every one as numbers.")
    names = sorted({str(v) for _, coords in picks if len(coords) for v in coords.columns[CLASS_COLUMN]})
    return {name: number for number, name in enumerate(names, start=1)}


def _classes(coords: CoordinateTable, names: Optional[dict]) -> np.ndarray:
    """Class numbers of a table; ``names`` (from :func:`class_name_map`) numbers class names."""
    if names is not None and CLASS_COLUMN in coords.columns:
        return np.array([names[str(v)] for v in coords.columns[CLASS_COLUMN]], dtype=np.int64)
    values = np.asarray(coords.column(CLASS_COLUMN, 1), dtype=np.float64)
    if len(values) and (not np.isfinite(values).all() or np.any(values != np.round(values))):
        raise ParameterError("The 'class' column must hold whole numbers or class names.")
    return values.astype(np.int64)


def carries_classes(fmt: str) -> bool:
    """Whether format ``fmt`` writes a class per particle (Warp files do not)."""
    return check_format(fmt) != "warp"


def class_map_path(out) -> Path:
    """Where the class-name map of an export to ``out`` goes: ``<name without extension>.classes.csv`` beside it."""
    out = Path(out)
    return out.with_name(f"{out.stem if out.suffix else out.name}.classes.csv")


def _class_map_text(names: Optional[dict]) -> Optional[str]:
    if names is None:
        return None
    return "number,name\n" + "".join(f"{number},{name}\n" for name, number in names.items())


def read_class_map(path) -> dict:
    """``{name: number}`` from a class map written beside an export."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "class map not found", "It is written beside an export of named classes.")
    lines = [line.split(",", 1) for line in path.read_text().splitlines()[1:] if line.strip()]
    return {name: int(number) for number, name in lines}


# --------------------------------------------------------------------------------------------
# Writing an export all or nothing
# --------------------------------------------------------------------------------------------

class _Output(NamedTuple):
    """One path of an export: a file (``text``), a folder (``{file name: text}``), or ``None`` to remove."""

    path: Path
    content: object


def _check_file_target(path: Path, what: str) -> None:
    if path.is_dir():
        raise ParameterError(f"{path} is a folder, but the {what} export writes a file there: give a file name "
                             "(or move the folder away).")


def _check_folder_target(path: Path, suffix: str, what: str) -> None:
    """A folder output may replace only an earlier export of the same kind (or an empty folder)."""
    if not path.exists():
        return
    if not path.is_dir():
        raise ParameterError(f"{path} is a file, but the {what} export writes a folder there: give a folder name.")
    foreign = sorted(entry.name + ("/" if entry.is_dir() else "") for entry in path.iterdir()
                     if not _belongs_to_export(entry, suffix))
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise ParameterError(f"{path} holds {shown}, which is not part of a {what} export; the export replaces the "
                             "whole folder: give a new or empty folder.")


def _belongs_to_export(entry: Path, suffix: str) -> bool:
    """A file an earlier export of this kind wrote, or a temporary file a killed write left behind."""
    return entry.name.endswith(TEMPORARY_SUFFIX) or (
        entry.is_file() and not entry.name.startswith(".") and entry.suffix == suffix)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _write_all_or_nothing(outputs: Sequence[_Output]) -> None:
    """Stage every output in a scratch folder beside them, then swap them in; on failure restore the old ones.

    The outputs share one folder (the scratch folder's file system). An output that exists as a
    folder where a file is written (or the reverse) must have been refused before.
    """
    outputs = [_Output(Path(os.path.abspath(o.path)), o.content) for o in outputs]  # "." or "out/" have a parent
    with scratch_directory(outputs[0].path) as scratch:
        staged_root, previous_root = scratch / "new", scratch / "old"
        staged_root.mkdir()  # new folders and files get the umask's permissions
        previous_root.mkdir()
        staged = {}
        for index, output in enumerate(outputs):
            if output.content is None:
                continue
            staged[index] = staged_root / str(index)
            if isinstance(output.content, dict):
                staged[index].mkdir()
                for name, text in output.content.items():
                    (staged[index] / name).write_text(text)
            else:
                staged[index].write_text(output.content)
        swapped = []  # (output path, where its previous version was set aside, whether the new one is in place)
        try:
            for index, output in enumerate(outputs):
                previous = None
                if output.path.exists() or output.path.is_symlink():
                    if output.content is None and output.path.is_dir():
                        continue  # only a stale file of ours is removed, never a folder
                    previous = previous_root / str(index)
                    os.rename(output.path, previous)
                swapped.append([output.path, previous, False])
                if index in staged:
                    os.rename(staged[index], output.path)
                    swapped[-1][2] = True
        except BaseException:
            for path, previous, placed in reversed(swapped):
                if placed:
                    _remove(path)
                if previous is not None:
                    os.rename(previous, path)
            raise


def _star_text(table_name: Optional[str], columns: list[str], rows: list[tuple], header: str = "") -> str:
    handle = io.StringIO()
    handle.write(header)
    _write_star(handle, table_name, columns, rows)
    return handle.getvalue()


# --------------------------------------------------------------------------------------------
# STAR helpers (emtable)
# --------------------------------------------------------------------------------------------

def _table_module():
    try:
        from emtable import Table
    except ImportError as exc:  # pragma: no cover - emtable is a dependency
        raise ParameterError("STAR export needs the 'emtable' package: pip install emtable") from exc
    return Table


def _write_star(handle, table_name: Optional[str], columns: list[str], rows: list[tuple]) -> None:
    """Write one loop table; an empty table still gets its column header."""
    Table = _table_module()
    table = Table(columns=columns)
    for row in rows:
        table.addRow(*row)
    if rows:
        table.writeStar(handle, tableName=table_name)
    else:
        writer = Table.Writer(handle)
        writer.writeTableName(table_name)
        writer.writeHeader(table.getColumns())
        writer.writeNewline()


def _read_star(path: Path, table_name: Optional[str], required: list[str]):
    Table = _table_module()
    if not Path(path).is_file():
        raise InputFileError(path, "STAR file not found", "Check the path.")
    try:
        table = Table(fileName=str(path), tableName=table_name,
                      types={"rlnTomoName": str, "rlnMicrographName": str})
    except Exception as exc:  # emtable raises bare Exceptions for missing blocks / bad rows
        raise InputFileError(path, f"not a readable STAR file with table data_{table_name or ''} ({exc})",
                             "Give a STAR file written by this export (or by RELION/Warp).") from exc
    missing = [c for c in required if c not in table.getColumnNames()] if len(table.getColumnNames()) else []
    if missing:
        raise InputFileError(path, f"lacks the column(s) {missing}", "Give a STAR file of the expected kind.")
    return table


def _check_known_names(path, tomograms: Sequence[TomogramInfo], rows: dict) -> None:
    unknown = sorted(set(rows) - {t.name for t in tomograms})
    if unknown:
        raise InputFileError(path, f"holds particles of tomogram(s) {unknown} that were not given",
                             "Give the matching TomogramInfo for every rlnTomoName in the file.")


def _table_from(tomogram: TomogramInfo, xyz, scores, classes) -> CoordinateTable:
    return CoordinateTable(np.asarray(xyz, dtype=np.float64).reshape(-1, 3),
                           {SCORE_COLUMN: np.asarray(scores, dtype=np.float64),
                            CLASS_COLUMN: np.asarray(classes, dtype=np.int64)},
                           tomogram.voxel_size)


# --------------------------------------------------------------------------------------------
# RELION 4
# --------------------------------------------------------------------------------------------

def relion4_rows(picks: Sequence[PickedTomogram], output_pixel_size: Optional[float] = None) -> list[tuple]:
    rows = []
    particle_id = 0
    checked = _check_picks(picks)
    names = class_name_map(checked)
    for tomogram, coords in checked:
        factor = scale_factor(tomogram, output_pixel_size)
        xyz = coords.xyz * factor
        for (x, y, z), score, cls in zip(xyz, _scores(coords), _classes(coords, names)):
            particle_id += 1
            rows.append((tomogram.name, particle_id, int(cls), float(x), float(y), float(z), 0.0, 0.0, 0.0,
                         0.0, 0.0, 0.0, int(cls), 1 + (particle_id - 1) % 2, float(score)))
    return rows


def write_relion4(path, picks: Sequence[PickedTomogram], output_pixel_size: Optional[float] = None) -> list[Path]:
    """RELION 4 particles STAR (table ``particles``); coordinates in output pixels."""
    rows = relion4_rows(picks, output_pixel_size)
    return _write_single_file(path, "RELION 4", _star_text("particles", RELION4_COLUMNS, rows), picks)


def _write_single_file(path, what: str, text: str, picks: Sequence[PickedTomogram]) -> list[Path]:
    """One export file and its class map (or the removal of a stale one), all or nothing."""
    path = Path(path)
    names = class_name_map(_check_picks(picks))
    outputs = [_Output(path, text), _Output(class_map_path(path), _class_map_text(names))]
    for output in outputs:
        _check_file_target(output.path, what)
    _write_all_or_nothing(outputs)
    return [output.path for output in outputs if output.content is not None]


def read_relion4(path, tomograms: Sequence[TomogramInfo], output_pixel_size: Optional[float] = None
                 ) -> list[CoordinateTable]:
    """Read a RELION 4 particles STAR back into tomogram voxels, one table per ``tomograms`` entry."""
    table = _read_star(Path(path), "particles", ["rlnTomoName", "rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"])
    grouped: dict = {}
    for row in table:
        grouped.setdefault(str(row.rlnTomoName), []).append(
            ((row.rlnCoordinateX, row.rlnCoordinateY, row.rlnCoordinateZ),
             row.get("rlnAutopickFigureOfMerit", 0.0), row.get("rlnClassNumber", 1)))
    _check_known_names(path, tomograms, grouped)
    out = []
    for tomogram in tomograms:
        entries = grouped.get(tomogram.name, [])
        factor = scale_factor(tomogram, output_pixel_size)
        xyz = np.array([e[0] for e in entries], dtype=np.float64).reshape(-1, 3) / factor
        out.append(_table_from(tomogram, xyz, [e[1] for e in entries], [e[2] for e in entries]))
    return out


# --------------------------------------------------------------------------------------------
# RELION 5
# --------------------------------------------------------------------------------------------

def relion5_centre(tomogram: TomogramInfo) -> np.ndarray:
    """RELION 5's tomogram centre in 0-based voxel indices (x, y, z): ``size / 2`` (float)."""
    return np.asarray(tomogram.shape, dtype=np.float64) / 2.0


def relion5_rows(picks: Sequence[PickedTomogram], output_pixel_size: Optional[float] = None) -> list[tuple]:
    rows = []
    checked = _check_picks(picks)
    names = class_name_map(checked)
    for tomogram, coords in checked:
        centred = (coords.xyz - relion5_centre(tomogram)) * tomogram.voxel_size
        pixels = coords.xyz * scale_factor(tomogram, output_pixel_size)
        for angst, pixel, score, cls in zip(centred, pixels, _scores(coords), _classes(coords, names)):
            rows.append((tomogram.name, *map(float, angst), *map(float, pixel), 0.0, 0.0, 0.0, int(cls),
                         float(score)))
    return rows


def write_relion5(path, picks: Sequence[PickedTomogram], output_pixel_size: Optional[float] = None) -> list[Path]:
    """RELION 5 particles STAR: ``rlnCenteredCoordinate*Angst`` and ``rlnCoordinate*`` in output pixels."""
    rows = relion5_rows(picks, output_pixel_size)
    text = _star_text("particles", RELION5_COLUMNS, rows, header=f"\n{RELION5_VERSION_COMMENT}\n")
    return _write_single_file(path, "RELION 5", text, picks)


def read_relion5(path, tomograms: Sequence[TomogramInfo], output_pixel_size: Optional[float] = None
                 ) -> list[CoordinateTable]:
    """Read a RELION 5 particles STAR (centred Å) back into 0-based tomogram voxels."""
    check_output_pixel_size(output_pixel_size)
    table = _read_star(Path(path), "particles", ["rlnTomoName", "rlnCenteredCoordinateXAngst",
                                                 "rlnCenteredCoordinateYAngst", "rlnCenteredCoordinateZAngst"])
    grouped: dict = {}
    for row in table:
        grouped.setdefault(str(row.rlnTomoName), []).append(
            ((row.rlnCenteredCoordinateXAngst, row.rlnCenteredCoordinateYAngst, row.rlnCenteredCoordinateZAngst),
             row.get("rlnAutopickFigureOfMerit", 0.0), row.get("rlnClassNumber", 1)))
    _check_known_names(path, tomograms, grouped)
    out = []
    for tomogram in tomograms:
        entries = grouped.get(tomogram.name, [])
        angst = np.array([e[0] for e in entries], dtype=np.float64).reshape(-1, 3)
        xyz = angst / tomogram.voxel_size + relion5_centre(tomogram)
        out.append(_table_from(tomogram, xyz, [e[1] for e in entries], [e[2] for e in entries]))
    return out


# --------------------------------------------------------------------------------------------
# Warp / M
# --------------------------------------------------------------------------------------------

def warp_file_name(tomogram: TomogramInfo) -> str:
    return f"{tomogram.name}.star"


def warp_micrograph_name(tomogram: TomogramInfo) -> str:
    return f"{tomogram.name}.tomostar"


def write_warp(folder, picks: Sequence[PickedTomogram], output_pixel_size: Optional[float] = None) -> list[Path]:
    """One Warp/M STAR per tomogram, ``<folder>/<tsId>.star``; all appear together or none does."""
    folder = Path(folder)
    checked = _check_picks(picks)
    files = {}
    for tomogram, coords in checked:
        xyz = coords.xyz * scale_factor(tomogram, output_pixel_size)
        micrograph = warp_micrograph_name(tomogram)
        rows = [(float(x), float(y), float(z), 0.0, 0.0, 0.0, micrograph, float(score))
                for (x, y, z), score in zip(xyz, _scores(coords))]
        files[warp_file_name(tomogram)] = _star_text(None, WARP_COLUMNS, rows)
    _check_folder_target(folder, ".star", "Warp")
    _write_all_or_nothing([_Output(folder, files)])
    return [folder / name for name in files]


def read_warp(folder, tomograms: Sequence[TomogramInfo], output_pixel_size: Optional[float] = None
              ) -> list[CoordinateTable]:
    """Read ``<folder>/<tsId>.star`` for every tomogram back into tomogram voxels (class = 1)."""
    out = []
    for tomogram in tomograms:
        path = Path(folder) / warp_file_name(tomogram)
        table = _read_star(path, None, ["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"])
        rows = list(table)
        names = {str(r.get("rlnMicrographName", warp_micrograph_name(tomogram))) for r in rows}
        if names - {warp_micrograph_name(tomogram)}:
            raise InputFileError(path, f"rlnMicrographName {sorted(names)} does not match "
                                       f"{warp_micrograph_name(tomogram)}", "Check which tomogram the file belongs to.")
        factor = scale_factor(tomogram, output_pixel_size)
        xyz = np.array([(r.rlnCoordinateX, r.rlnCoordinateY, r.rlnCoordinateZ) for r in rows],
                       dtype=np.float64).reshape(-1, 3) / factor
        out.append(_table_from(tomogram, xyz, [r.get("rlnAutopickFigureOfMerit", 0.0) for r in rows],
                               np.ones(len(rows))))
    return out


# --------------------------------------------------------------------------------------------
# Dynamo
# --------------------------------------------------------------------------------------------

def dynamo_doc_path(tbl_path) -> Path:
    return Path(tbl_path).with_suffix(".doc")


def _fmt_number(value) -> str:
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    text = f"{float(value):.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def dynamo_rows(picks: Sequence[PickedTomogram], output_pixel_size: Optional[float] = None,
                tilt_range: tuple = (-60.0, 60.0)) -> np.ndarray:
    """The (N, 40) Dynamo table (see the module docstring for the columns)."""
    blocks = []
    tag = 0
    checked = _check_picks(picks)
    names = class_name_map(checked)
    for index, (tomogram, coords) in enumerate(checked, start=1):
        n = len(coords)
        block = np.zeros((n, DYNAMO_COLUMNS), dtype=np.float64)
        block[:, 0] = np.arange(tag + 1, tag + n + 1)
        block[:, 1] = 1
        block[:, 2] = 1
        block[:, 9] = _scores(coords)
        block[:, 12] = 1
        block[:, 13], block[:, 14] = float(tilt_range[0]), float(tilt_range[1])
        block[:, 19] = index
        block[:, 21] = _classes(coords, names)
        block[:, 23:26] = coords.xyz * scale_factor(tomogram, output_pixel_size)
        blocks.append(block)
        tag += n
    return np.concatenate(blocks) if blocks else np.zeros((0, DYNAMO_COLUMNS))


_DYNAMO_INTEGER_COLUMNS = {0, 1, 2, 12, 19, 21}


def write_dynamo(path, picks: Sequence[PickedTomogram], output_pixel_size: Optional[float] = None,
                 tilt_range: tuple = (-60.0, 60.0)) -> list[Path]:
    """Dynamo ``.tbl`` at ``path`` and the ``.doc`` (index -> tomogram path) beside it."""
    path = Path(path)
    if path.suffix != ".tbl":
        raise ParameterError(f"A Dynamo table must end in .tbl, got {path.name}.")
    checked = _check_picks(picks)
    missing = [t.name for t, _ in checked if not t.path]
    if missing:
        raise ParameterError(f"Dynamo's .doc file needs the tomogram file path of {missing}.")
    _check_dynamo_pixel_size(checked, output_pixel_size)
    table = dynamo_rows(checked, output_pixel_size, tilt_range)
    lines = [" ".join(str(int(v)) if j in _DYNAMO_INTEGER_COLUMNS else _fmt_number(v) for j, v in enumerate(row))
             for row in table]
    doc = [f"{i} {Path(t.path).resolve()}" for i, (t, _) in enumerate(checked, start=1)]
    outputs = [_Output(path, "".join(line + "\n" for line in lines)),
               _Output(dynamo_doc_path(path), "".join(line + "\n" for line in doc)),
               _Output(class_map_path(path), _class_map_text(class_name_map(checked)))]
    for output in outputs:
        _check_file_target(output.path, "Dynamo")
    _write_all_or_nothing(outputs)
    return [output.path for output in outputs if output.content is not None]


def _check_dynamo_pixel_size(picks: Sequence[PickedTomogram], output_pixel_size: Optional[float]) -> None:
    """The .doc names the picked tomograms, so the .tbl must be in their voxels (else the pair disagrees)."""
    if output_pixel_size is None:
        return
    for tomogram, _ in picks:
        if abs(output_pixel_size - tomogram.voxel_size) > VOXEL_SIZE_RTOL * tomogram.voxel_size:
            raise ParameterError(
                f"Dynamo's .doc points at {tomogram.path} ({tomogram.voxel_size:g} Å/voxel), so its .tbl must be in "
                f"those voxels, not in {output_pixel_size:g} Å pixels: export Dynamo without an output pixel size "
                "(the tomograms' voxel size).")


def read_dynamo_doc(path) -> dict:
    """``{tomogram index: path}`` from a Dynamo ``.doc`` file."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "Dynamo .doc file not found", "It is written next to the .tbl file.")
    mapping = {}
    for line in path.read_text().splitlines():
        if line.strip():
            index, _, volume = line.strip().partition(" ")
            try:
                mapping[int(index)] = volume.strip()
            except ValueError:
                raise InputFileError(path, f"bad line {line!r}", "Each line must be 'index path'.") from None
    return mapping


def read_dynamo_table(path) -> np.ndarray:
    """The numeric (N, >=26) array of a Dynamo ``.tbl``."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "Dynamo table not found", "Check the path.")
    try:
        with open(path) as handle:
            rows = [line.split() for line in handle if line.strip()]
        table = np.array(rows, dtype=np.float64) if rows else np.zeros((0, DYNAMO_COLUMNS))
    except ValueError as exc:
        raise InputFileError(path, f"not a numeric Dynamo table ({exc})", "Give a .tbl file.") from exc
    if table.ndim != 2 or (len(table) and table.shape[1] < 26):
        raise InputFileError(path, "a Dynamo table needs at least 26 columns per row", "Give a .tbl file.")
    return table


def read_dynamo(path, tomograms: Sequence[TomogramInfo], output_pixel_size: Optional[float] = None
                ) -> list[CoordinateTable]:
    """Read a ``.tbl`` back; column 20 is the 1-based index into ``tomograms``."""
    table = read_dynamo_table(path)
    indices = table[:, 19].astype(np.int64) if len(table) else np.zeros(0, dtype=np.int64)
    bad = sorted(set(indices.tolist()) - set(range(1, len(tomograms) + 1)))
    if bad:
        raise InputFileError(path, f"refers to tomogram index(es) {bad} but {len(tomograms)} tomogram(s) were given",
                             "Give the tomograms in the order of the .doc file.")
    out = []
    for i, tomogram in enumerate(tomograms, start=1):
        rows = table[indices == i]
        xyz = rows[:, 23:26] / scale_factor(tomogram, output_pixel_size)
        out.append(_table_from(tomogram, xyz, rows[:, 9], rows[:, 21]))
    return out


# --------------------------------------------------------------------------------------------
# DeePiCt motive list
# --------------------------------------------------------------------------------------------

def motl_file_name(tomogram: TomogramInfo) -> str:
    return f"{tomogram.name}.csv"


def motl_rows(tomogram: TomogramInfo, coords: CoordinateTable, output_pixel_size: Optional[float] = None,
              names: Optional[dict] = None) -> np.ndarray:
    """The (N, 20) motive list; ``names`` numbers class names (see :func:`class_name_map`)."""
    xyz = coords.xyz * scale_factor(tomogram, output_pixel_size)
    table = np.zeros((len(coords), MOTL_COLUMNS), dtype=np.float64)
    table[:, 0] = _scores(coords)
    table[:, 1:3] = xyz[:, :2]
    table[:, 3] = np.arange(1, len(coords) + 1)
    table[:, 7:10] = xyz
    table[:, 19] = _classes(coords, names)
    return table


def _motl_text(table: np.ndarray) -> str:
    return "".join(",".join(str(int(v)) if j in (3, 19) else _fmt_number(v) for j, v in enumerate(row)) + "\n"
                   for row in table)


def write_motl(path, picks: Sequence[PickedTomogram], output_pixel_size: Optional[float] = None) -> list[Path]:
    """DeePiCt 20-column motive lists.

    ``path`` ending in ``.csv`` with a single tomogram: that file. Otherwise ``path`` is a folder
    receiving ``<tsId>.csv`` per tomogram (all or none).
    """
    checked = _check_picks(picks)
    names = class_name_map(checked)
    path = Path(path)
    texts = {motl_file_name(t): _motl_text(motl_rows(t, c, output_pixel_size, names)) for t, c in checked}
    class_map = _Output(class_map_path(path), _class_map_text(names))
    if path.suffix.lower() == ".csv":
        if len(checked) != 1:
            raise ParameterError(f"A motl file holds one tomogram; {len(checked)} were given. "
                                 "Give a folder as output to get one <tsId>.csv per tomogram.")
        outputs = [_Output(path, next(iter(texts.values()))), class_map]
        for output in outputs:
            _check_file_target(output.path, "motl")
        written = [path]
    else:
        _check_folder_target(path, ".csv", "motl")
        _check_file_target(class_map.path, "motl")
        outputs = [_Output(path, texts), class_map]
        written = [path / name for name in texts]
    _write_all_or_nothing(outputs)
    return written + ([class_map.path] if class_map.content is not None else [])


def read_motl_file(path) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "motive list not found", "Check the path.")
    rows = [line.strip().split(",") for line in path.read_text().splitlines() if line.strip()]
    try:
        table = np.array(rows, dtype=np.float64) if rows else np.zeros((0, MOTL_COLUMNS))
    except ValueError as exc:
        raise InputFileError(path, f"not a numeric 20-column motive list ({exc})", "Give a DeePiCt motl CSV.") from exc
    if table.ndim != 2 or table.shape[1] != MOTL_COLUMNS:
        raise InputFileError(path, f"expected {MOTL_COLUMNS} columns per row", "Give a DeePiCt motl CSV.")
    return table


def read_motl(path, tomograms: Sequence[TomogramInfo], output_pixel_size: Optional[float] = None
              ) -> list[CoordinateTable]:
    """Read motive list(s) written by :func:`write_motl` back into tomogram voxels."""
    path = Path(path)
    paths = [path] if path.suffix.lower() == ".csv" else [path / motl_file_name(t) for t in tomograms]
    if len(paths) != len(tomograms):
        raise ParameterError("A single motl file belongs to exactly one tomogram.")
    out = []
    for file, tomogram in zip(paths, tomograms):
        table = read_motl_file(file)
        xyz = table[:, 7:10] / scale_factor(tomogram, output_pixel_size)
        out.append(_table_from(tomogram, xyz, table[:, 0], table[:, 19]))
    return out


# --------------------------------------------------------------------------------------------
# Dispatch
# --------------------------------------------------------------------------------------------

_WRITERS = {"relion4": write_relion4, "relion5": write_relion5, "warp": write_warp,
            "dynamo": write_dynamo, "motl": write_motl}
_READERS = {"relion4": read_relion4, "relion5": read_relion5, "warp": read_warp,
            "dynamo": read_dynamo, "motl": read_motl}


def export_coordinates(fmt: str, out, picks: Sequence[PickedTomogram],
                       output_pixel_size: Optional[float] = None) -> list[Path]:
    """Write ``picks`` in format ``fmt`` (one of :data:`FORMATS`) to ``out``; return the files written.

    ``out`` is a file for relion4 / relion5 / dynamo (``.tbl``; the ``.doc`` goes beside it), a
    folder for warp, and a folder or (single tomogram) a ``.csv`` file for motl.
    """
    fmt = check_format(fmt)
    check_output_pixel_size(output_pixel_size)
    return _WRITERS[fmt](out, picks, output_pixel_size=output_pixel_size)


def read_exported(fmt: str, out, tomograms: Sequence[TomogramInfo],
                  output_pixel_size: Optional[float] = None) -> list[CoordinateTable]:
    """Read an export back into tomogram voxels (one table per tomogram, in the given order)."""
    fmt = check_format(fmt)
    for tomogram in tomograms:
        if not isinstance(tomogram, TomogramInfo):
            raise ParameterError("read_exported needs TomogramInfo entries.")
    return _READERS[fmt](out, tomograms, output_pixel_size=output_pixel_size)
