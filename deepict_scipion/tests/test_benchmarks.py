"""The benchmarks a user reruns from the README's *Measured* table: each says what it does before doing it.

A benchmark without an argument parser ran in full (about ten minutes of training and SLURM jobs) when asked
for --help."""

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = sorted((Path(__file__).resolve().parents[2] / "benchmarks").glob("bench_*.py"))


def test_the_benchmarks_are_found():
    assert len(BENCHMARKS) >= 10


@pytest.mark.parametrize("script", BENCHMARKS, ids=[script.stem for script in BENCHMARKS])
def test_help_prints_the_usage_and_runs_nothing(script):
    result = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("usage:"), result.stdout[:500]


#: The benchmarks that run deepict steps on the CPU at sizes where the thread count matters.
THREADED = ("bench_compartments", "bench_context_filter", "bench_cross_domain", "bench_inference",
            "bench_segment2d_speed", "bench_spectrum")


@pytest.mark.parametrize("name", THREADED)
def test_threads_can_be_chosen(name):
    """On a shared machine a benchmark on every core measures the neighbours' load; bench_context_filter and
    bench_cross_domain had no --threads."""
    script = next(script for script in BENCHMARKS if script.stem == name)
    result = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert "--threads" in result.stdout, result.stdout[:2000]
