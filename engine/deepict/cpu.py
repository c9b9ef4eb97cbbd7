"""How many CPU threads a step may use: one rule for torch's thread pool and the FFTs (no torch import here).

``OMP_NUM_THREADS`` when set to a positive number (Scipion sets it from a protocol's thread count, a user
sharing a machine sets it, ``--threads N`` sets it for the rest of the step), else the CPUs this process may
run on (a scheduler's CPU binding, e.g. SLURM's task/affinity)."""

from __future__ import annotations

import os

#: The environment variable that carries the thread count to torch, the FFTs and any child process.
THREADS_VARIABLE = "OMP_NUM_THREADS"


def cpu_threads() -> int:
    """Threads for CPU work: ``OMP_NUM_THREADS`` if set to a positive number, else the usable cores."""
    requested = os.environ.get(THREADS_VARIABLE, "").strip()
    if requested.isdigit() and int(requested) > 0:
        return int(requested)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def limit_threads(threads: int) -> None:
    """Use ``threads`` CPU threads from now on in this step (:func:`cpu_threads` returns it)."""
    os.environ[THREADS_VARIABLE] = str(int(threads))
