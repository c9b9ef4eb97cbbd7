"""Does ``deepict ensemble`` pay? Particle F1 of each network and of their ensemble, as ``deepict pick`` picks.

Trains (or takes) one network per seed on vpp_000-002, combines them with ``deepict ensemble`` twice
(the networks' median post-processing, and calibrated on their training tomograms), and picks
vpp_003 and the defocus tomograms with every model, plain and with ``--test-time-rotations``, each at
its own stored post-processing, as a user would::

    .venv/bin/python benchmarks/bench_ensemble_pick.py --class-name fas --workdir W [--seeds 0 7]
        [--model W/fas_s0.pt --model W/fas_s7.pt] [--no-rotations]

Prints one JSON object: per model and tomogram the F1, precision, recall and the pick's wall time
and peak memory; the defocus mean of each model; the training and combination costs. Skips (a JSON
note) when ../shared is absent.
"""

import argparse
import json
import time
from pathlib import Path

from common import DEV, deepict, deepict_measured

TRAIN, TEST = ["vpp_000", "vpp_001", "vpp_002"], ["vpp_003", "defocus_000", "defocus_001"]
RADIUS, EVALUATION_RADIUS = 8, 10


def train(seed: int, class_name: str, work: Path) -> tuple[Path, dict]:
    model = work / f"{class_name}_s{seed}.pt"
    started = time.perf_counter()
    deepict("train3d", "--tomograms", *[DEV / f"{t}.mrc" for t in TRAIN],
            "--coords", *[DEV / f"{t}_{class_name}.csv" for t in TRAIN], "--class-name", class_name,
            "--radius", RADIUS, "--seed", seed, "--out", model, log=f"seed {seed}")
    return model, {"seed": seed, "train_wall_s": round(time.perf_counter() - started, 1)}


def pick_and_score(model: Path, tomogram: str, class_name: str, rotations: bool, work: Path) -> dict:
    picks = work / f"{model.stem}_{tomogram}{'_rot' if rotations else ''}.csv"
    measured = deepict_measured("pick", "--model", model, "--tomogram", DEV / f"{tomogram}.mrc", "--out", picks,
                                *(["--test-time-rotations"] if rotations else []))
    if "error" in measured:
        return measured
    scores = json.loads(deepict("evaluate", "--pred", picks, "--gt", DEV / f"{tomogram}_{class_name}.csv",
                                "--radius", EVALUATION_RADIUS))["particles"]
    return {"f1": round(scores["f1"], 3), "precision": round(scores["precision"], 3),
            "recall": round(scores["recall"], 3), "n_pred": scores["n_pred"], "pick_wall_s": measured["wall_s"],
            "peak_rss_gb": measured["peak_rss_gb"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--class-name", default="fas", help="ribosome or fas (default: fas)")
    parser.add_argument("--workdir", required=True, help="folder for the models and picks")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 7], help="one network per seed (default 0 7)")
    parser.add_argument("--model", action="append", default=[], help="take this trained network instead of "
                                                                     "training (repeat; replaces --seeds)")
    parser.add_argument("--no-rotations", action="store_true", help="pick without test-time rotations only")
    args = parser.parse_args()
    if not DEV.is_dir():
        print(json.dumps({"skipped": f"{DEV} not found"}))
        return
    work = Path(args.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    if args.model:
        members = [(Path(path).resolve(), {"given": path}) for path in args.model]
    else:
        members = [train(seed, args.class_name, work) for seed in args.seeds]
    models = {path.stem: path for path, _ in members}
    costs = {}
    for name, calibration in (("ensemble_median", []),
                              ("ensemble_calibrated", ["--tomograms", *[DEV / f"{t}.mrc" for t in TRAIN],
                                                       "--coords", *[DEV / f"{t}_{args.class_name}.csv"
                                                                     for t in TRAIN]])):
        models[name] = work / f"{args.class_name}_{name}.pt"
        started = time.perf_counter()
        output = deepict("ensemble", "--models", *[path for path, _ in members], "--out", models[name],
                         *calibration, log=name)
        costs[name] = {"wall_s": round(time.perf_counter() - started, 1),
                       "postprocess": json.loads(output.strip().splitlines()[-1])["postprocess"]}
    if costs["ensemble_median"]["postprocess"] == costs["ensemble_calibrated"]["postprocess"]:
        del models["ensemble_median"]  # the same model: picked once, as ensemble_calibrated
    results = {}
    for name, model in models.items():
        for rotations in ((False,) if args.no_rotations else (False, True)):
            key = f"{name}{' + rotations' if rotations else ''}"
            results[key] = {tomogram: pick_and_score(model, tomogram, args.class_name, rotations, work)
                            for tomogram in TEST}
            defocus = [results[key][t].get("f1") for t in TEST[1:]]
            if None not in defocus:
                results[key]["defocus_mean"] = round(sum(defocus) / len(defocus), 3)
    print(json.dumps({"class": args.class_name, "members": [info for _, info in members], "ensembles": costs,
                      "results": results}, indent=1))


if __name__ == "__main__":
    main()
