"""Where the networks run: the visible GPUs (CUDA_VISIBLE_DEVICES, as Scipion's form or a queue's scheduler
set it), else the CPU with the threads the job may use."""

import os

import pytest
import torch

from deepict.errors import ParameterError
from deepict.nn.devices import cpu_threads, select_device


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
