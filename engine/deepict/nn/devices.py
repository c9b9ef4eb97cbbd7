"""Choosing where the networks run."""

from __future__ import annotations

import torch

from deepict.cpu import cpu_threads
from deepict.errors import ParameterError


def select_device(name: str = "auto") -> torch.device:
    """``auto`` picks the first visible CUDA GPU, else the CPU.

    Visible GPUs are those of ``CUDA_VISIBLE_DEVICES``, numbered from 0 whatever their ids on the machine:
    locally the ones the Scipion form lists, in a queue job the ones the scheduler gave the job.

    On the CPU the threads of :func:`deepict.cpu.cpu_threads` are used (``--threads``, a protocol's thread count or
    ``OMP_NUM_THREADS``, else every core the process may use): more threads than free cores make PyTorch's thread
    pool spin and run many times slower.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ParameterError("a CUDA device was asked for but none is visible: use --device cpu (or check "
                             "CUDA_VISIBLE_DEVICES: locally the GPU list of the Scipion protocol sets it, in a "
                             "queue job the GPUs the job asked for, GPU_COUNT in the queue parameters)")
    if name == "cpu":
        torch.set_num_threads(cpu_threads())
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise ParameterError(f"unknown device '{name}': use auto, cpu, cuda or cuda:N") from exc


def memory_format(device: torch.device, spatial_dims: int = 3) -> torch.memory_format:
    """Layout for networks and their inputs: channels-last on the CPU, where oneDNN's convolutions
    then need no layout conversions (3D: about 2x faster for training and inference; 2D U-Net
    inference: 1.3x on an AVX2 CPU)."""
    if torch.device(device).type != "cpu":
        return torch.contiguous_format
    return torch.channels_last_3d if spatial_dims == 3 else torch.channels_last
