"""A protocol run's log folder as it grows: the size of each file now, and what each file got since.

A deepict step's error line, and for a queued job the scheduler's reason, are looked for in what the run's
logs got while the step ran (queue jobs write their own ``.out`` / ``.err`` beside ``run.stdout``).
The folder also holds ``run.db``, whose sqlite journal comes and goes in moments while other steps write
to it: a file that goes between being listed and being read is left out, never an error.
"""

import glob
import os
import stat


def _regular_files(pattern):
    """{path: os.stat_result} of the regular files matching ``pattern`` now."""
    found = {}
    for path in glob.glob(pattern):
        try:
            info = os.stat(path)
        except OSError:  # gone since glob listed it
            continue
        if stat.S_ISREG(info.st_mode):
            found[path] = info
    return found


def log_sizes(pattern):
    """{path: size in bytes} of the files matching ``pattern`` now."""
    return {path: info.st_size for path, info in _regular_files(pattern).items()}


def text_since(pattern, sizes):
    """What each file matching ``pattern`` got after ``sizes`` (from :func:`log_sizes`; a new file from its
    start), as text, the least recently written file first."""
    texts = []
    files = _regular_files(pattern)
    for path in sorted(files, key=lambda path: files[path].st_mtime):
        try:
            with open(path, "rb") as handle:
                handle.seek(sizes.get(path, 0))
                texts.append(handle.read().decode("utf-8", errors="replace"))
        except OSError:
            continue
    return texts
