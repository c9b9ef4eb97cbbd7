"""Model files: our self-describing format, and import of the published DeePiCt checkpoints.

Our model file is one ``torch.save`` dictionary holding only tensors and plain Python data, so
``torch.load(..., weights_only=True)`` reads it without running any pickled code::

    {"format": "deepict_scipion-model", "format_version": 1,
     "info": {...ModelInfo as plain data...}, "state_dict": {...tensors...}}

:class:`ModelInfo` says everything needed to use the network correctly: the architecture, the
class names, the voxel size it was trained at, how the input is normalised, the patch geometry,
the label geometry (sphere radius per class), suggested post-processing, the reference spectrum
of equalized training data, the training history and the package version.

The published DeePiCt 3D checkpoints pickle a dataclass of the original code
(``constants.statistics.ModelDescriptor``). They are read with torch's restricted
``weights_only`` unpickler, with a plain stand-in class allowed at that one path: nothing
else can be instantiated, so a file holding other objects is refused rather than executed.
"""

from __future__ import annotations

import copy
import pickle
import struct
import zipfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch

from . import __version__
from .errors import InputFileError, ParameterError
from .io import atomic_path
from .networks import UNet2D, UNet3D

FORMAT = "deepict_scipion-model"
#: What torch's restricted unpickler raises for files that are not (safe) torch files: besides the
#: usual errors, garbage bytes read as a legacy pickle can fail with KeyError, ValueError, IndexError ...
UNREADABLE_ERRORS = (pickle.UnpicklingError, RuntimeError, zipfile.BadZipFile, EOFError, AttributeError, KeyError,
               ValueError, IndexError, TypeError, OSError, struct.error)
FORMAT_VERSION = 1
KIND_3D = "3d"
KIND_2D = "2d"


@dataclass
class ModelInfo:
    """Everything a trained network needs to be applied correctly (plain data only)."""

    kind: str
    classes: list
    architecture: dict
    voxel_size: float | None
    patch_size: int
    overlap: int
    label_kind: str = "spheres"
    sphere_radius: dict = field(default_factory=dict)
    normalization: str = "tomogram_zscore"
    postprocess: dict = field(default_factory=lambda: {"threshold": 0.5, "min_size": 100, "max_size": None})
    spectrum: dict | None = None
    history: list = field(default_factory=list)
    training: dict = field(default_factory=dict)
    source: str = f"deepict_scipion {__version__}"
    version: str = __version__

    def class_index(self, name: str | None) -> int:
        """The output channel of class ``name`` (the first class when ``None``)."""
        if name is None:
            return 0
        if name not in self.classes:
            raise ParameterError(f"the model has no class '{name}'; its classes are {self.classes}")
        return self.classes.index(name)


def build_network(info: ModelInfo) -> torch.nn.Module:
    """A freshly initialised network with the architecture ``info`` describes."""
    if info.kind == KIND_3D:
        return UNet3D(**info.architecture)
    if info.kind == KIND_2D:
        return UNet2D(**info.architecture)
    raise ValueError(f"unknown model kind {info.kind!r}")


def save_model(path, network: torch.nn.Module, info: ModelInfo) -> None:
    """Write a model file atomically (see the module docstring for its layout)."""
    state = {key: value.detach().cpu().clone() for key, value in network.state_dict().items()}
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "info": asdict(info), "state_dict": state}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def read_model_info(path) -> ModelInfo:
    """The :class:`ModelInfo` of a model file, without building the network."""
    return _read_payload(path)[0]


def load_model(path, kind: str | None = None) -> tuple[torch.nn.Module, ModelInfo]:
    """Load a model file as (network in eval mode, info); refuse a model of another ``kind``."""
    info, state = _read_payload(path)
    if kind is not None and info.kind != kind:
        raise InputFileError(path, f"is a {info.kind.upper()} model, but a {kind.upper()} model is needed here",
                             f"Choose a model trained with 'deepict train{kind}' (or the Scipion train {kind.upper()} protocol).")
    network = build_network(info)
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise InputFileError(path, f"its weights do not match its architecture ({exc})",
                             "The file is damaged: train or import the model again.") from exc
    return network.eval(), info


