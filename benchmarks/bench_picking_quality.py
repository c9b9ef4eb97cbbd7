"""Picking quality on the development set: train on vpp_000-002, pick on vpp_003, particle F1.

Prints one JSON object: per class (ribosome, fas) the F1 / precision / recall / AUPRC of our network
with ``deepict pick``'s defaults (10-voxel tolerance, one-to-one matching), the training time, and
what the published DeePiCt ribosome network gives on the same tomogram (it was trained on
spectrum-matched S. pombe data that we do not have, so it is applied as is). ``defocus``: the same
models picking the defocus tomograms with ``deepict pick``'s defaults (cross-domain: training equalizes
to the training tomograms' mean spectrum by default, and pick equalizes new tomograms to it).

``post_processing`` compares, on the same model and its probability map of vpp_003, the model's
stored suggestion with and without splitting touching particles (``--split-touching``), with
the TP recovered by the split. ``--recalibrate`` also repeats the calibration after training on
the model's validation slabs (:mod:`deepict.train.calibrate`): the minimum size alone at threshold
0.5 (the former calibration) and threshold x minimum size x duplicate distance jointly, each with
and without splitting, and scores each choice on vpp_003; when the validation slabs hold too few
particles (FAS), the fallback instead: the minimum size at 0.5 on the whole training tomograms.

    .venv/bin/python benchmarks/bench_picking_quality.py [--epochs N] [--iterations 25] [--workdir DIR]
        [--reuse] [--model CLASS=MODEL.pt ...] [--recalibrate] [--classes ribosome fas] [--no-other-domain]

``--reuse`` takes DIR/<class>.pt when it exists instead of training (and the validation-slab maps
saved there by an earlier ``--recalibrate``). Skips (with a JSON note) when ../shared is absent. Uses
the ``deepict`` command for training, picking and evaluation, as a user would.
"""

import argparse
import contextlib
import json
import math
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import DEV, PUBLISHED, deepict

PUBLISHED_RIBOSOME = PUBLISHED / "ribosomeModel.pth"
TRAIN, TEST = ["vpp_000", "vpp_001", "vpp_002"], "vpp_003"
OTHER_DOMAIN = ["defocus_000", "defocus_001"]
RADIUS = {"ribosome": 8, "fas": 8}
EVALUATION_RADIUS = 10


def evaluate(picks, truth):
    scores = json.loads(deepict("evaluate", "--pred", picks, "--gt", truth, "--radius", EVALUATION_RADIUS))["particles"]
    return {k: scores[k] for k in ("f1", "precision", "recall", "auprc", "n_pred", "n_true", "max_f1")}


def obtain_model(name: str, work: Path, args) -> tuple[Path, dict]:
    given = dict(item.split("=", 1) for item in args.model)
    if name in given:
        return Path(given[name]), {"model": given[name], "trained_by": "given with --model"}
    model = work / f"{name}.pt"
    if args.reuse and model.exists():
        return model, {"model": str(model), "trained_by": "an earlier run (--reuse)"}
    started, cpu = time.time(), children_cpu_seconds()
    deepict("train3d", "--tomograms", *[DEV / f"{t}.mrc" for t in TRAIN],
            "--coords", *[DEV / f"{t}_{name}.csv" for t in TRAIN], "--class-name", name,
            "--radius", RADIUS[name], *(["--epochs", args.epochs] if args.epochs else []),
            "--iterations-per-epoch", args.iterations, "--out", model, log=name)
    return model, {"model": str(model), "epochs": args.epochs or "train3d's default",
                   "iterations_per_epoch": args.iterations, "train_seconds": round(time.time() - started, 1),
                   "train_cpu_seconds": round(children_cpu_seconds() - cpu, 1)}


def children_cpu_seconds() -> float:
    """CPU seconds (user + system) of the finished child processes so far: a training's cost on a shared machine."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def other_domain(model: Path, name: str, work: Path) -> dict:
    """The same model with ``deepict pick``'s defaults on the defocus tomograms (another CTF, lower contrast;
    pick equalizes them to the model's reference spectrum)."""
    scores = {}
    for tomogram in OTHER_DOMAIN:
        picks = work / f"{name}_{tomogram}.csv"
        deepict("pick", "--model", model, "--tomogram", DEV / f"{tomogram}.mrc", "--out", picks,
                log=f"{name} {tomogram}")
        scores[tomogram] = evaluate(picks, DEV / f"{tomogram}_{name}.csv")
    scores["mean_f1"] = round(float(np.mean([scores[t]["f1"] for t in OTHER_DOMAIN])), 4)
    return scores


