"""Benchmark of the 2D compartment segmentation (cytosol, organelles); prints one JSON document.

Trains one model per compartment on the simulated development tomograms vpp_000-002 (vpp_002
is the validation tomogram, as the training default picks the last one) with the default
training settings unless told otherwise, then segments vpp_003 (same domain) and
defocus_000/001 (other imaging domain, same models) and reports:

- ``auprc``: voxel AUPRC of the z-smoothed probability (the score the mask is thresholded from),
  ``auprc_raw`` of the unsmoothed probability;
- ``f1``: voxel F1 (Dice) of the binary mask at the model's threshold, and ``f1_at`` for a few
  other thresholds (to justify the default);
- the segmentation time of each 256x256x128 tomogram;
- ``defocus_00N_equalized``: the defocus tomograms spectrum-equalized to vpp_000's radial amplitude
  spectrum (:mod:`deepict.spectrum`, DeePiCt's remedy for a domain change) before
  segmenting with the same models (the ground truth is the defocus tomogram's).

Then it writes a random-noise 928x928x464 int8 tomogram (13.48 Å) and times ``deepict segment2d``
on it with the trained cytosol model in a subprocess, reporting wall time and the child's peak
resident memory (its own ``VmHWM``).

Targets: AUPRC >= 0.95 (cytosol) and >= 0.90 (organelles) on vpp_003.
Skips cleanly (JSON with "skipped") when ../shared/data/dev is absent.

With ``--ribosome-model`` it also picks ribosomes in vpp_003 with that 3D model without context and
inside the predicted and the true cytosol ('intersection'), and reports the F1 of each.

Usage: python benchmarks/bench_compartments.py [--kinds cytosol organelles] [--epochs N]
       [--tiles-per-epoch N] [--tile-size PX] [--batch-size N] [--patience N] [--threads N] [--ribosome-model M.pt]
       [--big-z-range FIRST END] [--skip-big] [--reuse] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from common import DEV as DATA, REPO as ROOT, deepict, deepict_measured, write_noise_tomogram

TRAIN = ["vpp_000", "vpp_001", "vpp_002"]
TESTS = ["vpp_003", "defocus_000", "defocus_001"]
KINDS = {"cytosol": 0.95, "organelles": 0.90}
BIG_SHAPE = (464, 928, 928)  # z, y, x


def _context_picking(model: Path, work: Path) -> dict:
    """Ribosome F1 on vpp_003 without context and with the predicted / true cytosol ('intersection')."""
    true_cytosol = work / "vpp_003_true_cytosol.mrc"
    from deepict.io import read_volume, write_volume
    truth = read_volume(DATA / "vpp_003_cytosol.mrc.gz")
    write_volume(true_cytosol, np.asarray(truth.data), truth.voxel_size)
    contexts = {"no_context": [], "predicted_cytosol": ["--context", work / "vpp_003_cytosol.mrc"],
                "true_cytosol": ["--context", true_cytosol]}
    scores = {}
    for label, context in contexts.items():
        picks = work / f"ribosome_vpp_003_{label}.csv"
        deepict("pick", "--model", model, "--tomogram", DATA / "vpp_003.mrc", "--out", picks, *context)
        particles = json.loads(deepict("evaluate", "--pred", picks, "--gt", DATA / "vpp_003_ribosome.csv",
                                        "--radius", 10))["particles"]
        scores[label] = {k: particles[k] for k in ("f1", "precision", "recall", "n_pred", "n_true")}
    return {"model": str(model), "context_mode": "intersection", **scores}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: the training default)")
    parser.add_argument("--tiles-per-epoch", type=int, default=None, help="(default: the training default)")
    parser.add_argument("--tile-size", type=int, default=None, help="training tile edge in px (default: the "
                        "training default)")
    parser.add_argument("--batch-size", type=int, default=None, help="tiles per step (default: the training default)")
    parser.add_argument("--patience", type=int, default=None, help="early-stopping patience (default: the "
                        "training default; 0 = never)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: every core)")
    parser.add_argument("--work", default=str(ROOT / "benchmarks" / "results" / "compartments"),
                        help="folder for models and outputs (default: %(default)s)")
    parser.add_argument("--reuse", action="store_true", help="reuse models already trained in --work")
    parser.add_argument("--kinds", nargs="+", choices=sorted(KINDS), default=list(KINDS),
                        help="compartments to train and test (default: all)")
    parser.add_argument("--ribosome-model", help="a 3D ribosome model (e.g. from bench_picking_quality.py): "
                        "also report its F1 on vpp_003 without context, inside the predicted cytosol and inside "
                        "the true cytosol ('intersection')")
    parser.add_argument("--skip-big", action="store_true", help="skip the 928x928x464 timing")
    parser.add_argument("--big-z-range", nargs=2, type=int, default=None, metavar=("FIRST", "END"),
                        help="segment only these slices of the big tomogram (default: all 464)")
    args = parser.parse_args(argv)

    if not all((DATA / f"{name}.mrc").is_file() for name in TRAIN + TESTS):
        print(json.dumps({"benchmark": "compartments", "skipped": f"development data not found in {DATA}"}))
        return 0

    import torch
    from scipy.ndimage import gaussian_filter1d

    from deepict.io import read_volume, write_volume
    from deepict.evaluate.metrics import voxel_auprc, voxel_f1
    from deepict.nn.model_files import read_model_info
    from deepict.infer.slices2d import segment_tomogram
    from deepict.spectrum import equalize, radial_spectrum
    from deepict.train.train2d import train_2d
    from deepict.train.config import Train2DConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    config_changes = {k: v for k, v in (("epochs", args.epochs), ("tiles_per_epoch", args.tiles_per_epoch),
                                        ("patience", args.patience), ("tile_size", args.tile_size),
                                        ("batch_size", args.batch_size)) if v is not None}
    result = {"benchmark": "compartments", "device": "cpu", "torch_threads": torch.get_num_threads(),
              "train": TRAIN, "validation_tomogram": TRAIN[-1], "models": {}}
    tests = [(name, DATA / f"{name}.mrc") for name in TESTS]
    reference = radial_spectrum(read_volume(DATA / f"{TRAIN[0]}.mrc").data, 13.48)
    for name in TESTS[1:]:
        volume = read_volume(DATA / f"{name}.mrc")
        path = work / f"{name}_equalized.mrc"
        write_volume(path, equalize(volume.data, volume.voxel_size, reference, log=None), volume.voxel_size)
        tests.append((f"{name}_equalized", path))
    result["equalized"] = f"defocus tomograms equalized to the radial spectrum of {TRAIN[0]}"
    log_lines = []

    def log(line: str) -> None:
        log_lines.append(line)
        print(line, file=sys.stderr, flush=True)

    for kind in args.kinds:
        target = KINDS[kind]
        model = work / f"{kind}2d.pt"
        config = Train2DConfig(class_name=kind, **config_changes)
        if not (args.reuse and model.is_file()):
            summary = train_2d([DATA / f"{n}.mrc" for n in TRAIN], [DATA / f"{n}_{kind}.mrc.gz" for n in TRAIN],
                               model, config, log=log, device=device)
            print(f"[{kind}] trained: best val Dice {summary['best_val_dice']:.4f} at epoch "
                  f"{summary['best_epoch']}/{summary['epochs_run']} in {summary['seconds']:.0f} s", file=sys.stderr)
        info = read_model_info(model)
        entry = {"train_seconds": info.training.get("seconds"), "epochs_run": info.training.get("epochs_run"),
                 "best_epoch": info.training.get("best_epoch"), "best_val_dice": info.training.get("best_val_dice"),
                 "settings": {k: info.training["settings"][k] for k in
                              ("epochs", "tiles_per_epoch", "tile_size", "batch_size", "learning_rate", "loss",
                               "patience", "z_stride")},
                 "threshold": info.postprocess["threshold"], "sigma": info.postprocess["sigma"], "tests": {}}
        for test, source in tests:
            mask_path, prob_path = work / f"{test}_{kind}.mrc", work / f"{test}_{kind}_prob.mrc"
            run = segment_tomogram(model, source, mask_path, probability_map=prob_path, device=device, log=None)
            truth = read_volume(DATA / f"{test.replace('_equalized', '')}_{kind}.mrc.gz").data
            prob = np.array(read_volume(prob_path).data)
            smooth = gaussian_filter1d(prob, info.postprocess["sigma"], axis=0, mode="reflect")
            mask = read_volume(mask_path).data
            entry["tests"][test] = {
                "auprc": round(voxel_auprc(smooth, truth), 4), "auprc_raw": round(voxel_auprc(prob, truth), 4),
                "f1": round(voxel_f1(mask, truth), 4),
                "f1_at": {str(t): round(voxel_f1(smooth > t, truth), 4) for t in (0.3, 0.5, 0.75)},
                "segment_seconds": round(run["seconds"], 1), "tile_size": run["tile_size"]}
        entry["target_auprc_vpp_003"] = target
        entry["meets_target"] = entry["tests"]["vpp_003"]["auprc"] >= target
        result["models"][kind] = entry
        print(f"[{kind}] {json.dumps(entry['tests'])}", file=sys.stderr)

    if args.ribosome_model and "cytosol" in args.kinds:
        result["ribosome_picking_vpp_003"] = _context_picking(Path(args.ribosome_model), work)

    if not args.skip_big:
        big = work / "big_928x928x464.mrc"
        if not big.is_file():
            write_noise_tomogram(big, BIG_SHAPE, 13.48, dtype=np.int8)
        command = ["segment2d", "--model", work / "cytosol2d.pt", "--tomogram", big, "--out", work / "big_mask.mrc",
                   "--device", "cpu"]
        slices = BIG_SHAPE[0]
        if args.big_z_range:
            command += ["--z-range", *args.big_z_range]
            slices = args.big_z_range[1] - args.big_z_range[0]
        measured = deepict_measured(*command, threads=args.threads)
        measured.update({"shape_xyz": list(BIG_SHAPE[::-1]), "slices_segmented": slices,
                         "model": "the trained cytosol model (random-noise int8 tomogram)",
                         "seconds_per_slice": round(measured["wall_s"] / slices, 2)})
        if slices < BIG_SHAPE[0]:
            measured["extrapolated_seconds_all_slices"] = round(measured["seconds_per_slice"] * BIG_SHAPE[0])
        result["big_tomogram"] = measured
        for path in (big, work / "big_mask.mrc"):
            path.unlink(missing_ok=True)
    result["training_log_tail"] = log_lines[-6:]
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
