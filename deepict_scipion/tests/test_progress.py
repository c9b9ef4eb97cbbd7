"""Long steps report progress (issue 9, defect 7) and the published networks do not fail silently (defect 8)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from pyworkflow.tests import BaseTest, setupTestProject

from deepict_scipion.core.cli import main
from deepict_scipion.core.io import write_volume
from deepict_scipion.core.models import (KIND_3D, PUBLISHED_SOURCE_PREFIX, ModelInfo, build_network,
                                         import_published_checkpoint, published_spectrum_warning, save_model)
from deepict_scipion.core.progress import Progress, format_duration
from deepict_scipion.protocols import ProtDeepictImportModel, ProtDeepictPick

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PUBLISHED = Path(__file__).resolve().parents[3] / "shared" / "models" / "published"
VOXEL = 13.48
PROGRESS_LINE = re.compile(r"predicting T\.mrc: (\d+)/(\d+) windows \(\d+%\), .* elapsed, ETA \d+")


class FakeClock:
    """Seconds advanced by hand: the reporter's timing without sleeping."""

    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_progress_reports_count_percent_elapsed_and_eta_at_most_every_interval():
    clock, lines = FakeClock(), []
    progress = Progress("predicting", 10, "windows", lines.append, every=3.0, clock=clock)
    for _ in range(10):
        clock.now += 1.0
        progress.advance()
    # The first unit gives an early estimate, then a line every 3 s, and the end.
    assert lines == ["predicting: 1/10 windows (10%), 1 s elapsed, ETA 9 s",
                     "predicting: 4/10 windows (40%), 4 s elapsed, ETA 6 s",
                     "predicting: 7/10 windows (70%), 7 s elapsed, ETA 3 s",
                     "predicting: 10/10 windows (100%) in 10 s"]


def test_a_step_shorter_than_the_interval_stays_silent_without_a_first_line():
    clock, lines = FakeClock(), []
    progress = Progress("epoch 1/3", 5, "batches", lines.append, every=3.0, first_line=False, clock=clock)
    for _ in range(5):
        clock.now += 0.5
        progress.advance()
    assert lines == []
    slow = Progress("epoch 2/3", 4, "batches", lines.append, every=3.0, first_line=False, clock=clock)
    for _ in range(4):
        clock.now += 2.0
        slow.advance()
    assert lines == ["epoch 2/3: 2/4 batches (50%), 4 s elapsed, ETA 4 s", "epoch 2/3: 4/4 batches (100%) in 8 s"]


def test_format_duration():
    assert [format_duration(s) for s in (0.4, 42, 185, 7620)] == ["0 s", "42 s", "3 min 05 s", "2 h 07 min"]


def tiny_model(path: Path, source: str | None = None, spectrum: dict | None = None) -> Path:
    info = ModelInfo(kind=KIND_3D, classes=["ribosome"], voxel_size=VOXEL, patch_size=16, overlap=4,
                     architecture={"depth": 1, "initial_features": 2, "out_channels": 1, "batch_norm": False},
                     spectrum=spectrum, **({"source": source} if source else {}))
    save_model(path, build_network(info), info)
    return path


@pytest.fixture
def tomogram(tmp_path) -> Path:
    path = tmp_path / "T.mrc"
    write_volume(path, np.random.default_rng(0).normal(size=(24, 40, 40)).astype(np.float32), VOXEL)
    return path


def pick(model: Path, tomogram: Path, capsys) -> str:
    code = main(["pick", "--model", str(model), "--tomogram", str(tomogram), "--out", str(tomogram.with_suffix(".csv")),
                 "--window", "16", "--margin", "4", "--batch-size", "4", "--device", "cpu"])
    assert code == 0
    return capsys.readouterr().out


def test_pick_prints_progress_lines_with_eta(tmp_path, tomogram, capsys):
    out = pick(tiny_model(tmp_path / "ours.pt"), tomogram, capsys)
    lines = [PROGRESS_LINE.search(line) for line in out.splitlines()]
    counts = [(int(m[1]), int(m[2])) for m in lines if m]
    assert counts and counts[0][1] == 3 * 5 * 5  # 24 x 40 x 40 voxels in boxes of 16 with cores of 8
    assert "predicting T.mrc: 75/75 windows (100%)" in out  # and the end of the step
    assert "spectrum" not in out  # no published-network warning for our own model


def test_a_published_network_without_reference_spectrum_warns_at_pick_time(tmp_path, tomogram, capsys):
    published = tiny_model(tmp_path / "published.pt", source=f"{PUBLISHED_SOURCE_PREFIX} ribo.pth (model_name x)")
    out = pick(published, tomogram, capsys)
    warning = [line for line in out.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "published DeePiCt network" in warning[0] and "deepict equalize" in warning[0]
    assert str(published) in warning[0]


def test_the_published_rule():
    source = f"{PUBLISHED_SOURCE_PREFIX} ribosomeModel.pth (model_name ribo)"
    assert "spectrum-matched" in published_spectrum_warning(source, has_spectrum=False)
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


class TestPickSummaryWarnsAboutPublishedNetworks(BaseTest):
    """The pick protocol's summary carries the same warning, for a model imported in a real project."""

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        cls.folder = Path(cls.proj.getTmpPath("models")).resolve()
        cls.folder.mkdir(parents=True, exist_ok=True)

    def summaryWith(self, model_file: Path, **import_parameters) -> str:
        imported = self.newProtocol(ProtDeepictImportModel, modelFile=str(model_file), **import_parameters)
        self.launchProtocol(imported)
        pick = self.newProtocol(ProtDeepictPick, inputModel=imported.deepictModel)
        return "\n".join(pick._summary())

    def test_a_model_that_looks_imported_from_the_published_set(self):
        published = tiny_model(self.folder / "published.pt", source=f"{PUBLISHED_SOURCE_PREFIX} ribo.pth")
        summary = self.summaryWith(published)
        self.assertIn("Warning: this published DeePiCt network", summary)
        self.assertIn("deepict equalize", summary)
        self.assertNotIn("published DeePiCt network", self.summaryWith(tiny_model(self.folder / "ours.pt")))

    def test_the_published_ribosome_network(self):
        checkpoint = PUBLISHED / "ribosomeModel.pth"
        if not checkpoint.is_file():
            self.skipTest(f"{checkpoint} is not available")
        self.assertIn("spectrum-matched", self.summaryWith(checkpoint, voxelSize=VOXEL))