def pick_centres(probability, radius: float, threshold: float, min_size: int, min_distance: float, split: bool):
    """What ``deepict pick`` does after the prediction, on a probability map: (x, y, z) picks and scores."""
    from deepict.infer.clusters import ClusterParameters, remove_duplicates
    from deepict.infer.picking import clusters_of_map
    clusters = clusters_of_map(probability, ClusterParameters(threshold=threshold, min_size=min_size),
                               split_radius=radius if split else 0.0)
    keep = remove_duplicates(clusters.xyz, clusters.mean_probability, min_distance)
    return clusters.xyz[keep], clusters.mean_probability[keep]


def score_choice(probability, truth_xyz, radius: float, choice: dict, split: bool) -> dict:
    from deepict.evaluate.metrics import score_particles
    xyz, scores = pick_centres(probability, radius, choice["threshold"], choice["min_size"],
                               choice.get("min_distance", radius), split)
    summary, _ = score_particles(xyz, scores, truth_xyz, EVALUATION_RADIUS)
    return {"threshold": choice["threshold"], "min_size": choice["min_size"],
            "min_distance": choice.get("min_distance", radius), "split_touching": split,
            **{k: round(summary[k], 4) if isinstance(summary[k], float) else summary[k]
               for k in ("n_pred", "tp", "fp", "fn", "precision", "recall", "f1", "auprc")}}


def validation_predictions(model: Path, name: str, work: Path, reuse: bool, whole: bool = False) -> list:
    """The model's predictions of its validation slabs, built as ``deepict train3d`` builds them (``whole``: of
    the whole training tomograms, the calibration's fallback for rare particles)."""
    cache = work / f"{name}_{'whole' if whole else 'validation'}_maps.npz"
    if reuse and cache.exists():
        stored = np.load(cache)
        return [(stored[f"p{i}"], float(stored[f"x{i}"]), stored[f"t{i}"]) for i in range(int(stored["n"]))]
    import torch
    from deepict.io import volume_mean_std
    from deepict.nn.model_files import load_model
    from deepict.train import data3d
    from deepict.train.calibrate import VALIDATION_SLABS, WHOLE_TOMOGRAMS, predict_slabs
    from deepict.train.config import TrainConfig
    from deepict.train.train3d import _train_width, pad_to_patch
    torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))
    network, info = load_model(model)
    fields = TrainConfig.__dataclass_fields__
    config = TrainConfig(**{k: v for k, v in info.training.items() if k in fields})
    radius = float(info.sphere_radius[name])
    tomograms = data3d.load_training_tomograms([DEV / f"{t}.mrc" for t in TRAIN],
                                               coords=[[DEV / f"{t}_{name}.csv" for t in TRAIN]], radii=[radius],
                                               log=lambda text: None)
    if info.spectrum is not None:  # trained with --equalize-to auto (the default): the same in-memory equalization
        data3d.equalize_training_tomograms(tomograms, "auto", info.spectrum.get("lowpass_angstrom"),
                                           info.spectrum.get("lowpass_width"), log=lambda text: None)
    slabs = []
    for tomo in tomograms:
        data, _ = pad_to_patch(tomo.data, tomo.targets, config.patch_size)
        x_start = _train_width(data.shape[2], config)
        x0 = 0 if whole else max(0, x_start - int(math.ceil(radius)))
        points = tomo.label_points_zyx[tomo.label_points_zyx[:, 2] >= x0] - (0, 0, x0)
        slabs.append((np.asarray(data[:, :, x0:]), volume_mean_std(data), radius if whole else x_start - x0 + radius,
                      points))
    predictions = predict_slabs(network.eval(), slabs, torch.device("cpu"),
                                where=WHOLE_TOMOGRAMS if whole else VALIDATION_SLABS)
    np.savez_compressed(cache, n=len(predictions), **{f"p{i}": p for i, (p, _, _) in enumerate(predictions)},
                        **{f"x{i}": x for i, (_, x, _) in enumerate(predictions)},
                        **{f"t{i}": t for i, (_, _, t) in enumerate(predictions)})
    return predictions