def _read_payload(path) -> tuple[ModelInfo, dict]:
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "model file not found", "Check the path.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except UNREADABLE_ERRORS as exc:
        raise InputFileError(
            path, "is not a deepict_scipion model file",
            "If it is a published DeePiCt checkpoint (.pth), convert it first with 'deepict import-model' "
            "(or the Scipion import model protocol).") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputFileError(path, "is a torch file but not a deepict_scipion model",
                             "Convert published DeePiCt checkpoints with 'deepict import-model'.")
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise InputFileError(path, f"was written by a newer deepict_scipion (format {payload['format_version']})",
                             "Update the deepict_scipion plugin.")
    known = {f.name for f in fields(ModelInfo)}
    info = ModelInfo(**{k: v for k, v in payload["info"].items() if k in known})
    return info, payload["state_dict"]


def _first_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


# --------------------------------------------------------------------------------------------
# Published DeePiCt checkpoints
# --------------------------------------------------------------------------------------------

class _DeepictModelDescriptor:
    """Stand-in for the original ``constants.statistics.ModelDescriptor``: a bag of attributes."""


_DESCRIPTOR_PATH = "constants.statistics.ModelDescriptor"


def import_published_checkpoint(path, voxel_size: float | None) -> tuple[torch.nn.Module, ModelInfo]:
    """Read a DeePiCt 3D checkpoint (``{model_descriptor, model_state_dict, ...}``) as our network + info.

    The checkpoints carry no voxel size: pass the one the network was trained at (the published
    networks: 13.48 Å, 4x binning of 3.37 Å).
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "checkpoint not found", "Check the path.")
    try:
        with torch.serialization.safe_globals([(_DeepictModelDescriptor, _DESCRIPTOR_PATH)]):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except UNREADABLE_ERRORS as exc:
        raise InputFileError(
            path, f"is not a DeePiCt checkpoint that can be read safely ({_first_line(exc)})",
            "Give one of the published DeePiCt .pth files (torch zip format); files holding other "
            "pickled objects are refused because loading them could run arbitrary code.") from exc
    if isinstance(checkpoint, dict) and checkpoint.get("format") == FORMAT:
        return load_model(path, kind=KIND_3D)  # already converted; a 2D model is refused
    if not isinstance(checkpoint, dict) or "model_state_dict" not in checkpoint:
        raise InputFileError(path, "holds no 'model_state_dict'", "Give a DeePiCt 3D training checkpoint.")
    if voxel_size is None or voxel_size <= 0:
        raise InputFileError(path, "DeePiCt checkpoints do not record the voxel size they were trained at",
                             "Give it (e.g. --voxel-size 13.48 for the published networks, 4x binned 3.37 Å data).")
    descriptor = vars(checkpoint.get("model_descriptor") or _DeepictModelDescriptor())
    state = {key.removeprefix("module."): value for key, value in checkpoint["model_state_dict"].items()}
    classes = list(descriptor.get("semantic_classes") or [f"class{i}" for i in range(state["out_conv.bias"].numel())])
    architecture = {
        "depth": int(descriptor.get("depth", sum(1 for k in state if k.startswith("upsamplers.") and k.endswith(".bias")))),
        "initial_features": int(descriptor.get("initial_features", state["encoder.0.0.bias"].numel())),
        "out_channels": len(classes),
        "batch_norm": bool(descriptor.get("batch_norm", any(k.endswith("running_mean") for k in state))),
        "encoder_dropout": float(descriptor.get("encoder_dropout", 0.0)),
        "decoder_dropout": float(descriptor.get("decoder_dropout", 0.0)),
    }
    box = int(descriptor.get("box_size", 64))
    info = ModelInfo(
        kind=KIND_3D, classes=classes, architecture=architecture, voxel_size=float(voxel_size),
        patch_size=box, overlap=int(descriptor.get("overlap", 12)), label_kind="imported",
        postprocess={"threshold": 0.5, "min_size": 100, "max_size": None},
        history=[], training={"epochs": descriptor.get("epochs"), "best_epoch": checkpoint.get("epoch"),
                              "final_loss": checkpoint.get("loss"), "loss": descriptor.get("loss", "Dice")},
        source=f"DeePiCt checkpoint {path.name} (model_name {descriptor.get('model_name')})")
    network = build_network(info)
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise InputFileError(path, f"its weights do not fit the DeePiCt 3D U-Net layout ({exc})",
                             "Only DeePiCt 3D U-Net checkpoints can be imported.") from exc
    return network.eval(), copy.deepcopy(info)
