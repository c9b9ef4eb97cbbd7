"""The shared rules of deepict.conventions: importable anywhere, and the ones every stage applies."""

import subprocess
import sys

import pytest

from deepict import conventions
from deepict.conventions import class_name_problem, fits_model_voxel_size, voxel_sizes_differ


def test_conventions_import_neither_numpy_nor_torch():
    """The Scipion forms import it in Scipion's Python, which may have neither."""
    code = ("import sys; import deepict.conventions; "
            "print(sorted(m for m in ('numpy', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("a, b, differ", [
    (13.48, 13.48, False), (13.48, 13.5, False),  # header rounding is the same sampling
    (13.48, 26.96, True), (13.48, 13.48 * 1.02, True),  # binning or resampling is not
    (None, 13.48, False), (0.0, 13.48, False), (13.48, None, False)])  # unknown: nothing to compare
def test_same_sampling_rule(a, b, differ):
    assert voxel_sizes_differ(a, b) is differ
    assert voxel_sizes_differ(b, a) is differ


def test_model_voxel_size_rule_accepts_five_percent():
    assert fits_model_voxel_size(13.48 * 1.049, 13.48) and fits_model_voxel_size(13.48 * 0.951, 13.48)
    assert not fits_model_voxel_size(13.48 * 1.06, 13.48) and not fits_model_voxel_size(26.96, 13.48)


def test_every_loss_name_has_a_loss():
    from deepict.nn.losses import LOSSES
    assert set(LOSSES) == set(conventions.LOSS_NAMES)
    assert list(conventions.LOSS_NAMES) == sorted(conventions.LOSS_NAMES)  # the forms store an index


@pytest.mark.parametrize("name", ["ribosome", "fas", "cytosol", "membrane", "large_ribo", "fas-2", "80S", "npc.v2"])
def test_class_names_that_name_files_are_accepted(name):
    assert class_name_problem(name) is None


@pytest.mark.parametrize("name, valid", [("large ribo", "large_ribo"), ("ribo/fas", "ribo_fas"), ("_x", "x"),
                                         ("ribo:1", "ribo_1"), ("..", "class1")])
def test_class_names_that_break_file_names_are_refused_with_a_valid_one(name, valid):
    assert f"e.g. '{valid}'" in class_name_problem(name)


@pytest.mark.parametrize("name", ["", "  "])
def test_an_empty_class_name_is_said_to_be_empty(name):
    assert class_name_problem(name).startswith("a class name is empty")
