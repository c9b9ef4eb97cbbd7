"""Nuclear pores kept by contact with the nuclear envelope, and membranes kept by contact with the cytosol.

Prints one JSON object with two parts:

``npc``
    Synthetic nuclear-envelope tomograms (:mod:`deepict.synthetic.envelope`: NPC-like pores in a
    double membrane, plus free decoy scaffolds away from it). An envelope network and an NPC network
    are trained on the masks of some scenes, then on other scenes NPC centres are picked (F1 of the
    centres, 10-voxel tolerance, ``deepict evaluate``) without a context, with ``--context-mode
    contact`` against the *predicted* envelope (``deepict segment3d``), and against the true envelope;
    the picks kept by the predicted envelope are oriented by it (``--orient-by-context``) and the
    angle between their axis and the true normal is reported (median, degrees, polarity ignored).
``membrane``
    Development data: a 3D network trained on the ``_membrane.mrc.gz`` masks of vpp_000-002,
    segmenting vpp_003; voxel F1 (Dice) against vpp_003's membrane mask, without a context, with
    ``--context-mode contact`` against the cytosol that a 2D network (``deepict train2d`` on the
    cytosol masks of vpp_000-002, ``--cytosol-epochs``) predicts in vpp_003 (the paper's protocol),
    and against vpp_003's ground-truth cytosol (what the contact filter itself can do).

    .venv/bin/python benchmarks/bench_npc_membranes.py [--part npc|membrane|both] [--workdir DIR]

The membrane part is skipped (with a note) when ../shared is absent. Uses the ``deepict`` command, as
a user would. Sized to run in about 20 minutes on 2 cores.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import DEV, deepict

from deepict.io import read_coordinates
from deepict.evaluate.metrics import match_particles
from deepict.orientations import angle_between_axes, tilt_psi_to_direction
from deepict.synthetic import EnvelopeConfig, make_envelope_dataset

TOLERANCE = 10  # voxels, as DeePiCt's evaluation
NPC_CONFIG = dict(shape_zyx=(64, 96, 96), voxel_size=40.0, n_npc=4, n_decoys=3)
NPC_TRAINING = ["--patch-size", "32", "--depth", "2", "--initial-features", "8", "--batch-size", "2"]
INFERENCE = ["--window", "32", "--margin", "6", "--batch-size", "4"]
MEMBRANE_TRAIN, MEMBRANE_TEST = ["vpp_000", "vpp_001", "vpp_002"], "vpp_003"


def train(work, name, tomograms, masks, epochs, iterations, extra):
    model = work / f"{name}.pt"
    started = time.time()
    deepict("train3d", "--tomograms", *tomograms, "--masks", *masks, "--class-name", name, "--epochs", epochs,
            "--iterations-per-epoch", iterations, "--out", model, *extra, log=f"{name} trained")
    return model, round(time.time() - started, 1)


def particle_scores(picks, truth):
    scores = json.loads(deepict("evaluate", "--pred", picks, "--gt", truth, "--radius", TOLERANCE))["particles"]
    return {k: scores[k] for k in ("tp", "fp", "fn", "precision", "recall", "f1")}


def npc_part(work, args):
    config = EnvelopeConfig(**NPC_CONFIG)
    train_scenes = make_envelope_dataset(work / "train", args.npc_train, config, seed=1, prefix="train")
    test_scenes = make_envelope_dataset(work / "test", args.npc_test, config, seed=2, prefix="test")
    envelope, envelope_seconds = train(work, "envelope", [s["tomogram"] for s in train_scenes],
                                       [s["envelope"] for s in train_scenes], args.npc_epochs, args.iterations,
                                       NPC_TRAINING)
    npc, npc_seconds = train(work, "npc", [s["tomogram"] for s in train_scenes], [s["npc"] for s in train_scenes],
                             args.npc_epochs, args.iterations, NPC_TRAINING)
    pick = ["--min-distance", TOLERANCE, "--min-size", args.npc_min_size, *INFERENCE]
    totals = {mode: {"tp": 0, "fp": 0, "fn": 0} for mode in ("no_context", "contact_predicted_envelope",
                                                              "contact_true_envelope")}
    angles, dice = [], []
    for scene in test_scenes:
        name = scene["name"]
        segmented = work / f"{name}_envelope_pred.mrc"
        deepict("segment3d", "--model", envelope, "--tomogram", scene["tomogram"], "--out", segmented, *INFERENCE)
        dice.append(json.loads(deepict("evaluate", "--pred-mask", segmented, "--gt-mask",
                                       scene["envelope"]))["voxels"]["f1"])
        runs = {"no_context": [],
                "contact_predicted_envelope": ["--context", segmented, "--context-mode", "contact",
                                               "--context-distance", args.contact_distance, "--orient-by-context"],
                "contact_true_envelope": ["--context", scene["envelope"], "--context-mode", "contact",
                                          "--context-distance", args.contact_distance]}
        for mode, context in runs.items():
            picks = work / f"{name}_{mode}.csv"
            deepict("pick", "--model", npc, "--tomogram", scene["tomogram"], "--out", picks, *pick, *context)
            for key, value in particle_scores(picks, scene["npc_coords"]).items():
                if key in ("tp", "fp", "fn"):
                    totals[mode][key] += value
        oriented, truth = read_coordinates(work / f"{name}_contact_predicted_envelope.csv"), \
            read_coordinates(scene["npc_coords"])
        pairs = match_particles(oriented.xyz, truth.xyz, TOLERANCE).pairs
        angles.extend(float(angle_between_axes(_axis(oriented, p), _axis(truth, t))) for p, t in pairs)
    result = {"config": NPC_CONFIG, "train_scenes": args.npc_train, "test_scenes": args.npc_test,
              "true_npc": int(sum(len(read_coordinates(s["npc_coords"])) for s in test_scenes)),
              "decoys": int(sum(len(read_coordinates(s["decoys"])) for s in test_scenes)),
              "epochs": args.npc_epochs, "iterations_per_epoch": args.iterations,
              "train_seconds": {"envelope": envelope_seconds, "npc": npc_seconds},
              "envelope_dice": round(float(np.mean(dice)), 3), "contact_distance_voxels": args.contact_distance}
    for mode, counts in totals.items():
        precision = counts["tp"] / max(counts["tp"] + counts["fp"], 1)
        recall = counts["tp"] / max(counts["tp"] + counts["fn"], 1)
        f1 = 2 * precision * recall / max(precision + recall, 1e-12)
        result[mode] = {**counts, "precision": round(precision, 3), "recall": round(recall, 3), "f1": round(f1, 3)}
    result["orientation_error_deg"] = {"n": len(angles), "median": round(float(np.median(angles)), 1)
                                       if angles else None, "max": round(float(np.max(angles)), 1) if angles else None}
    return result


def _axis(table, row):
    return tilt_psi_to_direction(table.columns["tilt"][row], table.columns["psi"][row])


def membrane_part(work, args):
    if not DEV.is_dir():
        return {"skipped": f"{DEV} not found"}
    model, seconds = train(work, "membrane", [DEV / f"{t}.mrc" for t in MEMBRANE_TRAIN],
                           [DEV / f"{t}_membrane.mrc.gz" for t in MEMBRANE_TRAIN], args.membrane_epochs,
                           args.iterations, ["--patch-size", "48", "--batch-size", "2"])
    tomogram, truth = DEV / f"{MEMBRANE_TEST}.mrc", DEV / f"{MEMBRANE_TEST}_membrane.mrc.gz"
    cytosol, predicted = work / "cytosol2d.pt", work / f"{MEMBRANE_TEST}_cytosol_predicted.mrc"
    started = time.time()
    deepict("train2d", "--tomograms", *[DEV / f"{t}.mrc" for t in MEMBRANE_TRAIN],
            "--masks", *[DEV / f"{t}_cytosol.mrc.gz" for t in MEMBRANE_TRAIN], "--class-name", "cytosol",
            "--epochs", args.cytosol_epochs, "--out", cytosol, log="cytosol (2D) trained")
    cytosol_seconds = round(time.time() - started, 1)
    deepict("segment2d", "--model", cytosol, "--tomogram", tomogram, "--out", predicted, log="cytosol segmented")
    cytosol_dice = json.loads(deepict("evaluate", "--pred-mask", predicted, "--gt-mask",
                                      DEV / f"{MEMBRANE_TEST}_cytosol.mrc.gz"))["voxels"]["f1"]
    result = {"train": MEMBRANE_TRAIN, "test": MEMBRANE_TEST, "epochs": args.membrane_epochs,
              "iterations_per_epoch": args.iterations, "train_seconds": seconds,
              "cytosol_model": {"epochs": args.cytosol_epochs, "train_seconds": cytosol_seconds,
                                "dice_on_test": round(cytosol_dice, 4)},
              "contact_distance_voxels": args.contact_distance}
    contact = ["--context-mode", "contact", "--context-distance", args.contact_distance]
    runs = {"no_context": [],
            "contact_predicted_cytosol": ["--context", predicted, *contact],
            "contact_true_cytosol": ["--context", DEV / f"{MEMBRANE_TEST}_cytosol.mrc.gz", *contact]}
    for mode, context in runs.items():
        mask = work / f"membrane_{mode}.mrc"
        started = time.time()
        deepict("segment3d", "--model", model, "--tomogram", tomogram, "--out", mask, *context,
                log=f"membrane segmented ({mode})")
        voxels = json.loads(deepict("evaluate", "--pred-mask", mask, "--gt-mask", truth))["voxels"]
        result[mode] = {"dice": round(voxels["f1"], 4), "precision": round(voxels["precision"], 4),
                        "recall": round(voxels["recall"], 4), "segment_seconds": round(time.time() - started, 1)}
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("npc", "membrane", "both"), default="both")
    parser.add_argument("--npc-train", type=int, default=4, help="training scenes")
    parser.add_argument("--npc-test", type=int, default=2, help="test scenes")
    parser.add_argument("--npc-epochs", type=int, default=12)
    parser.add_argument("--npc-min-size", type=int, default=100, help="smallest NPC cluster kept, voxels")
    parser.add_argument("--membrane-epochs", type=int, default=10)
    parser.add_argument("--cytosol-epochs", type=int, default=20, help="epochs of the 2D cytosol network")
    parser.add_argument("--iterations", type=int, default=10, help="iterations per epoch")
    parser.add_argument("--contact-distance", type=float, default=2.0, help="voxels")
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="deepict-bench-npc-"))
    work.mkdir(parents=True, exist_ok=True)
    report = {"load_average": os.getloadavg()}
    started = time.time()
    if args.part in ("npc", "both"):
        report["npc"] = npc_part(work, args)
    if args.part in ("membrane", "both"):
        report["membrane"] = membrane_part(work, args)
    report["total_seconds"] = round(time.time() - started, 1)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