def post_processing(model: Path, name: str, probability_map: Path, work: Path, args) -> dict:
    """Post-processing variants of one model, scored on its probability map of the test tomogram."""
    from deepict.io import read_coordinates, read_volume
    from deepict.nn.model_files import read_model_info
    from deepict.train.calibrate import UNCALIBRATED_THRESHOLD, choose_postprocess
    info = read_model_info(model)
    radius = float(info.sphere_radius[name])
    probability = np.asarray(read_volume(probability_map).data, np.float32)
    truth = read_coordinates(DEV / f"{TEST}_{name}.csv").xyz
    stored = {"threshold": 0.5, "min_size": 1, **info.postprocess}
    result = {"stored_suggestion": score_choice(probability, truth, radius, stored, split=False),
              "stored_suggestion_split": score_choice(probability, truth, radius, stored, split=True)}
    result["split_recovered_tp"] = result["stored_suggestion_split"]["tp"] - result["stored_suggestion"]["tp"]
    if args.recalibrate:
        with contextlib.redirect_stdout(sys.stderr):  # progress lines: stdout is the JSON report
            predictions = validation_predictions(model, name, work, args.reuse)
        for split in (False, True):
            suffix = "_split" if split else ""
            size_only = choose_postprocess(predictions, radius, split, thresholds=(0.5,), duplicate_radii=(1.0,))
            joint = choose_postprocess(predictions, radius, split)
            for label, choice in (("min_size_only", size_only), ("joint", joint)):
                if choice is None:
                    result[f"{label}{suffix}"] = {"skipped": "too few validation particles"}
                    continue
                result[f"{label}{suffix}"] = {
                    "validation": {k: choice[k] for k in ("f1", "precision", "recall", "particles", "at_edge")},
                    "test": score_choice(probability, truth, radius, choice, split)}
                if label == "joint":
                    result[f"{label}{suffix}"]["candidates"] = choice["candidates"]
            if size_only is None:  # too few validation particles: the calibration's fallback
                with contextlib.redirect_stdout(sys.stderr):
                    whole = validation_predictions(model, name, work, args.reuse, whole=True)
                choice = choose_postprocess(whole, radius, split, thresholds=(UNCALIBRATED_THRESHOLD,),
                                            duplicate_radii=(1.0,))
                result[f"whole_tomograms_min_size{suffix}"] = {
                    "training_data": {k: choice[k] for k in ("f1", "precision", "recall", "particles", "at_edge")},
                    "test": score_choice(probability, truth, radius, choice, split)}
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=None,
                        help="training epochs (default: train3d's, which depends on the particles per tomogram)")
    parser.add_argument("--iterations", type=int, default=25)
    parser.add_argument("--classes", nargs="+", default=["ribosome", "fas"])
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--reuse", action="store_true",
                        help="use WORKDIR/<class>.pt (and its saved validation maps) when present instead of training")
    parser.add_argument("--model", action="append", default=[], metavar="CLASS=MODEL.pt",
                        help="use this model for CLASS instead of training one")
    parser.add_argument("--recalibrate", action="store_true",
                        help="also compare the calibrations (min size only / joint) on the validation slabs")
    parser.add_argument("--no-published", action="store_true", help="skip the published ribosome network")
    parser.add_argument("--no-other-domain", action="store_true",
                        help="skip picking the defocus tomograms with the same models")
    args = parser.parse_args()
    if not DEV.is_dir():
        print(json.dumps({"skipped": f"{DEV} not found"}))
        return 0
    work = Path(args.workdir or tempfile.mkdtemp(prefix="deepict-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    # the training settings go with each model this run trains: a model given with --model has its own
    report = {"train": TRAIN, "test": TEST, "load_average": os.getloadavg()}
    for name in args.classes:
        model, trained = obtain_model(name, work, args)
        picks, probability_map = work / f"{name}_{TEST}.csv", work / f"{name}_{TEST}_probability.mrc"
        started = time.time()
        deepict("pick", "--model", model, "--tomogram", DEV / f"{TEST}.mrc", "--out", picks,
                "--probability-map", probability_map, log=name)
        report[name] = {**evaluate(picks, DEV / f"{TEST}_{name}.csv"), **trained,
                        "pick_seconds": round(time.time() - started, 1),
                        "post_processing": post_processing(model, name, probability_map, work, args)}
        if not args.no_other_domain:
            report[name]["defocus"] = other_domain(model, name, work)
    if PUBLISHED_RIBOSOME.exists() and not args.no_published:
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
