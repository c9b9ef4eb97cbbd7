"""Class numbers of an export, and the map of class names to numbers written beside it.

Columns taken from a coordinate table: ``score`` (default 0) and ``class`` (default 1). Classes may
be numbers (written as they are) or names, as ``deepict pick`` writes them (``ribosome``): names are
numbered 1..K in sorted order over the whole export (a stable map for the same names) and the map is
written beside the export as ``<output name>.classes.csv`` (``number,name``); Warp files carry no
class, so a Warp export has no map.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from deepict.conventions import CLASS_COLUMN
from deepict.errors import InputFileError, ParameterError
from deepict.formats.picks import PickedTomogram
from deepict.io import CoordinateTable


def class_name_map(picks: Sequence[PickedTomogram]) -> Optional[dict]:
    """``{name: number}`` when the classes are names (sorted names numbered 1..K), else ``None``.

    Sorting makes the numbers stable: the same names always get the same numbers. Tables without
    rows do not count; names in one table and numbers, or no class column (class 1), in another are refused.
    """
    named, numbered = [], []
    for tomogram, coords in picks:
        if len(coords):
            is_named = CLASS_COLUMN in coords.columns and coords.columns[CLASS_COLUMN].dtype == object
            (named if is_named else numbered).append(tomogram.name)
    if not named:
        return None
    if numbered:
        raise ParameterError(
            f"The classes of {', '.join(named)} are names but {', '.join(numbered)} have numbered classes or none "
            "(class 1): give every tomogram's picks a 'class' column of names (e.g. ribosome), or export them "
            "separately.")
    names = sorted({str(v) for _, coords in picks if len(coords) for v in coords.columns[CLASS_COLUMN]})
    return {name: number for number, name in enumerate(names, start=1)}


def class_numbers(coords: CoordinateTable, names: Optional[dict]) -> np.ndarray:
    """Class numbers of a table; ``names`` (from :func:`class_name_map`) numbers class names."""
    if names is not None and CLASS_COLUMN in coords.columns:
        return np.array([names[str(v)] for v in coords.columns[CLASS_COLUMN]], dtype=np.int64)
    values = np.asarray(coords.column(CLASS_COLUMN, 1), dtype=np.float64)
    if len(values) and (not np.isfinite(values).all() or np.any(values != np.round(values))):
        raise ParameterError("The 'class' column must hold whole numbers or class names.")
    return values.astype(np.int64)


def class_map_path(out) -> Path:
    """Where the class-name map of an export to ``out`` goes: ``<output name>.classes.csv`` beside it, its
    extension kept, so that exports of one name in two formats (``x.star``, ``x.tbl``) keep a map each."""
    out = Path(out)
    return out.with_name(f"{out.name}.classes.csv")


def class_map_text(names: Optional[dict]) -> Optional[str]:
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
