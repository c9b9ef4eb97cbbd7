"""Cross-domain benchmark of spectrum equalization for particle picking; prints one JSON object.

A ribosome network is trained on the simulated Volta-phase-plate tomograms ``vpp_000``–``vpp_002``
(``<repo>/../shared/data/dev``; the benchmark is skipped when absent) and applied to the
defocus-only tomograms ``defocus_000`` and ``defocus_001`` (lower contrast, another CTF):

1. ``raw_model``: trained on the raw VPP tomograms (``--equalize-to none``: train3d equalizes by default),
   applied to the defocus tomograms
   a. as they are (``defocus_raw``), and
   b. equalized to the spectrum of ``vpp_000`` (``defocus_equalized``, ``deepict equalize``);
2. ``equalized_model``: trained on the VPP tomograms equalized to ``vpp_000`` with
   ``--spectrum-reference``, applied to the raw defocus tomograms, which ``deepict pick`` then
   equalizes on the fly (``--equalize auto``);
3. ``one_flag_model``: trained on the raw VPP tomograms with ``--equalize-to auto`` (equalized in
   memory to their mean spectrum, stored in the model), applied to the raw defocus tomograms with
   ``--equalize auto``: the same idea as 2 in one command.

Both are also applied to ``vpp_003`` (in-domain reference point). Picks are scored with
``deepict evaluate`` (tolerance radius 10 voxels): F1 at the model's default threshold, the best F1
over score thresholds and the AUPRC, per tomogram and averaged. Every step runs the ``deepict``
command in a subprocess, exactly as the Scipion protocols do.

CPU-heavy (trainings of 30 × 25 batches of train3d's default network and boxes): run it on a quiet
machine, or ``nice -n 10``.

Usage: ``python benchmarks/bench_cross_domain.py [--epochs N] [--iterations N] [--device cpu]
[--lowpass-angstrom Å] [--raw-model M.pt] [--models raw equalized one_flag] [--workdir DIR] [--threads N]``
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from common import DEV, add_threads_option, deepict, use_threads
from deepict.train.config import TrainConfig

TRAIN = ["vpp_000", "vpp_001", "vpp_002"]
TEST = ["defocus_000", "defocus_001"]
IN_DOMAIN = ["vpp_003"]
REFERENCE = "vpp_000"
RADIUS_VOXELS = 8
MODELS = ("raw", "equalized", "one_flag")
EVALUATION_RADIUS = 10
NETWORK = TrainConfig()  # train3d's defaults, which the trainings use: recorded in the report's settings


def train(work: Path, name: str, tomograms: list, options, extra=()) -> dict:
    out = work / f"{name}.pt"
    started = time.perf_counter()
    stdout = deepict("train3d", "--tomograms", *tomograms, "--coords", *[DEV / f"{t}_ribosome.csv" for t in TRAIN],
                     "--class-name", "ribosome", "--radius", RADIUS_VOXELS, "--epochs", options.epochs,
                     "--iterations-per-epoch", options.iterations, "--seed", options.seed,
                     "--device", options.device, "--out", out, *extra, log=name)
    summary = json.loads(stdout.strip().splitlines()[-1])
    return {"model": str(out), "train_seconds": round(time.perf_counter() - started, 1),
            "best_val_dice": summary["best_val_dice"], "has_spectrum": summary.get("has_spectrum", False)}


def score(work: Path, model: Path, label: str, tomograms: dict, equalize: str, device: str) -> dict:
    """Pick every tomogram ({truth name: MRC path}) and evaluate; per tomogram and mean scores."""
    scores = {}
    for name, path in tomograms.items():
        picks = work / f"{label}_{name}_picks.csv"
        deepict("pick", "--model", model, "--tomogram", path, "--out", picks, "--equalize", equalize,
                "--device", device, log=f"{label} {name}")
        result = json.loads(deepict("evaluate", "--pred", picks, "--gt", DEV / f"{name}_ribosome.csv",
                                    "--radius", EVALUATION_RADIUS))["particles"]
        scores[name] = {k: result.get(k) for k in ("n_pred", "n_true", "precision", "recall", "f1", "max_f1",
                                                     "auprc")}
    mean = {k: round(sum(s[k] or 0 for s in scores.values()) / len(scores), 4) for k in ("f1", "max_f1", "auprc")}
    return {"equalize": equalize, "per_tomogram": scores, "mean": mean}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--iterations", type=int, default=25, help="batches per epoch (default 25)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu (default), auto or cuda")
    parser.add_argument("--lowpass-angstrom", type=float,
                        help="low-pass of every equalization, in Å (default: none)")
    parser.add_argument("--raw-model", help="use this ribosome model trained on the raw vpp_000-002 (e.g. from "
                        "bench_picking_quality.py) instead of training one")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS),
                        help="which models to train and score (default: all)")
    parser.add_argument("--workdir", help="keep the models, tomograms and picks here (default: a temporary folder)")
    add_threads_option(parser)
    options = parser.parse_args()
    use_threads(options.threads)
    names = [REFERENCE] + TRAIN + TEST + IN_DOMAIN
    missing = [n for n in names if not (DEV / f"{n}.mrc").is_file() or not (DEV / f"{n}_ribosome.csv").is_file()]
    if missing:
        print(json.dumps({"skipped": f"{DEV} not available (missing {', '.join(sorted(set(missing)))})"}))
        return
    scratch = None if options.workdir else tempfile.TemporaryDirectory(prefix="deepict-cross-domain-")
    work = Path(options.workdir or scratch.name)
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    lowpass = ["--lowpass-angstrom", options.lowpass_angstrom] if options.lowpass_angstrom else []
    results = {}
    try:
        raw_test = {n: DEV / f"{n}.mrc" for n in TEST}
        in_domain = {n: DEV / f"{n}.mrc" for n in IN_DOMAIN}
        if {"raw", "equalized"} & set(options.models):
            reference = work / f"{REFERENCE}_spectrum.tsv"
            deepict("spectrum", "--tomogram", DEV / f"{REFERENCE}.mrc", "--out", reference, log=REFERENCE)
            equalized = {}
            for name in TRAIN + TEST:
                equalized[name] = work / f"{name}_equalized.mrc"
                deepict("equalize", "--tomogram", DEV / f"{name}.mrc", "--reference", reference,
                        "--out", equalized[name], *lowpass, log=name)

        if "raw" in options.models:
            if options.raw_model:
                raw = {"model": options.raw_model, "trained_by": "given with --raw-model"}
            else:
                raw = train(work, "raw_model", [DEV / f"{n}.mrc" for n in TRAIN], options, ["--equalize-to", "none"])
            raw["in_domain"] = score(work, Path(raw["model"]), "raw_in_domain", in_domain, "off", options.device)
            raw["defocus_raw"] = score(work, Path(raw["model"]), "raw_defocus", raw_test, "off", options.device)
            raw["defocus_equalized"] = score(work, Path(raw["model"]), "raw_defocus_eq",
                                             {n: equalized[n] for n in TEST}, "off", options.device)
            results["raw_model"] = raw

        spectrum_lowpass = ["--spectrum-lowpass-angstrom", options.lowpass_angstrom] if lowpass else []
        if "equalized" in options.models:
            eq = train(work, "equalized_model", [equalized[n] for n in TRAIN], options,
                       ["--spectrum-reference", reference, *spectrum_lowpass])
            eq["in_domain"] = score(work, Path(eq["model"]), "eq_in_domain", in_domain, "auto", options.device)
            eq["defocus_on_the_fly"] = score(work, Path(eq["model"]), "eq_defocus", raw_test, "auto", options.device)
            results["equalized_model"] = eq

        if "one_flag" in options.models:
            one = train(work, "one_flag_model", [DEV / f"{n}.mrc" for n in TRAIN], options,
                        ["--equalize-to", "auto", *spectrum_lowpass])
            one["in_domain"] = score(work, Path(one["model"]), "one_flag_in_domain", in_domain, "auto", options.device)
            one["defocus_on_the_fly"] = score(work, Path(one["model"]), "one_flag_defocus", raw_test, "auto",
                                              options.device)
            results["one_flag_model"] = one
    finally:
        if scratch is not None:
            scratch.cleanup()
    report = {
        "data": str(DEV), "train": TRAIN, "test": TEST, "in_domain": IN_DOMAIN, "reference": REFERENCE,
        "settings": {"depth": NETWORK.depth, "initial_features": NETWORK.initial_features,
                     "decoder_dropout": NETWORK.decoder_dropout, "patch_size": NETWORK.patch_size,
                     "batch_size": NETWORK.batch_size, "epochs": options.epochs,
                     "iterations_per_epoch": options.iterations, "sphere_radius_voxels": RADIUS_VOXELS,
                     "evaluation_radius_voxels": EVALUATION_RADIUS, "lowpass_angstrom": options.lowpass_angstrom,
                     "device": options.device, "seed": options.seed},
        **results,
        "summary_mean_f1": {f"{model}_{scored}": result[scored]["mean"]["f1"]
                            for model, result in results.items() for scored in result
                            if isinstance(result[scored], dict) and "mean" in result[scored]},
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
