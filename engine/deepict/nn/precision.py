"""The numeric precision networks run in: fp32, or bf16 / fp16 autocast where the hardware is fast at it.

``auto`` (the default of every step that runs a network) chooses, per device:

* **CUDA**: bf16 when the GPU supports it (Ampere and newer), else fp16 (training then scales the loss
  with a gradient scaler, as fp16 gradients underflow);
* **CPU**: bf16 only when the CPU computes it natively (AMX or AVX-512 BF16: about 2x faster for the
  larger networks); elsewhere bf16 is emulated and slower than fp32, so ``auto`` keeps fp32.

An explicit ``bf16`` is honoured on any device (slowly on a CPU without native bf16); ``fp16`` on a CPU
is refused (PyTorch's CPU fp16 kernels are slow and fp16's range needs loss scaling).

Only the forward passes run in reduced precision (``torch.autocast``: convolutions in bf16/fp16,
reductions and the loss in fp32); the weights, the optimiser and every saved model stay fp32, so a
model file never records the precision it was trained in.

The requested precision is a process-wide setting, as torch's thread count is: the command line sets
it once per step (:func:`use_precision`), and the tiler, the 2D segmenter and the training loop apply
it on their device (:func:`current_precision`), whoever calls them.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from deepict.errors import ParameterError
from deepict.parameters import PRECISION_AUTO, PRECISIONS

_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
_requested = PRECISION_AUTO


@dataclass(frozen=True)
class Precision:
    """A resolved precision (``fp32``, ``bf16`` or ``fp16``) on a device type (``cpu``, ``cuda``)."""

    name: str
    device_type: str

    @property
    def reduced(self) -> bool:
        return _DTYPES[self.name] is not None

    def autocast(self):
        """The context the forward passes run in (nothing to do for fp32)."""
        if not self.reduced:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=_DTYPES[self.name])

    def grad_scaler(self) -> torch.amp.GradScaler:
        """Loss scaling for training: active for fp16 only (bf16 has fp32's range)."""
        return torch.amp.GradScaler(self.device_type, enabled=self.name == "fp16")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AMX tiles or AVX-512 BF16).

    The probes are private torch functions (torch 2.1+); without them the answer is no, the safe one.
    """
    probes = [getattr(torch.cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
    return any(probe() for probe in probes if probe is not None)


def check_precision(name: str) -> str:
    if name not in PRECISIONS:
        raise ParameterError(f"unknown precision '{name}': use one of {', '.join(PRECISIONS)}")
    return name


def resolve_precision(name: str, device) -> Precision:
    """The precision ``name`` (``auto``, ``fp32``, ``bf16``, ``fp16``) means on ``device``."""
    device_type = torch.device(device).type
    check_precision(name)
    if name == PRECISION_AUTO:
        if device_type == "cuda":
            name = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        elif device_type == "cpu" and cpu_has_native_bf16():
            name = "bf16"
        else:
            name = "fp32"
    if name == "fp16" and device_type == "cpu":
        raise ParameterError("--precision fp16 needs a CUDA GPU: on the CPU use bf16 (fast on CPUs with AMX or "
                             "AVX-512 BF16) or fp32 (--precision auto chooses)")
    return Precision(name, device_type)


def use_precision(name: str | None) -> None:
    """Set the precision this process's networks run in (``None``: ``auto``); checked at once."""
    global _requested
    _requested = check_precision(name or PRECISION_AUTO)


def current_precision(device) -> Precision:
    """The process's precision (:func:`use_precision`) resolved on ``device``."""
    return resolve_precision(_requested, device)
