"""Benchmark of 3D inference and training on this CPU; prints one JSON object.

(a) ``throughput``: the published IF4-D2-BN architecture (the ribosome checkpoint imported from
    ``<repo>/../shared/models/published``, or a random ``UNet3D(2, 4)`` when absent) applied to a
    512 × 512 × 256 (x, y, z) float32 tomogram through ``picking.predict_to_file`` (read, normalise,
    tile, blend, write the probability map), for every inference window (96, 128, 160) and batch
    size (1, 2, 4). Reported in voxels of the tomogram per second; target ≥ 3e6 (was 2.14e6). Each
    setting runs twice in turn, with the batch norms folded (the engine's inference) and unfolded
    (the former code path), so that their ratio holds on a busy machine (``fold_speedup``).
(a') ``fixed_cost``: what a pick pays whatever the tomogram's size, measured apart from the per-voxel
    cost: the interpreter and the parser, importing torch and the engine, loading the model, and the
    normalisation statistics (per million voxels); ``per_voxel_s`` is the best throughput's inverse.
(b) ``large_pick``: a 928 × 928 × 464 float32 noise tomogram is streamed to a temporary MRC (memory
    bounded by one slab) and ``deepict pick`` runs on it in a subprocess whose peak resident memory
    is reported: ``VmHWM`` of that process; target ≤ 3 GB.
(c) ``training``: one iteration (forward + backward + Adam step) of IF4-D2-BN at batch 5 on 64³
    boxes with the Dice loss, median of 10 after a warm-up: the engine's step (channels-last on the
    CPU, its automatic precision), the plain fp32 PyTorch step of the original DeePiCt (contiguous)
    (and bf16 forced with --training-bf16), their steps interleaved; ``engine_over_plain_fp32`` is the ratio (target ≤ 0.5);
    with 1 thread and with the engine's thread count. The original DeePiCt took 0.98 s (2025 machine).

The CPU may be shared: the load average (``os.getloadavg``) before and after every part is
reported, and timings under load are pessimistic.

Usage: ``python benchmarks/bench_inference.py [--threads N] [--shape Z Y X] [--windows ...]
[--batch-sizes ...] [--skip-throughput] [--skip-large] [--skip-training] [--workdir DIR]``
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np

from common import PUBLISHED, add_threads_option, deepict_measured, use_threads, write_noise_tomogram

import torch  # noqa: E402

from deepict.cpu import cpu_threads  # noqa: E402
from deepict.nn.losses import get_loss  # noqa: E402
from deepict.nn.model_files import KIND_3D, ModelInfo, import_published_checkpoint, save_model  # noqa: E402
from deepict.nn.networks import UNet3D  # noqa: E402
from deepict.nn.precision import resolve_precision  # noqa: E402
from deepict.infer import sliding_window  # noqa: E402
from deepict.infer.picking import InferenceOptions, predict_to_file  # noqa: E402

PUBLISHED_RIBOSOME = PUBLISHED / "ribosomeModel.pth"
VOXEL_SIZE = 13.48
THROUGHPUT_TARGET = 3e6
RSS_TARGET_BYTES = 3e9
ORIGINAL_TRAIN_ITERATION_S = 0.98

def load() -> list:
    """The 1, 5 and 15 minute load averages (runnable processes; this machine has few cores)."""
    return [round(v, 2) for v in os.getloadavg()]


def load1() -> float:
    return round(os.getloadavg()[0], 2)


def write_model(path: Path) -> str:
    """The published ribosome network as our model file, or a random network of the same architecture."""
    if PUBLISHED_RIBOSOME.is_file():
        network, info = import_published_checkpoint(PUBLISHED_RIBOSOME, VOXEL_SIZE)
        source = f"published {PUBLISHED_RIBOSOME.name}"
    else:
        torch.manual_seed(0)
        network = UNet3D(depth=2, initial_features=4, batch_norm=True).eval()
        info = ModelInfo(kind=KIND_3D, classes=["ribo"], voxel_size=VOXEL_SIZE, patch_size=64, overlap=12,
                         architecture={"depth": 2, "initial_features": 4, "out_channels": 1, "batch_norm": True,
                                       "encoder_dropout": 0.0, "decoder_dropout": 0.0})
        source = "random UNet3D(depth 2, IF 4, BN): /work/shared is absent"
    save_model(path, network, info)
    return source


def _unfolded(network):
    """The former inference network: the batch norms run as layers of their own."""
    return copy.deepcopy(network).eval()


def bench_throughput(model: Path, workdir: Path, shape_zyx, windows, batch_sizes, margin: int) -> dict:
    tomogram = workdir / "throughput.mrc"
    write_noise_tomogram(tomogram, shape_zyx, VOXEL_SIZE)
    voxels = int(np.prod(shape_zyx))
    runs, ratios = [], []
    for window in windows:
        for batch_size in batch_sizes:
            pair = {}
            for folded in (True, False):
                before = load1()
                start, cpu_start = time.perf_counter(), time.process_time()
                # The old code path: predict_tomogram's folding replaced by a plain copy.
                with contextlib.nullcontext() if folded else mock.patch.object(sliding_window, "fold_batch_norm",
                                                                               _unfolded):
                    predict_to_file(model, tomogram, workdir / "probability.mrc", None,
                                    InferenceOptions(window=window, margin=margin, batch_size=batch_size,
                                                     device="cpu"), log=lambda message: None)
                seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
                # CPU time is less sensitive to other processes than wall time: voxels per CPU second
                # times the core count bounds what an idle machine would reach.
                pair[folded] = {"window": window, "batch_size": batch_size, "batch_norm_folded": folded,
                                "seconds": round(seconds, 2), "voxels_per_s": round(voxels / seconds),
                                "cpu_seconds": round(cpu_seconds, 1), "voxels_per_cpu_s": round(voxels / cpu_seconds),
                                "load1_before": before, "load1_after": load1()}
                runs.append(pair[folded])
                print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
            ratios.append(pair[True]["voxels_per_s"] / pair[False]["voxels_per_s"])
    best = max((r for r in runs if r["batch_norm_folded"]), key=lambda r: r["voxels_per_s"])
    best_unfolded = max((r for r in runs if not r["batch_norm_folded"]), key=lambda r: r["voxels_per_s"])
    tomogram.unlink()
    (workdir / "probability.mrc").unlink(missing_ok=True)
    return {"shape_zyx": list(shape_zyx), "margin": margin, "torch_threads": torch.get_num_threads(),
            "runs": runs, "best": best, "best_unfolded": best_unfolded,
            "fold_speedup_median": round(statistics.median(ratios), 3), "fold_speedups": [round(r, 3) for r in ratios],
            "per_voxel_s": 1 / best["voxels_per_s"], "target_voxels_per_s": THROUGHPUT_TARGET,
            "meets_target": best["voxels_per_s"] >= THROUGHPUT_TARGET}


_FIXED_COST_CHILD = r"""
import json, sys, time
start = time.perf_counter()
import torch
from deepict.infer import picking
from deepict.io import read_volume, volume_mean_std
from deepict.nn.model_files import KIND_3D, load_model
imports = time.perf_counter() - start
start = time.perf_counter()
network, info = load_model(sys.argv[1], kind=KIND_3D)
load = time.perf_counter() - start
volume = read_volume(sys.argv[2])
start = time.perf_counter()
volume_mean_std(volume.data)
stats = time.perf_counter() - start
print(json.dumps({"imports_s": imports, "model_load_s": load, "stats_s": stats, "voxels": int(volume.data.size)}))
"""


def bench_fixed_cost(model: Path, workdir: Path, shape_zyx) -> dict:
    """A pick's costs that do not grow with the tomogram (and the statistics, which grow with it)."""
    tomogram = workdir / "fixed.mrc"
    write_noise_tomogram(tomogram, shape_zyx, VOXEL_SIZE)
    done = subprocess.run([sys.executable, "-c", _FIXED_COST_CHILD, str(model), str(tomogram)], capture_output=True,
                          text=True, check=True)
    child = json.loads(done.stdout.strip().splitlines()[-1])
    startup = deepict_measured("model-info", "--model", model)  # the interpreter and the parser
    tomogram.unlink()
    return {"python_and_parser_s": startup.get("startup_s"), "imports_torch_engine_s": round(child["imports_s"], 2),
            "model_load_s": round(child["model_load_s"], 3),
            "normalisation_stats_s_per_mvoxel": round(child["stats_s"] / child["voxels"] * 1e6, 4)}


