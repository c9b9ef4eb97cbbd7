"""The published networks do not fail silently: they were trained on spectrum-matched data, and a model
imported from them without a reference spectrum warns when it picks."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepict.nn.model_files import PUBLISHED_SOURCE_PREFIX, import_published_checkpoint, published_spectrum_warning
from tiny_world import PUBLISHED, VOXEL, noise_tomogram, pick_small, untrained_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_a_published_network_without_reference_spectrum_warns_at_pick_time(tmp_path, capsys):
    published = untrained_model(tmp_path / "published.pt", source=f"{PUBLISHED_SOURCE_PREFIX} ribo.pth (model_name x)")
    out = pick_small(published, noise_tomogram(tmp_path / "T.mrc"), capsys)
    # (an untrained network's map may also fill the tomogram, which pick warns of too)
    warning = [line for line in out.splitlines() if line.startswith("warning:") and "published DeePiCt" in line]
    assert len(warning) == 1 and "deepict equalize" in warning[0]
    assert str(published) in warning[0]


def test_the_published_rule():
    source = f"{PUBLISHED_SOURCE_PREFIX} ribosomeModel.pth (model_name ribo)"
    assert "spectrum-matched" in published_spectrum_warning(source, has_spectrum=False)
    # a fix the user can follow without the authors' reference spectrum: a tomogram of their own, or training
    assert "your own phase-plate tomograms" in published_spectrum_warning(source, has_spectrum=False)
    assert "deepict train3d" in published_spectrum_warning(source, has_spectrum=False)
    # the same words for the membrane and microtubule networks, which segment structures, not particles
    assert "particles" not in published_spectrum_warning(source, has_spectrum=False)
    assert published_spectrum_warning(source, has_spectrum=True) is None  # it is equalized for on the fly
    assert published_spectrum_warning("deepict_scipion 0.3", has_spectrum=False) is None
    assert published_spectrum_warning(None, has_spectrum=False) is None


def test_imported_published_checkpoints_carry_the_warning():
    checkpoints = sorted(PUBLISHED.glob("*.pth"))
    if not checkpoints:
        pytest.skip(f"no published checkpoints in {PUBLISHED}")
    for checkpoint in checkpoints:
        _, info = import_published_checkpoint(checkpoint, VOXEL)
        assert info.spectrum_warning(), checkpoint
