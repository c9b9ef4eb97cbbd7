"""Fixtures shared by the engine's tests (no Scipion here: these run in the engine's own environment)."""

import os
import sys

import pytest
import torch

# Test modules in the subfolders import the shared helpers (tiny_world) from this folder.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def one_torch_thread():
    """One torch thread: the networks in the engine tests are tiny, and on a shared machine a busy
    core makes a multi-threaded pool spin; OMP_NUM_THREADS also keeps the engine's device choice at 1."""
    previous = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", "1")
        torch.set_num_threads(1)
        yield
    torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def fp32_networks():
    """Networks run in fp32 unless a test asks otherwise: ``auto`` is bf16 on CPUs with AMX or AVX-512 BF16,
    and the tests that compare two ways of predicting expect fp32's agreement on every machine."""
    from deepict.nn import precision
    precision.use_precision("fp32")
    yield
    precision.use_precision("auto")


@pytest.fixture(autouse=True)
def threads_variable_restored(monkeypatch):
    """``deepict ... --threads N`` run in-process sets OMP_NUM_THREADS for the rest of its step (deepict.cpu):
    not for the tests after it."""
    value = os.environ.get("OMP_NUM_THREADS")
    if value is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", value)
    yield
