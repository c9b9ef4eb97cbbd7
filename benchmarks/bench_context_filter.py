"""Benchmark of ``deepict filter-context`` on a full-size mask; prints one JSON document.

Writes (slab by slab) a 928 x 928 x 464 int8 mask at 13.48 Å/voxel holding an ellipsoidal
compartment and a 3-voxel thick membrane sheet, and the same mask binned twice (26.96 Å), plus
20 000 random coordinates (a template-matching list) with a score; then runs ``deepict
filter-context`` in a subprocess for each mode (100 Å) and reports the kept count, the wall time
and the child's own peak resident memory (``ru_maxrss``). The binned mask must keep nearly the same
points (only those within a voxel of the border may differ).

Usage: python benchmarks/bench_context_filter.py [--work DIR] [--points N] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import add_threads_option, use_threads
from deepict.io import CoordinateTable, read_coordinates, volume_writer, write_coordinates

SHAPE = (464, 928, 928)  # z, y, x
VOXEL = 13.48
DISTANCE = 100.0


def mask_slab(z0: int, z1: int, binning: int = 1) -> np.ndarray:
    """Voxels z0:z1 of the mask at ``binning`` (coordinates of voxel centres in unbinned voxels)."""
    shape = tuple(s // binning for s in SHAPE)
    z, y, x = np.meshgrid(*[(np.arange(a, b) + 0.5) * binning - 0.5 for a, b in
                            ((z0, z1), (0, shape[1]), (0, shape[2]))], indexing="ij", sparse=True)
    compartment = ((x - 400) / 300) ** 2 + ((y - 460) / 350) ** 2 + ((z - 232) / 180) ** 2 <= 1
    membrane = np.abs(x + 0.3 * y - 900) <= 1.5
    return (compartment | membrane).astype(np.int8)


def write_mask(path: Path, binning: int) -> None:
    shape = tuple(s // binning for s in SHAPE)
    with volume_writer(path, shape, np.int8, VOXEL * binning) as write:
        for z0 in range(0, shape[0], 16):
            write(z0, mask_slab(z0, min(shape[0], z0 + 16), binning))


#: Runs the command in a child and prints the child's own peak resident memory (KiB) after its JSON line.
_CHILD = ("import resource, sys\nfrom deepict.cli.main import main\ncode = main(sys.argv[1:])\n"
          "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\nsys.exit(code)")


def run(arguments) -> dict:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", _CHILD, "filter-context", *arguments], capture_output=True,
                            text=True)
    wall = time.perf_counter() - start
    if result.returncode:
        raise SystemExit(result.stderr)
    *_, line, peak_kib = result.stdout.strip().splitlines()
    summary = json.loads(line)
    return {"kept": summary["kept"], "rejected": summary["rejected"], "seconds": round(wall, 2),
            "peak_rss_mib": round(int(peak_kib) / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--points", type=int, default=20000)
    add_threads_option(parser)
    args = parser.parse_args()
    use_threads(args.threads)  # the filter-context children inherit it
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_context_"))
    work.mkdir(parents=True, exist_ok=True)
    masks = {1: work / "mask.mrc", 2: work / "mask_bin2.mrc"}
    start = time.perf_counter()
    for binning, path in masks.items():
        if not path.exists():
            write_mask(path, binning)
    write_seconds = time.perf_counter() - start
    rng = np.random.default_rng(0)
    xyz = rng.uniform(0, 1, (args.points, 3)) * (np.array(SHAPE[::-1]) - 1)
    coords = work / "picks.csv"
    write_coordinates(coords, CoordinateTable(xyz.round(2), {"score": rng.uniform(size=len(xyz)).round(4)}, VOXEL))
    results = {"shape_xyz": SHAPE[::-1], "voxel_size": VOXEL, "points": args.points, "distance_angstrom": DISTANCE,
               "mask_write_seconds": round(write_seconds, 1)}
    for binning, path in masks.items():
        for mode in ("intersection", "contact", "colocalization"):
            out, rejected = work / f"kept_{mode}_bin{binning}.csv", work / f"rejected_{mode}_bin{binning}.csv"
            results[f"{mode}_bin{binning}"] = run(["--coords", str(coords), "--context", str(path), "--mode", mode,
                                                   "--distance-angstrom", str(DISTANCE), "--out", str(out),
                                                   "--rejected", str(rejected)])
    for mode in ("intersection", "contact", "colocalization"):
        unbinned = {tuple(p) for p in read_coordinates(work / f"kept_{mode}_bin1.csv").xyz}
        binned = {tuple(p) for p in read_coordinates(work / f"kept_{mode}_bin2.csv").xyz}
        results[f"{mode}_binned_mask_differs"] = len(unbinned ^ binned)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
