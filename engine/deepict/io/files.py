"""Files on disk: readable inputs, atomic writes, scratch folders.

Every write is atomic: the data go to a hidden temporary file in the target folder which is
renamed over the target only once complete, so an interrupted run never leaves a half-written
file where a finished one is expected. Outputs get the usual permissions of new files (0666
less the umask). Temporary files and scratch folders carry the host and process id of their
writer, so that a later run removes the ones a killed run left behind.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Iterator

from deepict.errors import InputFileError


def check_readable(path, what: str = "file") -> Path:
    """Refuse a ``path`` that is missing, a folder, or unreadable (permission), naming the cause."""
    path = Path(path)
    if path.is_dir():
        raise InputFileError(path, f"is a folder, not a {what}", f"Give the path of the {what} itself.")
    if not path.is_file():
        raise InputFileError(path, f"{what} not found", "Check the path.")
    try:
        with open(path, "rb"):
            pass
    except PermissionError:
        raise InputFileError(path, "cannot be read: permission denied",
                             "Ask its owner to make it readable (chmod a+r), or copy it to a folder "
                             "you can read.") from None
    return path


TEMPORARY_SUFFIX = ".part"
SCRATCH_PREFIX = ".deepict-"
#: ``<host>-<pid>`` of the process owning a temporary file or scratch folder, inside its name.
_OWNER = re.compile(r"\.(?P<host>[A-Za-z0-9_]+)-(?P<pid>[0-9]+)\.[a-z0-9_]+(?:\.part)?$")
#: Bytes of the output name kept in a temporary name.
_NAME_KEEP = 180


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname())


def _owner_tag() -> str:
    return f"{_host()}-{os.getpid()}"


def _left_by_dead_process(name: str) -> bool:
    """Whether a temporary named ``name`` belongs to a process of this host that no longer runs.

    Temporaries of other hosts (a shared file system) and of running processes are never touched.
    """
    match = _OWNER.search(name)
    if not match or match["host"] != _host() or int(match["pid"]) == os.getpid():
        return False
    try:
        os.kill(int(match["pid"]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):
        pass  # another user's process runs under that id
    return False


def is_temporary_name(name: str) -> bool:
    """Whether ``name`` is that of a temporary file (:func:`atomic_path`) or a scratch folder
    (:func:`scratch_directory`) of this package: what a killed run leaves behind."""
    return name.startswith(SCRATCH_PREFIX) or name.startswith(".") and name.endswith(TEMPORARY_SUFFIX)


def remove_stale_temporaries(folder) -> None:
    """Remove the temporary files and scratch folders that killed runs (SIGKILL, power loss) left in ``folder``."""
    folder = Path(folder)
    with contextlib.suppress(OSError):
        for stale in [entry for entry in folder.iterdir() if is_temporary_name(entry.name)]:
            if not _left_by_dead_process(stale.name):
                continue
            with contextlib.suppress(OSError):
                if stale.is_dir() and not stale.is_symlink():
                    shutil.rmtree(stale)
                else:
                    stale.unlink()


def _create_temporary(path: Path) -> Path:
    """A new empty hidden file beside ``path``, created with the umask's permissions (unlike mkstemp's 0600)."""
    # File names are limited to 255 bytes: keep the start of a long output name.
    name = path.name.encode()[:_NAME_KEEP].decode(errors="ignore")
    while True:
        tmp = path.with_name(f".{name}.{_owner_tag()}.{secrets.token_hex(4)}{TEMPORARY_SUFFIX}")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue


@contextlib.contextmanager
def atomic_path(path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary file is removed whatever ends the block (errors, KeyboardInterrupt, SystemExit);
    leftovers of killed earlier runs in that folder are removed first. The output gets the
    permissions of any new file (0666 less the umask).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent)
    tmp = None
    try:
        tmp = _create_temporary(path)
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp is not None and tmp.exists():
            tmp.unlink()


class _ScratchDirectory(tempfile.TemporaryDirectory):
    def __enter__(self) -> Path:
        return Path(self.name)


def scratch_directory(beside) -> tempfile.TemporaryDirectory:
    """A hidden scratch folder in the folder of the output ``beside`` (same file system, owner in its name).

    Use it as ``with scratch_directory(out) as folder:`` (a :class:`Path`, removed on exit), or keep the
    object (``.name``, ``.cleanup()``) like a :class:`tempfile.TemporaryDirectory`. Scratch folders that
    killed earlier runs left in that folder are removed first.
    """
    parent = Path(beside).resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(parent)
    return _ScratchDirectory(prefix=f"{SCRATCH_PREFIX}scratch.{_owner_tag()}.", dir=parent)

