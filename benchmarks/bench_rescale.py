"""Picking at other voxel sizes: the same ribosome model on vpp_003 at its native 13.48 Å and on copies
rescaled (here) to 10 Å and 20 Å, which ``deepict pick`` rescales back to the model's voxel size on the fly.

Prints one JSON object: per voxel size the picks mapped back to the native voxels, the fraction of them
within 1.5 native voxels of a native pick (goal >= 0.95) and the particle F1 against the ground truth
(goal: at most 0.03 below the native F1), beside the F1 of the copy brought back to the native grid and
picked there without rescaling (what the copy's sampling still allows: a 20 Å copy has lost the detail
finer than 40 Å); then the time and peak memory (the child's VmHWM) of rescaling a
928 x 928 x 464 float32 tomogram from 13.48 Å to 10 Å (goal <= 3 GB).

    .venv/bin/python benchmarks/bench_rescale.py [--model ribo.pt | --epochs 8 --iterations 25] [--workdir DIR]
                                                 [--no-large]

Without --model, trains a ribosome model on vpp_000-002 first (as bench_picking_quality does, fewer epochs).
Skips (with a JSON note) when ../shared is absent.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import DEV, REPO, deepict, write_noise_tomogram

from deepict.infer.rescale import resample_volume, rescaled_shape, to_input_voxels  # noqa: E402
from deepict.train.config import TrainConfig  # noqa: E402
from deepict.io import CoordinateTable, read_coordinates, read_volume, write_coordinates  # noqa: E402

TRAIN, TEST = ["vpp_000", "vpp_001", "vpp_002"], "vpp_003"
RADIUS = 8
AGREEMENT_VOXELS = 1.5
LARGE_SHAPE_ZYX = (464, 928, 928)

_MEASURED_RESCALE = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from deepict.infer.rescale import resample_volume, rescaled_shape
from deepict.io import read_volume
volume = read_volume(sys.argv[2], check_finite=False)
target = float(sys.argv[4])
shape = rescaled_shape(volume.data.shape, volume.voxel_size / target)
start = time.perf_counter()
resample_volume(volume.data, shape, sys.argv[3], target, label="rescaling", log=lambda line: None)
wall = time.perf_counter() - start
with open("/proc/self/status") as status:
    hwm = [int(line.split()[1]) for line in status if line.startswith("VmHWM:")][0]
print("BENCH_RESULT " + json.dumps({"wall_s": round(wall, 1), "peak_rss_gb": round(hwm * 1024 / 1e9, 3),
                                    "shape_xyz": list(shape[::-1])}))
"""


def particle_scores(picks, truth) -> dict:
    scores = json.loads(deepict("evaluate", "--pred", picks, "--gt", truth, "--radius", 10))["particles"]
    return {k: scores[k] for k in ("f1", "precision", "recall", "n_pred", "n_true")}


def agreement(mapped: np.ndarray, native: np.ndarray) -> float | None:
    """Fraction of ``mapped`` picks within AGREEMENT_VOXELS of some native pick (None without picks)."""
    if not len(mapped):
        return None
    if not len(native):
        return 0.0
    distances = np.linalg.norm(mapped[:, None] - native[None], axis=2).min(axis=1)
    return float(np.mean(distances <= AGREEMENT_VOXELS))


