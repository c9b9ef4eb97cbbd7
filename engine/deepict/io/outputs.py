"""Output paths checked before any work, and claimed for the run that writes them.

A command calls :func:`claimed_outputs` with every path it will write before it reads a tomogram
or trains for hours: a path that names a folder, lies under a file, or lies on a read-only, full
or unwritable file system is refused at once in one line (instead of an ``OSError`` traceback
when the results are ready). While the run writes them, each output is claimed with an exclusive
lock beside it, so that a second run given the same output refuses instead of silently racing the
first (last writer wins). No torch import: the Scipion forms may use these checks too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from deepict.errors import ParameterError

#: Less free space than this on an output's file system is refused before any work.
MIN_FREE_BYTES = 1 << 20
#: Suffix of the lock file beside an output while a run writes it (``.<name>.deepict-lock``).
LOCK_SUFFIX = ".deepict-lock"

FILE, FOLDER, FILE_OR_FOLDER = "file", "folder", "file or folder"

#: What to do about an ``OSError`` of a write, by errno (the default: :data:`CHECK_THE_PATH`).
WRITE_ERROR_ADVICE = {
    errno.ENOSPC: "free some space or write elsewhere", errno.EDQUOT: "free some space or write elsewhere",
    errno.EFBIG: "free some space, raise the file-size limit or write elsewhere",
    errno.EROFS: "write to a writable file system",
    errno.EACCES: "check the permissions or write elsewhere", errno.EPERM: "check the permissions or write elsewhere"}
CHECK_THE_PATH = "check the path and rerun"
#: How torch.save's zip writer reports a failed write: a RuntimeError without errno
#: ("[enforce fail at inline_container.cc] ...").
TORCH_WRITE_FAILURE = ("inline_container", "PytorchStreamWriter failed writing")


def _nearest_existing(path: Path) -> Path:
    for candidate in [path, *path.parents]:
        if os.path.lexists(candidate):
            return candidate
    return Path(".")


def check_output(option: str, path, kind: str = FILE) -> Path:
    """Refuse an output ``path`` that cannot be written as ``kind``; return it as a :class:`Path`."""
    text = os.fspath(path)
    where = f"{option} {text}"
    target = Path(text)
    if not text.strip():
        raise ParameterError(f"{option} is empty: give the {kind} to write")
    if kind == FILE and (text.endswith(os.sep) or target.is_dir()):
        raise ParameterError(f"{where} is a folder, but a file is written there: give a file name "
                             f"(e.g. {os.path.join(text, 'NAME')}, with the extension the option asks for)")
    if kind == FOLDER and target.exists() and not target.is_dir():
        raise ParameterError(f"{where} is a file, but a folder is written there: give a folder name")
    existing = _nearest_existing(target.parent)
    if not existing.is_dir():
        raise ParameterError(f"{where}: {existing} is a file, not a folder: write the output elsewhere "
                             "or move that file away")
    _check_writable_folder(where, existing)
    return target


def _check_writable_folder(where: str, folder: Path) -> None:
    try:
        # An unnamed temporary file (O_TMPFILE where supported): proves writability, leaves nothing behind.
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise ParameterError(f"{where}: cannot write in {folder} ({os.strerror(exc.errno or errno.EIO)}): "
                             "choose a folder you may write to") from None
    free = shutil.disk_usage(folder).free
    if free < MIN_FREE_BYTES:
        raise ParameterError(f"{where}: the disk holding {folder} is full ({free} bytes free): "
                             "free some space or write the output elsewhere")


def lock_path(output: Path) -> Path:
    """The lock file beside ``output`` while a run writes it."""
    return output.with_name(f".{output.name}{LOCK_SUFFIX}")


@contextlib.contextmanager
def _exclusive_lock(option: str, output: Path) -> Iterator[None]:
    lock = lock_path(output)
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        handle = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(handle)
            raise ParameterError(f"{option} {output}: another deepict run is writing it now (lock {lock}): "
                                 "wait for that run to end or give another output") from None
        # The lock file may have been removed by its previous holder between open and flock: retry on the new one.
        try:
            same = os.path.samestat(os.fstat(handle), os.stat(lock))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(handle)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()
        os.close(handle)


def _option_field(option: str) -> str:
    """The job field of a command-line option (``--probability-map`` -> ``probability_map``)."""
    return option.lstrip("-").replace("-", "_")


def _job_files(job: Any, skip: set) -> Iterator[tuple[str, str]]:
    """(option, path) of every existing file a job's parameters name, its groups' included, but the ``skip`` fields."""
    for field in dataclasses.fields(job):
        value = getattr(job, field.name)
        if dataclasses.is_dataclass(value):
            yield from _job_files(value, skip)
        elif field.name not in skip:
            for item in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(item, (str, os.PathLike)) and os.fspath(item).strip() and os.path.isfile(item):
                    yield f"--{field.name.replace('_', '-')}", os.fspath(item)


@contextlib.contextmanager
def claimed_outputs(*outputs, job: Any = None) -> Iterator[None]:
    """Check every ``(option, path[, kind])`` output (``path`` None: not asked for); lock them while the block runs.

    The same path given for two outputs of one run is refused too, as one would overwrite the other;
    so is an output that is one of the files the run's ``job`` reads (any other of its parameters),
    which the run would overwrite. A write that fails inside the block without naming its file (a
    full disk: ``write()`` knows no name) is reported as a failure to write these outputs.
    """
    checked = {}
    for option, path, *kind in outputs:
        if path is None:
            continue
        target = check_output(option, path, *kind)
        key = os.path.realpath(target)
        if key in checked:
            raise ParameterError(f"{option} and {checked[key][0]} both name {path}: give each output its own file")
        checked[key] = (option, target)
    if job is not None:
        for input_option, path in _job_files(job, {_option_field(option) for option, *_ in outputs}):
            key = os.path.realpath(path)
            if key in checked:
                option, target = checked[key]
                raise ParameterError(f"{option} {target} is also an input of this run ({input_option} {path}), "
                                     "which writing it would destroy: write the output to a new file")
    with contextlib.ExitStack() as stack:
        for option, target in checked.values():
            stack.enter_context(_exclusive_lock(option, target))
        try:
            yield
        except OSError as exc:
            if exc.filename is not None or exc.errno not in WRITE_ERROR_ADVICE or not checked:
                raise
            raise _write_failed(checked, os.strerror(exc.errno), WRITE_ERROR_ADVICE[exc.errno]) from None
        except RuntimeError as exc:
            if not any(mark in str(exc) for mark in TORCH_WRITE_FAILURE) or not checked:
                raise
            raise _write_failed(checked, "the disk is full or a file-size limit was reached",
                                WRITE_ERROR_ADVICE[errno.ENOSPC]) from None


def _write_failed(checked: dict, cause: str, advice: str) -> ParameterError:
    names = ", ".join(f"{option} {target}" for option, target in checked.values())
    return ParameterError(f"{names}: writing failed ({cause}): {advice}")