def bench_large_pick(model: Path, workdir: Path, shape_zyx, threads: int | None) -> dict:
    tomogram = workdir / "large.mrc"
    start = time.perf_counter()
    write_noise_tomogram(tomogram, shape_zyx, VOXEL_SIZE)
    generate_s = time.perf_counter() - start
    before = load1()
    result = deepict_measured("pick", "--model", model, "--tomogram", tomogram, "--out", workdir / "large_picks.csv",
                              "--device", "cpu", "--threshold", 0.5, threads=threads)
    after = load1()
    tomogram.unlink()
    if "error" in result:
        return result
    voxels = int(np.prod(shape_zyx))
    return {"shape_zyx": list(shape_zyx), "tomogram_bytes": voxels * 4, "generate_s": round(generate_s, 1),
            **result, "voxels_per_s": round(voxels / result["wall_s"]), "target_rss_gb": RSS_TARGET_BYTES / 1e9,
            "meets_target": result["peak_rss_bytes"] <= RSS_TARGET_BYTES, "load1_before": before, "load1_after": after}


def bench_training(threads: list, iterations: int = 10, bf16: bool = False) -> dict:
    """Median iteration time per torch thread count and variant."""
    results = {}
    for count in threads:
        torch.set_num_threads(count)
        results[f"{count}_threads"] = _bench_training_layouts(iterations, bf16)
    return {"batch": 5, "box": 64, "architecture": "IF4-D2-BN", "loss": "dice", "iterations": iterations,
            "results": results, "original_deepict_s": ORIGINAL_TRAIN_ITERATION_S}


