"""The warnings a ``deepict STEP --job FILE`` run printed, kept beside its job file.

A step warns by printing a line that starts with ``warning: `` (to its output or its error stream): a
tomogram unlike the model's training data, a cluster that fills the map, repeated rows in a table. Run
with ``--job X.json``, those lines are also written to ``X.warnings.json`` (a JSON list of the lines
without their prefix), so that the program that wrote the job (the Scipion protocols' summaries) shows
what the engine found worth a warning. The engine decides once what deserves one; nobody parses logs,
which parallel steps interleave.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Iterator

from deepict.io.files import atomic_path

#: How a printed line says that it is a warning.
WARNING_PREFIX = "warning: "
#: What replaces ``.json`` in the name of a job file to name the file of its warnings.
WARNINGS_SUFFIX = ".warnings.json"


def warnings_path(job_file) -> Path:
    """Where the warnings of the run of ``job_file`` are kept: ``X.json`` -> ``X.warnings.json``."""
    job_file = Path(job_file)
    return job_file.with_name(f"{job_file.stem}{WARNINGS_SUFFIX}")


def warnings_in_folder(folder) -> dict:
    """{job name (``X`` of ``X.json``): its warnings} of the jobs in ``folder`` that recorded some, by name."""
    found = {}
    for path in sorted(Path(folder).glob(f"*{WARNINGS_SUFFIX}")):
        job = path.name[:-len(WARNINGS_SUFFIX)]
        warnings = read_warnings(path.with_name(f"{job}.json"))
        if warnings:
            found[job] = warnings
    return found


def read_warnings(job_file) -> list[str]:
    """The warnings the last run of ``job_file`` printed (none when it recorded none, or never ran)."""
    try:
        warnings = json.loads(warnings_path(job_file).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [str(line) for line in warnings] if isinstance(warnings, list) else []


def forget_warnings(job_file) -> None:
    """Remove the warnings of an earlier run of ``job_file`` (before it runs again)."""
    warnings_path(job_file).unlink(missing_ok=True)


class _WarningTee:
    """A text stream that passes everything on to ``stream`` and keeps the warning lines."""

    def __init__(self, stream, warnings: list):
        self._stream, self._warnings, self._line = stream, warnings, ""

    def write(self, text: str) -> int:
        self._line += text
        *complete, self._line = self._line.split("\n")
        self._warnings.extend(line[len(WARNING_PREFIX):].strip() for line in complete
                              if line.startswith(WARNING_PREFIX))
        return self._stream.write(text)

    def close_line(self) -> None:
        """Keep a last warning printed without its newline."""
        if self._line.startswith(WARNING_PREFIX):
            self.write("\n")

    def __getattr__(self, name):
        return getattr(self._stream, name)


@contextlib.contextmanager
def recording_warnings(job_file) -> Iterator[list]:
    """Within the block, keep every warning line printed to ``sys.stdout`` or ``sys.stderr``; at its end,
    however it ends, write them to :func:`warnings_path` (atomically; an empty list when there were none).

    Not writing them (a read-only folder) fails nothing: the warnings are in the step's output anyway."""
    warnings: list[str] = []
    streams = sys.stdout, sys.stderr
    tees = _WarningTee(sys.stdout, warnings), _WarningTee(sys.stderr, warnings)
    sys.stdout, sys.stderr = tees
    try:
        yield warnings
    finally:
        for tee in tees:
            tee.close_line()
        sys.stdout, sys.stderr = streams
        if Path(job_file).parent.is_dir():
            with contextlib.suppress(OSError), atomic_path(warnings_path(job_file)) as tmp:
                tmp.write_text(json.dumps(warnings, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
