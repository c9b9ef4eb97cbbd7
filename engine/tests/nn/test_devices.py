"""Where the networks run: the visible GPUs (CUDA_VISIBLE_DEVICES, as Scipion's form or a queue's scheduler
set it), else the CPU with the threads the job may use."""

import os

import pytest
import torch

from deepict.errors import ParameterError
from deepict.cpu import cpu_threads
from deepict.nn.devices import select_device


def test_auto_is_the_first_visible_gpu_else_the_cpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert select_device("auto").type == expected


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a visible GPU")
def test_asking_for_a_gpu_none_is_visible_says_where_gpus_come_from():
    with pytest.raises(ParameterError, match="GPU_COUNT in the queue parameters"):
        select_device("cuda")


def test_cpu_threads_follow_omp_num_threads_else_the_cpus_the_job_may_use(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert cpu_threads() == 1
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert cpu_threads() == len(os.sched_getaffinity(0))  # a scheduler's CPU binding (SLURM task/affinity)


def test_the_threads_option_holds_for_the_whole_step(tmp_path, capsys, monkeypatch):
    """``train3d --threads 1`` ran on every core: choosing the CPU device later reset torch's pool (1.4 cores were
    measured), and the FFTs of the equalization took two threads."""
    from deepict.spectrum.measure import default_workers
    from deepict.synthetic import PhantomConfig, make_phantom, write_phantom
    from tiny_world import TINY_TRAINING, run
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    paths = write_phantom(make_phantom(PhantomConfig(shape_zyx=(32, 48, 48), seed=3, n_ribosomes=6, n_fas=0,
                                                     n_distractors=0, n_vesicles=0, n_sheets=0)), tmp_path, "tomo")
    previous = torch.get_num_threads()
    try:
        code, _, err = run(capsys, "train3d", "--tomograms", paths["tomogram"], "--coords", paths["ribosome"],
                           "--out", tmp_path / "m.pt", "--threads", "1", *TINY_TRAINING)
        assert code == 0, err
        assert torch.get_num_threads() == 1 and cpu_threads() == 1 and default_workers() == 1
    finally:
        torch.set_num_threads(previous)
