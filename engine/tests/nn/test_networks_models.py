"""Tests of the 3D U-Net and of model files (deepict.nn.networks / models): small and fast."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from deepict.nn import model_files as models
from deepict.errors import DeepictError, InputFileError, ParameterError
from deepict.nn.model_files import (FORMAT, KIND_2D, KIND_3D, ModelInfo, import_published_checkpoint,
                                         load_model, read_model_info, save_model)
from deepict.nn.networks import UNet2D, UNet3D
from deepict.train.config import TrainConfig
from tiny_world import PUBLISHED

pytestmark = pytest.mark.usefixtures("one_torch_thread")


#: file -> (parameter count, batch norm, initial features, class)
CHECKPOINTS = {
    "ribosomeModel.pth": (21_453, True, 4, "ribo"),
    "membraneModel.pth": (21_453, True, 4, "memb"),
    "microtubuleModel.pth": (21_357, False, 4, "microtubule"),
    "fasModel.pth": (339_633, True, 16, "fas"),
}


def n_parameters(network: torch.nn.Module) -> int:
    return sum(p.numel() for p in network.parameters())


def info_3d(**changes) -> ModelInfo:
    values = dict(kind=KIND_3D, classes=["ribosome"], voxel_size=13.48, patch_size=16, overlap=4,
                  architecture={"depth": 1, "initial_features": 2, "out_channels": 1, "batch_norm": True,
                                "encoder_dropout": 0.0, "decoder_dropout": 0.0},
                  sphere_radius={"ribosome": 5.0})
    values.update(changes)
    return ModelInfo(**values)


# --------------------------------------------------------------------------------------------
# Architecture
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("batch_norm, expected", [(True, 21_453), (False, 21_357)])
def test_if4_d2_parameter_counts(batch_norm, expected):
    assert n_parameters(UNet3D(depth=2, initial_features=4, batch_norm=batch_norm)) == expected


def test_if16_d2_parameter_count_and_bn_buffers():
    assert n_parameters(UNet3D(depth=2, initial_features=16, batch_norm=True)) == 339_633
    # IF4-D2-BN: 8 BatchNorm layers, 48 channels -> 96 running statistics + 8 batch counters.
    assert sum(b.numel() for b in UNet3D(2, 4).buffers()) == 104


def test_train3d_default_network_is_the_published_fas_architecture():
    # The default since 2026-11-30: it picked FAS better than depth 3 with 8 features (README, *Measured*).
    config = TrainConfig()
    count, batch_norm, features, _ = CHECKPOINTS["fasModel.pth"]
    network = UNet3D(depth=config.depth, initial_features=config.initial_features, batch_norm=config.batch_norm)
    assert n_parameters(network) == count and config.batch_norm is batch_norm
    assert config.initial_features == features and config.decoder_dropout == 0.0


def test_unet3d_output_shape_and_no_bn_in_base():
    network = UNet3D(depth=2, initial_features=2, out_channels=3).eval()
    with torch.no_grad():
        out = network(torch.zeros(2, 1, 8, 12, 16))
    assert out.shape == (2, 3, 8, 12, 16)
    assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in network.base.modules())


def test_unet3d_rejects_bad_sizes():
    with pytest.raises(ValueError):
        UNet3D(depth=0)


# --------------------------------------------------------------------------------------------
# Published checkpoints
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(CHECKPOINTS))
def test_import_published_checkpoint_strict(name):
    path = PUBLISHED / name
    if not path.is_file():
        pytest.skip(f"{path} is not available")
    count, batch_norm, features, class_name = CHECKPOINTS[name]
    network, info = import_published_checkpoint(path, 13.48)
    assert isinstance(network, UNet3D) and not network.training
    assert n_parameters(network) == count
    assert info.kind == KIND_3D and info.classes == [class_name]
    assert info.architecture["depth"] == 2 and info.architecture["initial_features"] == features
    assert info.architecture["batch_norm"] is batch_norm
    assert info.voxel_size == pytest.approx(13.48) and info.patch_size == 64 and info.overlap == 12
    assert info.source == f"{models.PUBLISHED_SOURCE_PREFIX} {name}"  # no generic "(model_name model_weights)"
    # Strict keys: every stored tensor has a home and every parameter was loaded.
    with torch.serialization.safe_globals([(models._DeepictModelDescriptor, models._DESCRIPTOR_PATH)]):
        stored = torch.load(path, map_location="cpu", weights_only=True)["model_state_dict"]
    assert all(key.startswith("module.") for key in stored)
    stored = {key.removeprefix("module."): value for key, value in stored.items()}
    assert set(stored) == set(network.state_dict())
    for key, value in stored.items():
        assert torch.equal(value, network.state_dict()[key]), key
    UNet3D(**info.architecture).load_state_dict(stored, strict=True)
    with torch.no_grad():
        out = network(torch.zeros(1, 1, 16, 16, 16))
    assert out.shape == (1, 1, 16, 16, 16) and torch.isfinite(out).all()


def test_import_without_voxel_size_is_a_clear_error():
    path = PUBLISHED / "ribosomeModel.pth"
    if not path.is_file():
        pytest.skip(f"{path} is not available")
    with pytest.raises(InputFileError, match="voxel size") as caught:
        import_published_checkpoint(path, None)
    assert "ribosomeModel.pth" in str(caught.value) and "--voxel-size" in str(caught.value)
    for voxel_size in (0.0, float("nan"), float("inf")):  # a job file's value (the command line refuses them)
        with pytest.raises(ParameterError, match="the voxel size must be a finite number > 0 Å"):
            import_published_checkpoint(path, voxel_size)


def test_imported_checkpoint_round_trips_through_our_format(tmp_path):
    path = PUBLISHED / "microtubuleModel.pth"
    if not path.is_file():
        pytest.skip(f"{path} is not available")
    network, info = import_published_checkpoint(path, 13.48)
    save_model(tmp_path / "mt.pt", network, info)
    again, again_info = load_model(tmp_path / "mt.pt", kind=KIND_3D)
    for key, value in network.state_dict().items():
        assert torch.equal(value, again.state_dict()[key])
    assert again_info.classes == ["microtubule"] and again_info.label_kind == "imported"


# --------------------------------------------------------------------------------------------
# Our model files
# --------------------------------------------------------------------------------------------

def test_model_file_round_trip_is_plain_data(tmp_path):
    torch.manual_seed(0)
    network = UNet3D(depth=1, initial_features=2)
    info = info_3d(history=[{"epoch": 1, "loss": 0.5, "val_dice": None}])
    path = tmp_path / "model.pt"
    save_model(path, network, info)
    payload = torch.load(path, map_location="cpu", weights_only=True)  # no pickled code needed
    assert payload["format"] == FORMAT and payload["info"]["classes"] == ["ribosome"]
    loaded, loaded_info = load_model(path, kind=KIND_3D)
    assert not loaded.training
    for key, value in network.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key])
    assert loaded_info == info
    assert read_model_info(path).sphere_radius == {"ribosome": 5.0}
    assert not list(tmp_path.glob("*.part")), "the atomic write left a temporary file"


def test_2d_model_asked_as_3d_is_refused(tmp_path):
    info = ModelInfo(kind=KIND_2D, classes=["cytosol"], voxel_size=13.48, patch_size=32, overlap=0,
                     architecture={"depth": 2, "initial_features": 2, "out_channels": 1}, label_kind="masks")
    path = tmp_path / "cytosol2d.pt"
    save_model(path, UNet2D(depth=2, initial_features=2), info)
    with pytest.raises(InputFileError, match="2D model") as caught:
        load_model(path, kind=KIND_3D)
    assert "cytosol2d.pt" in str(caught.value)
    with pytest.raises(InputFileError, match="2D model"):
        import_published_checkpoint(path, 13.48)


def test_non_model_files_are_refused(tmp_path):
    text = tmp_path / "notes.pt"
    text.write_text("not a model\n")
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"hello world" + bytes(range(256)))  # read as a legacy pickle: odd opcodes
    tensors = tmp_path / "tensors.pt"
    torch.save({"weights": torch.zeros(3)}, tensors)
    for path in (text, empty, garbage):
        with pytest.raises(InputFileError) as caught:
            import_published_checkpoint(path, 13.48)
        assert path.name in str(caught.value)
    for path in (text, empty, garbage, tensors):
        with pytest.raises(InputFileError) as caught:
            load_model(path)
        assert path.name in str(caught.value)
    with pytest.raises(InputFileError, match="model_state_dict"):
        import_published_checkpoint(tensors, 13.48)
    with pytest.raises(InputFileError, match="not found"):
        load_model(tmp_path / "missing.pt")


class _Evil:
    """Unpickling this runs a shell command (creates a marker file)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


