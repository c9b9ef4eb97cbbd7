"""A tiny picking world shared by the fault matrices: a phantom tomogram, its ribosome picks and a model
trained on it in about a second, plus a way to run ``deepict`` in-process and read what it printed."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from deepict_scipion.core.cli import main
from deepict_scipion.core.io import read_coordinates
from deepict_scipion.core.synthetic import PhantomConfig, make_phantom, write_phantom

#: A training that finishes in about a second: enough for a real model file, not for good picks.
TINY_TRAINING = ["--epochs", "1", "--iterations-per-epoch", "1", "--patch-size", "16", "--depth", "1",
                 "--initial-features", "2", "--batch-size", "1", "--device", "cpu", "--radius", "4"]


def make_tiny_world(folder: Path) -> SimpleNamespace:
    """Write the phantom and train the model in ``folder`` (each test module keeps its own folder, so one
    module's outputs never count as another's litter)."""
    phantom = make_phantom(PhantomConfig(shape_zyx=(32, 48, 48), seed=3, n_ribosomes=6, n_fas=1, n_distractors=1,
                                         n_vesicles=0, n_sheets=0))
    paths = write_phantom(phantom, folder, "tomo")
    model = folder / "ribo.pt"
    assert main(["train3d", "--tomograms", str(paths["tomogram"]), "--coords", str(paths["ribosome"]),
                 "--out", str(model)] + TINY_TRAINING) == 0
    state = next(p for p in folder.iterdir() if p != model and p.name.startswith("ribo.") and p.suffix == ".pt")
    return SimpleNamespace(folder=folder, tomo=Path(paths["tomogram"]), coords=Path(paths["ribosome"]),
                           model=model, state=state, truth=read_coordinates(paths["ribosome"]).xyz)


def run(capsys, *argv):
    """Run ``deepict argv`` in this process; returns (exit code, stdout, stderr). A bug raises (a traceback)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err
