"""Speed and memory of ``deepict segment2d`` on a 928 × 928 tomogram (the size of the issue's measurement).

Writes a noise tomogram of 928 × 928 × ``--slices`` voxels (int8, 13.48 Å) and a 2D model with the
default architecture (depth 5, 16 filters, 128 px training tiles: untrained weights cost the same
as trained ones) and runs ``deepict segment2d`` on it in a child process for each setting, in turn:

- ``former``: the former defaults, 416 px tiles (9 per slice) and 2 tiles per network call;
- ``engine``: the engine's defaults (tile size chosen by ``auto_tile_size``, batch of
  ``DEFAULT_BATCH_SIZE`` tiles);
- ``one_tile_per_slice``: one 1024 px tile per slice (the least work; more memory per call).

It reports wall time (start-up excluded), seconds per slice, the time projected to 464 slices
and the child's peak resident memory (``VmHWM``). With ``--slices 464`` the projection is the
measured time. Targets (issue 14): 464 slices in ≤ 4 min, peak RSS ≤ 1 GB.

Usage: ``python benchmarks/bench_segment2d_speed.py [--slices N] [--threads N] [--workdir DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from common import deepict_measured, write_noise_tomogram

from deepict.nn.model_files import KIND_2D, ModelInfo, build_network, save_model  # noqa: E402
from deepict.train.config import Train2DConfig  # noqa: E402

SLICE_YX = (928, 928)
FULL_SLICES = 464
TARGET_S, TARGET_RSS_BYTES = 240, 1e9
SETTINGS = {"former": ["--tile-size", "416", "--batch-size", "2"], "engine": [],
            "one_tile_per_slice": ["--tile-size", "1024", "--batch-size", "1"]}


def write_model(path: Path) -> None:
    config = Train2DConfig()
    info = ModelInfo(kind=KIND_2D, classes=["cytosol"], voxel_size=13.48, patch_size=config.tile_size,
                     overlap=config.crop, architecture={"depth": config.depth,
                                                        "initial_features": config.initial_features})
    save_model(path, build_network(info), info)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slices", type=int, default=24, help="z slices of the tomogram (default 24; 464 = the "
                                                                 "issue's full tomogram)")
    parser.add_argument("--threads", type=int, help="torch threads (default: every usable core)")
    parser.add_argument("--settings", nargs="+", choices=sorted(SETTINGS), default=list(SETTINGS))
    parser.add_argument("--workdir", help="folder for the temporary files (default: a temporary folder)")
    args = parser.parse_args()
    if args.workdir:  # a folder of the user's, maybe not made yet
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
    report = {"benchmark": "segment2d_speed", "shape_zyx": [args.slices, *SLICE_YX], "cpu_cores":
              len(os.sched_getaffinity(0)), "threads": args.threads, "load_start": os.getloadavg(), "runs": {}}
    with tempfile.TemporaryDirectory(prefix="bench-segment2d-", dir=args.workdir) as folder:
        work = Path(folder)
        write_model(work / "model.pt")
        write_noise_tomogram(work / "tomogram.mrc", (args.slices, *SLICE_YX), 13.48, dtype=np.int8)
        for name in args.settings:
            result = deepict_measured("segment2d", "--model", work / "model.pt", "--tomogram", work / "tomogram.mrc",
                                      "--out", work / "mask.mrc", "--device", "cpu", *SETTINGS[name],
                                      threads=args.threads)
            if "wall_s" in result:
                per_slice = result["wall_s"] / args.slices
                result.update(options=SETTINGS[name], seconds_per_slice=round(per_slice, 3),
                              projected_464_slices_s=round(per_slice * FULL_SLICES, 1),
                              meets_time_target=per_slice * FULL_SLICES <= TARGET_S,
                              meets_rss_target=result["peak_rss_bytes"] <= TARGET_RSS_BYTES)
            report["runs"][name] = result
            print(json.dumps({name: result}), file=sys.stderr, flush=True)
    runs = report["runs"]
    if all("seconds_per_slice" in runs.get(name, {}) for name in SETTINGS):
        report["speedup"] = round(runs["former"]["seconds_per_slice"] / runs["engine"]["seconds_per_slice"], 2)
    report["load_end"] = os.getloadavg()
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
