"""Picking quality on the development set: train on vpp_000-002, pick on vpp_003, particle F1.

Prints one JSON object: per class (ribosome, fas) the F1 / precision / recall / AUPRC of our network
(10-voxel tolerance, one-to-one matching), the training time, and what the published DeePiCt
ribosome network gives on the same tomogram (it was trained on spectrum-matched S. pombe data that
we do not have, so it is applied as is).

    .venv/bin/python benchmarks/bench_picking_quality.py [--epochs 40] [--iterations 25] [--workdir DIR]

Skips (with a JSON note) when ../shared is absent. Uses the ``deepict`` command, as a user would.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from common import DEV, PUBLISHED, deepict

PUBLISHED_RIBOSOME = PUBLISHED / "ribosomeModel.pth"
TRAIN, TEST = ["vpp_000", "vpp_001", "vpp_002"], "vpp_003"
RADIUS = {"ribosome": 8, "fas": 8}


def evaluate(picks, truth):
    scores = json.loads(deepict("evaluate", "--pred", picks, "--gt", truth, "--radius", 10))["particles"]
    return {k: scores[k] for k in ("f1", "precision", "recall", "auprc", "n_pred", "n_true", "max_f1")}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--iterations", type=int, default=25)
    parser.add_argument("--classes", nargs="+", default=["ribosome", "fas"])
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    if not DEV.is_dir():
        print(json.dumps({"skipped": f"{DEV} not found"}))
        return 0
    work = Path(args.workdir or tempfile.mkdtemp(prefix="deepict-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    report = {"train": TRAIN, "test": TEST, "epochs": args.epochs, "iterations_per_epoch": args.iterations,
              "load_average": os.getloadavg()}
    for name in args.classes:
        model = work / f"{name}.pt"
        started = time.time()
        deepict("train3d", "--tomograms", *[DEV / f"{t}.mrc" for t in TRAIN],
                "--coords", *[DEV / f"{t}_{name}.csv" for t in TRAIN], "--class-name", name,
                "--radius", RADIUS[name], "--epochs", args.epochs, "--iterations-per-epoch", args.iterations,
                "--out", model)
        train_seconds = time.time() - started
        picks = work / f"{name}_{TEST}.csv"
        started = time.time()
        deepict("pick", "--model", model, "--tomogram", DEV / f"{TEST}.mrc", "--out", picks)
        report[name] = {**evaluate(picks, DEV / f"{TEST}_{name}.csv"), "train_seconds": round(train_seconds, 1),
                        "pick_seconds": round(time.time() - started, 1)}
    if PUBLISHED_RIBOSOME.exists():
        model = work / "published_ribosome.pt"
        deepict("import-model", PUBLISHED_RIBOSOME, "--voxel-size", 13.48, "--out", model)
        picks = work / f"published_{TEST}.csv"
        deepict("pick", "--model", model, "--tomogram", DEV / f"{TEST}.mrc", "--out", picks, "--min-distance", 8)
        report["published_ribosome_network"] = evaluate(picks, DEV / f"{TEST}_ribosome.csv")
    report["load_average_end"] = os.getloadavg()
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
