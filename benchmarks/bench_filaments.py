"""Filament tracing against known centre lines, and its time and memory on a whole tomogram.

Synthetic filament scenes (:mod:`deepict.synthetic.filaments`: microtubule- and actin-like filaments,
crossing, touching, leaving and re-entering the volume, ending inside it) are traced with
``deepict filaments`` (as a user runs it) from two masks each: the exact mask, and a mask made by
thresholding a blurred noisy copy of it (Gaussian noise of standard deviation 1, blurred with
sigma 1.5 voxels, > 0.5: bumpy borders). Scores (:mod:`deepict.filaments.scoring`; voxels):
recall = fraction of the true centre-line length within 1.5 voxels of a traced centre line (the
polyline through a filament's points; goal >= 0.9), precision = fraction of the sampled points
within 1.5 voxels of a true centre line (>= 0.95), median orientation error (<= 10 degrees),
spacing error = |median spacing / asked - 1| (<= 0.05), shared ids = traced filaments holding
two true filaments (0). Then the time and peak memory (the child's VmHWM) of tracing a
928 x 928 x 464 mask holding 50 more filaments (goal <= 60 s, <= 3 GB), and its scores.

    .venv/bin/python benchmarks/bench_filaments.py [--seeds 3] [--spacing-angstrom 40] [--no-large] [--workdir DIR]

Prints one JSON object. Uses /tmp/bench.lock (one benchmark at a time on the machine).
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from common import deepict, deepict_measured

from deepict.filaments.scoring import score_trace  # noqa: E402
from deepict.io import read_coordinates, write_volume  # noqa: E402
from deepict.synthetic.filaments import FilamentSceneConfig, make_filament_scene  # noqa: E402

GOALS = {"recall": 0.9, "precision": 0.95, "median_orientation_error_deg": 10.0, "spacing_error": 0.05,
         "shared_ids": 0, "wall_s": 60.0, "peak_rss_gb": 3.0}
LARGE_SHAPE_ZYX = (464, 928, 928)
NOISE_STD, BLUR_SIGMA = 1.0, 1.5


def noisy_mask(mask: np.ndarray, seed: int) -> np.ndarray:
    """The mask as a segmentation might give it: a blurred noisy copy thresholded at 0.5."""
    noise = np.random.default_rng(seed).normal(0.0, NOISE_STD, mask.shape).astype(np.float32)
    return ndimage.gaussian_filter(mask.astype(np.float32) + noise, BLUR_SIGMA) > 0.5


def trace(mask_path: Path, out: Path, spacing: float, measured: bool = False) -> dict:
    arguments = ("filaments", "--mask", mask_path, "--spacing-angstrom", spacing, "--out", out)
    if measured:
        return deepict_measured(*arguments)
    deepict(*arguments)
    return {}


def scored(out: Path, scene, spacing: float) -> dict:
    scores = score_trace(read_coordinates(out), scene.centre_lines, spacing / scene.voxel_size)
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in scores.items()}


def quality(workdir: Path, seeds: int, spacing: float) -> dict:
    runs = {"exact": [], "noisy": []}
    for seed in range(seeds):
        config = FilamentSceneConfig(seed=seed, n_random_actin=1 + seed % 2, n_random_microtubules=seed % 2)
        scene = make_filament_scene(config, image=False)
        for kind, mask in (("exact", scene.masks["filaments"]), ("noisy", noisy_mask(scene.masks["filaments"], seed))):
            path = workdir / f"scene{seed}_{kind}.mrc"
            write_volume(path, mask.astype(np.int8), scene.voxel_size)
            out = workdir / f"scene{seed}_{kind}.csv"
            trace(path, out, spacing)
            runs[kind].append({"seed": seed, **scored(out, scene, spacing)})
    summary = {}
    for kind, rows in runs.items():
        summary[kind] = {
            "recall_min": min(r["recall"] for r in rows), "precision_min": min(r["precision"] for r in rows),
            "median_orientation_error_deg_max": max(r["median_orientation_error_deg"] for r in rows),
            "spacing_error_max": max(r["spacing_error"] for r in rows),
            "shared_ids_total": sum(r["shared_ids"] for r in rows), "scenes": rows}
    return summary


def large(workdir: Path, spacing: float) -> dict:
    started = time.perf_counter()
    config = FilamentSceneConfig(shape_zyx=LARGE_SHAPE_ZYX, n_random_microtubules=15, n_random_actin=35, seed=11)
    scene = make_filament_scene(config, image=False)
    path = workdir / "large_mask.mrc"
    write_volume(path, scene.masks["filaments"].astype(np.int8), scene.voxel_size)
    made = time.perf_counter() - started
    fraction = float(scene.masks["filaments"].mean())
    del scene.masks
    out = workdir / "large.csv"
    measured = trace(path, out, spacing, measured=True)
    if "error" in measured:
        return measured
    return {"shape_xyz": list(LARGE_SHAPE_ZYX[::-1]), "filament_voxel_fraction": round(fraction, 4),
            "true_filaments": len(scene.centre_lines), "scene_seconds": round(made, 1),
            "wall_s": measured["wall_s"], "peak_rss_gb": measured["peak_rss_gb"],
            **{k: v for k, v in scored(out, scene, spacing).items() if k != "true_filaments"}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--spacing-angstrom", type=float, default=40.0)
    parser.add_argument("--no-large", action="store_true", help="skip the 928 x 928 x 464 time and memory run")
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    if args.workdir:  # a folder of the user's, maybe not made yet
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
    lock = Path("/tmp/bench.lock")
    while True:
        try:
            lock.mkdir()
            break
        except FileExistsError:
            time.sleep(5)
    try:
        with tempfile.TemporaryDirectory(dir=args.workdir) as scratch:
            workdir = Path(scratch)
            result = {"spacing_angstrom": args.spacing_angstrom, "goals": GOALS,
                      "quality": quality(workdir, args.seeds, args.spacing_angstrom)}
            if not args.no_large:
                result["large"] = large(workdir, args.spacing_angstrom)
    finally:
        lock.rmdir()
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
