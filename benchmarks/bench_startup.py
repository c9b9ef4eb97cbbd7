"""Start-up time of the ``deepict`` command: ``deepict --help`` and every subcommand's ``--help``.

Each is run ``--runs`` times as a user runs it (``python -m deepict ... --help`` in a fresh process,
the interpreter's own start included); the median wall time per command is reported, with the
slowest median and whether every median is under the target (0.5 s). Prints one JSON object.

Usage: ``python benchmarks/bench_startup.py [--runs N]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from common import REPO

from deepict.cli.main import build_parser  # noqa: E402

TARGET_S = 0.5


def help_seconds(command: list, runs: int) -> float:
    """Median wall time of ``python -m deepict COMMAND --help`` over ``runs`` runs (after one warm-up)."""
    argv = [sys.executable, "-m", "deepict", *command, "--help"]
    env = {**os.environ, "PYTHONPATH": str(REPO / "engine")}
    times = []
    for run in range(runs + 1):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=env)
        if run:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per command (default 5)")
    args = parser.parse_args()
    commands = sorted(build_parser()._subparsers._group_actions[0].choices)
    medians = {"deepict": help_seconds([], args.runs)}
    for command in commands:
        medians[command] = help_seconds([command], args.runs)
    slowest = max(medians, key=medians.get)
    print(json.dumps({"runs": args.runs, "median_help_s": {k: round(v, 3) for k, v in medians.items()},
                      "slowest": slowest, "slowest_s": round(medians[slowest], 3), "target_s": TARGET_S,
                      "all_under_target": all(v < TARGET_S for v in medians.values()),
                      "load_average": [round(v, 2) for v in os.getloadavg()]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