def large_rescale(work: Path) -> dict:
    source = work / "large.mrc"
    write_noise_tomogram(source, LARGE_SHAPE_ZYX, 13.48)
    try:
        completed = subprocess.run([sys.executable, "-c", _MEASURED_RESCALE, str(REPO / "engine"), str(source),
                                    str(work / "large_10A.mrc"), "10"], capture_output=True, text=True)
        lines = [line for line in completed.stdout.splitlines() if line.startswith("BENCH_RESULT ")]
        if completed.returncode or not lines:
            return {"error": completed.stderr[-2000:]}
        return {"from_shape_xyz": list(LARGE_SHAPE_ZYX[::-1]), "from_angstrom": 13.48, "to_angstrom": 10.0,
                **json.loads(lines[-1].removeprefix("BENCH_RESULT "))}
    finally:
        for path in (source, work / "large_10A.mrc"):
            path.unlink(missing_ok=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="a ribosome model at 13.48 Å (default: train one)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=25)
    parser.add_argument("--coarser-sampling", type=float, default=None,
                        help="train3d's --coarser-sampling (default: train3d's default)")
    parser.add_argument("--sizes", type=float, nargs="+", default=[10.0, 20.0])
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--no-large", action="store_true", help="skip the 928 x 928 x 464 rescale")
    args = parser.parse_args()
    if not DEV.is_dir():
        print(json.dumps({"skipped": f"{DEV} not found"}))
        return 0
    work = Path(args.workdir or tempfile.mkdtemp(prefix="deepict-bench-rescale-"))
    work.mkdir(parents=True, exist_ok=True)
    report = {"test": TEST, "agreement_voxels": AGREEMENT_VOXELS}
    model = Path(args.model) if args.model else work / "ribosome.pt"
    if not args.model:
        started = time.time()
        deepict("train3d", "--tomograms", *[DEV / f"{t}.mrc" for t in TRAIN],
                "--coords", *[DEV / f"{t}_ribosome.csv" for t in TRAIN], "--class-name", "ribosome",
                "--radius", RADIUS, "--epochs", args.epochs, "--iterations-per-epoch", args.iterations,
                *(["--coarser-sampling", args.coarser_sampling] if args.coarser_sampling else []),
                "--out", model, log="trained")
        report["training"] = {"train": TRAIN, "epochs": args.epochs, "iterations_per_epoch": args.iterations,
                              "coarser_sampling": args.coarser_sampling or TrainConfig().coarser_sampling,
                              "seconds": round(time.time() - started, 1)}
    tomogram, truth = DEV / f"{TEST}.mrc", DEV / f"{TEST}_ribosome.csv"
    native = read_volume(tomogram)
    native_picks = work / "native.csv"
    started = time.time()
    deepict("pick", "--model", model, "--tomogram", tomogram, "--out", native_picks, log="native")
    report["native"] = {"voxel_size": native.voxel_size, "pick_seconds": round(time.time() - started, 1),
                        **particle_scores(native_picks, truth)}
    native_xyz = read_coordinates(native_picks).xyz
    for size in args.sizes:
        shape = rescaled_shape(native.data.shape, native.voxel_size / size)
        copy = work / f"{TEST}_{size:g}A.mrc"
        resample_volume(native.data, shape, copy, size, log=lambda line: None)
        picks = work / f"picks_{size:g}A.csv"
        started = time.time()
        out = deepict("pick", "--model", model, "--tomogram", copy, "--out", picks, log=f"at {size:g} Å")
        seconds = time.time() - started
        table = read_coordinates(picks)
        mapped = to_input_voxels(table.xyz, native.data.shape, shape)
        mapped_csv = work / f"picks_{size:g}A_in_native_voxels.csv"
        write_coordinates(mapped_csv, CoordinateTable(mapped, {"score": table.column("score")}, native.voxel_size))
        scores = particle_scores(mapped_csv, truth)
        # What the copy still holds, picked without any mapping: the copy brought back to the native grid and
        # picked there. A coarser copy has lost the detail above its Nyquist frequency; this F1 is its limit.
        back, back_picks = work / f"{TEST}_{size:g}A_back.mrc", work / f"picks_{size:g}A_back_native.csv"
        resample_volume(read_volume(copy).data, native.data.shape, back, native.voxel_size, log=lambda line: None)
        deepict("pick", "--model", model, "--tomogram", back, "--out", back_picks, log=f"at {size:g} Å, back")
        back.unlink()
        report[f"{size:g}A"] = {"shape_xyz": list(shape[::-1]), "pick_seconds": round(seconds, 1),
                                "rescale_line": next((line for line in out.splitlines()
                                                      if line.startswith("rescaling") and "factor" in line), None),
                                "agreement_with_native": agreement(mapped, native_xyz),
                                "native_recovered": agreement(native_xyz, mapped),
                                "f1_drop": round(report["native"]["f1"] - scores["f1"], 4),
                                "f1_of_the_copy_at_the_native_grid": particle_scores(back_picks, truth)["f1"],
                                **scores}
        copy.unlink()
    if not args.no_large:
        report["large_rescale"] = large_rescale(work)
    report["workdir"] = str(work)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
