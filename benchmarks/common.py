"""What every benchmark needs: where the development data are, running ``deepict`` as a user would
(optionally measuring its wall time and peak memory), and large noise tomograms written without
holding them in memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from deepict.cli.options import positive_int  # noqa: E402  (after the checkout is on the path)
from deepict.cpu import THREADS_VARIABLE  # noqa: E402

SHARED = REPO.parent / "shared"
DEV = SHARED / "data" / "dev"
PUBLISHED = SHARED / "models" / "published"

# Runs ``deepict`` in a child process and prints its own measurements on the last line. VmHWM is
# the high-water mark of the child's own memory map; ru_maxrss is not: Linux carries the forking
# parent's peak over to an exec'd child, so it is at least the benchmark's own RSS.
_MEASURED_CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
start = time.perf_counter()
from deepict.cli.main import build_parser, main
build_parser()
startup = time.perf_counter() - start
start = time.perf_counter()
rc = main(sys.argv[2:])
wall = time.perf_counter() - start
with open("/proc/self/status") as status:
    hwm = [int(line.split()[1]) for line in status if line.startswith("VmHWM:")]
peak = hwm[0] if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print("BENCH_RESULT " + json.dumps({"rc": rc, "wall_s": wall, "startup_s": startup, "peak_rss_kib": peak}))
"""


def add_threads_option(parser) -> None:
    """``--threads N`` of a benchmark: the CPU threads of every deepict step it runs (apply with :func:`use_threads`).

    On a shared machine a step on every core waits for descheduled threads; a fixed count also makes runs
    comparable from machine to machine."""
    parser.add_argument("--threads", type=positive_int, metavar="N",
                        help=f"CPU threads of every deepict step it runs ({THREADS_VARIABLE}; default: every "
                             "usable core)")


def use_threads(threads: int | None) -> None:
    """Every deepict step started from now on (child processes, and torch here once deepict chooses its device) uses
    ``threads`` CPU threads: the engine reads the count from ``OMP_NUM_THREADS`` (:func:`deepict.cpu.cpu_threads`).
    ``None`` keeps the engine's default."""
    if threads:
        os.environ[THREADS_VARIABLE] = str(threads)


def deepict(*args, log: str | None = None) -> str:
    """Run ``deepict ARGS`` (this checkout) and return its stdout; exit with its stderr on failure.

    A training without ``--resume`` first removes what an earlier run of the benchmark left at its ``--out``
    (the model and its state), which a training refuses to overwrite. With ``log``, a line with the elapsed
    time and ``log`` goes to stderr (progress of long runs)."""
    args = [str(arg) for arg in args]
    if args[0] in ("train3d", "train2d") and "--resume" not in args:
        from deepict.train.state import state_path
        out = Path(args[args.index("--out") + 1])
        for stale in (out, state_path(out)):
            stale.unlink(missing_ok=True)
    command = [sys.executable, "-m", "deepict.cli.main", *args]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    if log:
        print(f"[{time.perf_counter() - started:7.1f} s] deepict {args[0]} {log}", file=sys.stderr, flush=True)
    return result.stdout


def deepict_measured(*args, threads: int | None = None) -> dict:
    """Run ``deepict ARGS`` in a child process; its wall time (s, without the start-up), start-up
    time and peak resident memory (bytes, the child's own), or ``{"error": ...}`` if it failed."""
    env = dict(os.environ)
    if threads:
        env[THREADS_VARIABLE] = str(threads)
    command = [sys.executable, "-c", _MEASURED_CHILD, str(REPO), *map(str, args)]
    completed = subprocess.run(command, capture_output=True, text=True, env=env)
    lines = [line for line in completed.stdout.splitlines() if line.startswith("BENCH_RESULT ")]
    if completed.returncode or not lines:
        return {"error": f"deepict {args[0]} failed (exit {completed.returncode}): {completed.stderr[-2000:]}"}
    child = json.loads(lines[-1].removeprefix("BENCH_RESULT "))
    return {"wall_s": round(child["wall_s"], 1), "startup_s": round(child["startup_s"], 2),
            "peak_rss_bytes": child["peak_rss_kib"] * 1024, "peak_rss_gb": round(child["peak_rss_kib"] * 1024 / 1e9, 3),
            "log_tail": [line for line in (completed.stdout + completed.stderr).strip().splitlines()
                         if not line.startswith("BENCH_RESULT ")][-3:]}


def write_noise_tomogram(path: Path, shape_zyx, voxel_size: float, dtype=np.float32, seed: int = 0) -> None:
    """Gaussian noise (int8: clipped to ±40) written 16 slices at a time, so memory stays small."""
    from deepict.io import volume_writer

    rng = np.random.default_rng(seed)
    with volume_writer(path, tuple(shape_zyx), dtype, voxel_size) as write:
        for z0 in range(0, shape_zyx[0], 16):
            slab = rng.standard_normal((min(16, shape_zyx[0] - z0),) + tuple(shape_zyx[1:]), dtype=np.float32)
            if np.dtype(dtype) == np.int8:
                slab = np.clip(slab * 15, -40, 40)
            write(z0, slab.astype(dtype))
