"""Small worlds shared by the engine's tests: a phantom tomogram, its ribosome picks and a model trained on
it in about a second; an untrained model, a model of constant probability and a noise tomogram; a way to run
``deepict`` in-process."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np

from deepict.cli.main import main
from deepict.io import read_coordinates, write_volume
from deepict.nn.model_files import KIND_3D, POSTPROCESS_CALIBRATION, ModelInfo, build_network, save_model
from deepict.synthetic import PhantomConfig, make_phantom, write_phantom

#: The shared data folder beside the repository (tests that read it skip when it is absent).
SHARED = Path(__file__).resolve().parents[3] / "shared"
#: The published DeePiCt checkpoints.
PUBLISHED = SHARED / "models" / "published"

#: Voxel size (Å) of the untrained model and the noise tomogram.
VOXEL = 13.48

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


def untrained_model(path: Path, source: str | None = None, spectrum: dict | None = None) -> Path:
    """A depth-1, 2-feature 3D model (16-voxel boxes) with random weights, optionally marked as imported
    from ``source`` or carrying a reference ``spectrum``."""
    info = ModelInfo(kind=KIND_3D, classes=["ribosome"], voxel_size=VOXEL, patch_size=16, overlap=4,
                     architecture={"depth": 1, "initial_features": 2, "out_channels": 1, "batch_norm": False},
                     spectrum=spectrum, **({"source": source} if source else {}))
    save_model(path, build_network(info), info)
    return path


def constant_model(path: Path, probability: float, calibrated_threshold: float = 0.5) -> Path:
    """A particle model (one-voxel minimum size) whose map is ``probability`` everywhere, with a calibrated
    threshold: the output layer's weights are zero and its bias the probability's logit."""
    info = ModelInfo(kind=KIND_3D, classes=["ribosome"], voxel_size=VOXEL, patch_size=16, overlap=4,
                     architecture={"depth": 1, "initial_features": 2, "out_channels": 1, "batch_norm": False},
                     label_kind="spheres", sphere_radius={"ribosome": 4.0},
                     postprocess={"threshold": calibrated_threshold, "min_size": 1, "max_size": None})
    info.training[POSTPROCESS_CALIBRATION] = dict(info.postprocess)
    network = build_network(info)
    network.out_conv.weight.data.zero_()
    network.out_conv.bias.data.fill_(float(np.log(probability / (1 - probability))))
    save_model(path, network, info)
    return path


def noise_tomogram(path: Path) -> Path:
    """A 24x40x40 tomogram of Gaussian noise at ``VOXEL``."""
    write_volume(path, np.random.default_rng(0).normal(size=(24, 40, 40)).astype(np.float32), VOXEL)
    return path


def pick_small(model: Path, tomogram: Path, capsys) -> str:
    """``deepict pick`` with 16-voxel boxes on the CPU; returns what it printed."""
    code = main(["pick", "--model", str(model), "--tomogram", str(tomogram), "--out", str(tomogram.with_suffix(".csv")),
                 "--window", "16", "--margin", "4", "--batch-size", "4", "--device", "cpu"])
    assert code == 0
    return capsys.readouterr().out
