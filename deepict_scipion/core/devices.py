"""Choosing where the networks run."""

from __future__ import annotations

import os

import torch

from .errors import ParameterError


def select_device(name: str = "auto") -> torch.device:
    """``auto`` picks the first visible CUDA GPU, else the CPU (using every core it may use)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ParameterError("a CUDA device was asked for but none is visible: use --device cpu "
                             "(or check CUDA_VISIBLE_DEVICES / the GPU list of the Scipion protocol)")
    if name == "cpu":
        torch.set_num_threads(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise ParameterError(f"unknown device '{name}': use auto, cpu, cuda or cuda:N") from exc