#: The training steps compared: the engine's (channels-last on the CPU, its automatic precision: see
#: deepict.nn.precision) and the plain fp32 PyTorch step the original DeePiCt runs (contiguous layout);
#: with --training-bf16 also bf16 forced (20x slower than fp32 on a CPU without native bf16).
TRAINING_VARIANTS = (("engine (channels_last_3d, precision auto)", torch.channels_last_3d, "auto"),
                     ("plain fp32 PyTorch (contiguous)", torch.contiguous_format, "fp32"))
BF16_VARIANT = ("channels_last_3d, bf16 forced", torch.channels_last_3d, "bf16")


def _bench_training_layouts(iterations: int, bf16: bool = False) -> dict:
    """Median step time of each variant, their steps interleaved so that a busy machine slows all alike."""
    loss_fn = get_loss("dice")
    steps = {}
    for name, memory_format, requested in TRAINING_VARIANTS + ((BF16_VARIANT,) if bf16 else ()):
        torch.manual_seed(0)
        network = UNet3D(depth=2, initial_features=4, batch_norm=True).to(memory_format=memory_format).train()
        inputs = torch.randn(5, 1, 64, 64, 64).contiguous(memory_format=memory_format)
        steps[name] = (network, torch.optim.Adam(network.parameters(), lr=1e-3), inputs,
                       (torch.rand(5, 1, 64, 64, 64) > 0.9).float(), resolve_precision(requested, "cpu"), [])
    before = load1()
    for step in range(iterations + 1):
        for network, optimizer, inputs, targets, precision, times in steps.values():
            start = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            with precision.autocast():  # as deepict.train.loop runs it
                outputs = network(inputs)
            loss_fn(outputs.float(), targets).backward()
            optimizer.step()
            if step:  # the first iteration is a warm-up
                times.append(time.perf_counter() - start)
    results = {name: {"precision": entry[4].name, "median_s": round(statistics.median(entry[5]), 3),
                      "min_s": round(min(entry[5]), 3)} for name, entry in steps.items()}
    engine, plain = (results[variant[0]]["median_s"] for variant in TRAINING_VARIANTS[:2])
    return {**results, "engine_over_plain_fp32": round(engine / plain, 3), "load1_before": before,
            "load1_after": load1()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_threads_option(parser)
    parser.add_argument("--shape", type=int, nargs=3, default=(256, 512, 512), metavar=("Z", "Y", "X"))
    parser.add_argument("--large-shape", type=int, nargs=3, default=(464, 928, 928), metavar=("Z", "Y", "X"))
    parser.add_argument("--windows", type=int, nargs="+", default=(96, 128, 160))
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=(1, 2, 4))
    parser.add_argument("--margin", type=int, default=12)
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--training-iterations", type=int, default=10, help="timed steps per variant (default 10)")
    parser.add_argument("--training-bf16", action="store_true", help="also time a training step in bf16")
    parser.add_argument("--workdir", help="folder for the temporary files (default: a temporary folder)")
    args = parser.parse_args()
    use_threads(args.threads)  # select_device keeps it

    report = {"benchmark": "inference3d", "torch": torch.__version__, "cpu_cores": len(os.sched_getaffinity(0)),
              "mkldnn": torch.backends.mkldnn.is_available(), "load_start": load()}
    if not PUBLISHED_RIBOSOME.is_file():
        report["note"] = f"{PUBLISHED_RIBOSOME} is absent (/work/shared missing): a random network of the same " \
                         "architecture is timed instead"
    if args.workdir:
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-inference-", dir=args.workdir) as folder:
        workdir = Path(folder)
        model = workdir / "ribo.pt"
        report["model"] = write_model(model)
        if not args.skip_large:  # first, while this process is still small
            report["large_pick"] = bench_large_pick(model, workdir, tuple(args.large_shape), args.threads)
        if not args.skip_throughput:
            report["fixed_cost"] = bench_fixed_cost(model, workdir, tuple(args.shape))
            report["throughput"] = bench_throughput(model, workdir, tuple(args.shape), args.windows,
                                                    args.batch_sizes, args.margin)
    if not args.skip_training:
        # One thread, and the engine's count (all usable cores): with other work on the machine,
        # a multi-threaded pool waits for descheduled threads and can be far slower than one thread.
        report["training"] = bench_training(sorted({1, cpu_threads()}), args.training_iterations, args.training_bf16)
    report["load_end"] = load()
    print(json.dumps(report, indent=1))  # the throughput runs are also printed to stderr as they finish
    return 0


if __name__ == "__main__":
    sys.exit(main())
