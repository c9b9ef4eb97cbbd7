"""Benchmark of spectrum equalization; prints one JSON object.

(a) ``dev_spectrum_match``: equalize the simulated development tomogram ``defocus_000`` to
    ``vpp_000`` (``<repo>/../shared/data/dev``; skipped when absent) and report the largest relative
    deviation of the output's radial spectrum from the reference's between 1/300 and 1/40 Å⁻¹
    (target ≤ 10 %), without low-pass; plus the same with a 30 Å low-pass after removing the
    overall scale (which the low-pass changes through the re-normalisation), in 1/300–1/60 Å⁻¹.
(b) ``large_equalize``: write a 928 × 928 × 464 (x, y, z) float32 noise tomogram to a temporary MRC
    (streamed, slab by slab), then run ``deepict equalize`` on it in a subprocess that reports its own
    wall time and peak resident memory (its own ``VmHWM``). Targets: ≤ 90 s and peak RSS ≤ 3 × the
    float32 size of the tomogram.

Usage: ``python benchmarks/bench_spectrum.py [--shape Z Y X] [--threads N] [--skip-large] [--workdir DIR]``
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from common import DEV, deepict_measured, write_noise_tomogram

from deepict import spectrum as sp  # noqa: E402
from deepict.io import read_volume  # noqa: E402

VOXEL_SIZE = 13.48
TIME_TARGET_S = 90.0
RSS_TARGET_FACTOR = 3.0

def _band_deviation(output: sp.RadialSpectrum, reference: sp.RadialSpectrum, low: float, high: float,
                    remove_scale: bool = False) -> float:
    inside = (output.frequency >= low) & (output.frequency <= high)
    ratio = output.amplitude[inside] / reference.at(output.frequency[inside])
    if remove_scale:
        ratio = ratio / np.median(ratio)
    return float(np.abs(ratio - 1).max())


def dev_spectrum_match(threads: int) -> dict:
    source, target = DEV / "defocus_000.mrc", DEV / "vpp_000.mrc"
    if not (source.is_file() and target.is_file()):
        return {"skipped": f"{DEV} not available"}
    start = time.perf_counter()
    reference = sp.load_reference(target, workers=threads, log=None)
    volume = read_volume(source)
    out = sp.equalize(volume.data, volume.voxel_size, reference, workers=threads, log=None)
    elapsed = time.perf_counter() - start
    measured = sp.radial_spectrum(out, volume.voxel_size, workers=threads)
    before = sp.radial_spectrum(volume.data, volume.voxel_size, workers=threads)
    lowpassed = sp.equalize(volume.data, volume.voxel_size, reference, lowpass_angstrom=30.0, workers=threads, log=None)
    measured_lp = sp.radial_spectrum(lowpassed, volume.voxel_size, workers=threads)
    deviation = _band_deviation(measured, reference, 1 / 300, 1 / 40)
    return {
        "input": source.name, "reference": target.name, "shape_zyx": list(volume.data.shape),
        "voxel_size_A": volume.voxel_size, "band_per_A": [1 / 300, 1 / 40],
        "max_rel_deviation_before": round(_band_deviation(before, reference, 1 / 300, 1 / 40), 4),
        "max_rel_deviation": round(deviation, 4),
        "lowpass_30A_max_rel_shape_deviation_300_60A": round(
            _band_deviation(measured_lp, reference, 1 / 300, 1 / 60, remove_scale=True), 4),
        "equalize_s": round(elapsed, 3),
        "target": 0.10, "pass": deviation <= 0.10,
    }


def large_equalize(shape_zyx, threads: int, workdir: Path | None) -> dict:
    float32_bytes = 4 * int(np.prod(shape_zyx))
    with tempfile.TemporaryDirectory(prefix="deepict_bench_spectrum_", dir=workdir) as tmp:
        tmp = Path(tmp)
        tomogram, out = tmp / "large.mrc", tmp / "large_equalized.mrc"
        start = time.perf_counter()
        write_noise_tomogram(tomogram, shape_zyx, VOXEL_SIZE)
        generate_s = time.perf_counter() - start
        if (DEV / "vpp_000.mrc").is_file():
            reference = DEV / "vpp_000.mrc"
        else:  # synthetic reference spectrum
            reference = tmp / "reference.tsv"
            f = np.linspace(1 / (256 * VOXEL_SIZE), np.sqrt(3) / (2 * VOXEL_SIZE), 400)
            sp.write_spectrum(reference, sp.RadialSpectrum(f, 1 / (1 + (f / 0.01) ** 2), VOXEL_SIZE))
        child = deepict_measured("equalize", "--tomogram", tomogram, "--reference", reference, "--out", out,
                                 "--lowpass-angstrom", 30, "--threads", threads)
        if "error" in child:
            return child
        result = read_volume(out, check_finite=False)
        ok_output = result.data.shape == tuple(shape_zyx) and result.data.dtype == np.float32
        del result
    peak = child["peak_rss_bytes"]
    return {
        "shape_zyx": list(shape_zyx), "float32_gb": round(float32_bytes / 1e9, 3), "threads": threads,
        "reference": str(reference.name), "lowpass_A": 30,
        "generate_input_s": round(generate_s, 1),
        "cli_startup_s": child["startup_s"],
        "equalize_command_s": child["wall_s"],
        "peak_rss_gb": round(peak / 1e9, 3),
        "peak_rss_over_float32": round(peak / float32_bytes, 2),
        "targets": {"time_s": TIME_TARGET_S, "peak_rss_over_float32": RSS_TARGET_FACTOR},
        "output_ok": ok_output,
        "pass_time": child["wall_s"] <= TIME_TARGET_S,
        "pass_memory": peak <= RSS_TARGET_FACTOR * float32_bytes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", type=int, nargs=3, default=[464, 928, 928], metavar=("Z", "Y", "X"),
                        help="shape (z, y, x) of the large tomogram (default 464 928 928)")
    parser.add_argument("--threads", type=int, default=sp.default_workers())
    parser.add_argument("--skip-large", action="store_true", help="only run the development-data check")
    parser.add_argument("--workdir", type=Path, help="folder for the temporary large tomograms (≈ 3.2 GB)")
    args = parser.parse_args()
    report = {"benchmark": "spectrum", "dev_spectrum_match": dev_spectrum_match(args.threads)}
    if not args.skip_large:
        report["large_equalize"] = large_equalize(tuple(args.shape), args.threads, args.workdir)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
