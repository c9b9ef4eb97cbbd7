"""Fixtures and markers shared by the tests."""

import pytest
import torch


def pytest_configure(config):
    config.addinivalue_line("markers", "gui: opens Scipion's GUI under Xvfb and saves screenshots (pytest -m gui)")


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
