"""Writing an export all or nothing.

Every export (its files, or its folder for Warp and motl folders, plus the class map) is first
written complete into a hidden scratch folder beside the output, then moved into place, the
previous export being set aside and restored if any move fails. A folder output is replaced as a
whole, so a new export never mixes with an earlier one; a folder holding anything but that format's
files is refused rather than replaced. An output file that exists as a folder is refused.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import NamedTuple, Sequence

from deepict.errors import ParameterError
from deepict.formats.classes import class_map_path, class_map_text, class_name_map
from deepict.formats.picks import PickedTomogram, check_picks
from deepict.io import TEMPORARY_SUFFIX, scratch_directory


class Output(NamedTuple):
    """One path of an export: a file (``text``), a folder (``{file name: text}``), or ``None`` to remove."""

    path: Path
    content: object


def check_file_target(path: Path, what: str) -> None:
    if path.is_dir():
        raise ParameterError(f"{path} is a folder, but the {what} export writes a file there: give a file name "
                             "(or move the folder away).")


def check_folder_target(path: Path, suffix: str, what: str) -> None:
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


def write_all_or_nothing(outputs: Sequence[Output]) -> None:
    """Stage every output in a scratch folder beside them, then swap them in; on failure restore the old ones.

    The outputs share one folder (the scratch folder's file system). An output that exists as a
    folder where a file is written (or the reverse) must have been refused before.
    """
    outputs = [Output(Path(os.path.abspath(o.path)), o.content) for o in outputs]  # "." or "out/" have a parent
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


def write_single_file(path, what: str, text: str, picks: Sequence[PickedTomogram]) -> list[Path]:
    """One export file and its class map (or the removal of a stale one), all or nothing."""
    path = Path(path)
    names = class_name_map(check_picks(picks))
    outputs = [Output(path, text), Output(class_map_path(path), class_map_text(names))]
    for output in outputs:
        check_file_target(output.path, what)
    write_all_or_nothing(outputs)
    return [output.path for output in outputs if output.content is not None]