class _Arbitrary:
    """A harmless but unknown class: must not be instantiated either."""

    def __init__(self):
        self.value = 1


@pytest.mark.parametrize("writer", ["torch", "pickle"])
def test_malicious_pickles_are_refused_without_running(tmp_path, writer):
    marker = tmp_path / "pwned"
    payloads = {
        "evil.pth": _Evil(marker),
        "evil_checkpoint.pth": {"model_state_dict": {}, "model_descriptor": _Evil(marker)},
        "arbitrary_class.pth": {"model_state_dict": {}, "model_descriptor": _Arbitrary()},
        "evil_model.pt": {"format": FORMAT, "format_version": 1, "info": _Evil(marker), "state_dict": {}},
    }
    for name, payload in payloads.items():
        path = tmp_path / name
        if writer == "torch":
            torch.save(payload, path)
        else:
            with open(path, "wb") as handle:
                pickle.dump(payload, handle)
        with pytest.raises(InputFileError) as caught:
            import_published_checkpoint(path, 13.48)
        assert name in str(caught.value)
        with pytest.raises(InputFileError):
            load_model(path)
        assert not marker.exists(), f"loading {name} ran pickled code"


def test_errors_are_deepict_errors():
    assert issubclass(InputFileError, DeepictError)


def test_models_module_imports_without_torch():
    """Scipion's import-model form calls model_file_problem in _validate: loading the plugin must not import torch."""
    code = ("import sys; import deepict.nn.model_files as m; "
            "assert callable(m.model_file_problem) and 'torch' not in sys.modules, sorted(sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
