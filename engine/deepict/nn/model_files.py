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

Torch is imported only by the functions that need it, so that Scipion can import this module
(e.g. for :func:`model_file_problem` in a form's validation) without paying for torch.
"""

from __future__ import annotations

import copy
import math
import pickle
import pickletools
import re
import struct
import warnings
import zipfile
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

from deepict import __version__
from deepict.conventions import voxel_sizes_differ
from deepict.errors import InputFileError, ParameterError
from deepict.io import atomic_path, check_readable

FORMAT = "deepict_scipion-model"
#: What torch's restricted unpickler raises for files that are not (safe) torch files: besides the
#: usual errors, garbage bytes read as a legacy pickle can fail with KeyError, ValueError, IndexError ...
UNREADABLE_ERRORS = (pickle.UnpicklingError, RuntimeError, zipfile.BadZipFile, EOFError, AttributeError, KeyError,
                     ValueError, IndexError, TypeError, OSError, struct.error)
#: The newest format this reader reads. Ensembles (:mod:`.ensemble`) are written as version 2, so that an older
#: reader refuses them as "written by a newer deepict_scipion"; single networks stay version 1, which it reads.
FORMAT_VERSION = 2
_SINGLE_NETWORK_FORMAT_VERSION = 1
KIND_3D = "3d"
KIND_2D = "2d"
#: ``ModelInfo.source`` of a network imported from a published DeePiCt checkpoint starts with this.
PUBLISHED_SOURCE_PREFIX = "DeePiCt checkpoint"


#: ``ModelInfo.architecture`` key of an ensemble: the architecture of each member (:mod:`.ensemble`).
MEMBERS = "members"
#: ``ModelInfo.training`` key of an ensemble: what each member was (its file, source, post-processing).
ENSEMBLE_MEMBERS = "ensemble_members"
#: ``ModelInfo.training`` key: ``False`` while a training runs, ``True`` once it finished.
COMPLETE = "complete"
#: ``ModelInfo.training`` key: the post-processing chosen on validation data after training (particle models).
POSTPROCESS_CALIBRATION = "postprocess_calibration"
#: ``ModelInfo.training`` key: {class: share of the training tomograms' voxels its labels cover}; a segmentation
#: covering far more of a tomogram is suspect (:func:`deepict.infer.clusters.segmentation_fills_the_map`).
LABEL_SHARE = "label_share"
#: The ``ModelInfo.training`` settings that say where a 3D training's validation slabs lie (the high-x
#: ``val_fraction`` of each tomogram's width, at least one training box wide).
VALIDATION_SPLIT = ("val_fraction", "patch_size")


def validation_split(training: dict) -> dict | None:
    """Where a 3D training kept its validation slabs (:data:`VALIDATION_SPLIT`), or ``None`` where ``training``
    does not say (imported networks, ensembles)."""
    split = {key: training.get(key) for key in VALIDATION_SPLIT}
    return None if None in split.values() else split


def incomplete_training_warning(training: dict) -> str | None:
    """What to say about a model whose training did not finish (``None`` when it did, or it does not say)."""
    if training.get(COMPLETE) is not False:
        return None
    return ("its training did not finish (the run was stopped; a 3D particle model then also lacks its calibrated "
            "minimum cluster size): run the same training again with --resume to finish it")


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
    #: The mean spectrum of the training tomograms as the network saw them (same record as ``spectrum``):
    #: a tomogram far from it is unlike the training data, and picking it says so.
    training_spectrum: dict | None = None
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

    def spectrum_warning(self) -> str | None:
        """See :func:`published_spectrum_warning`."""
        return published_spectrum_warning(self.source, self.spectrum is not None)


def published_spectrum_warning(source: str | None, has_spectrum: bool) -> str | None:
    """Why a model may find almost nothing without saying so, or ``None`` (the one rule for the engine and Scipion).

    The published DeePiCt networks were trained on spectrum-matched data and store no reference
    spectrum, so nothing equalizes a tomogram for them, and on raw tomograms they find almost nothing.
    """
    if has_spectrum or not (source or "").startswith(PUBLISHED_SOURCE_PREFIX):
        return None
    return ("this published DeePiCt network was trained on spectrum-matched tomograms (phase-plate S. pombe data, "
            "matched to the authors' spectrum_TS_001.tsv, which is not part of the network file) and stores no "
            "reference spectrum: on other tomograms it finds little or nothing. Either equalize the tomograms to that "
            "spectrum, or to one of your own phase-plate tomograms at the network's voxel size ('deepict equalize "
            "--tomogram T.mrc --reference REFERENCE --out T_eq.mrc'; in Scipion: the DeePiCt equalize protocol) and "
            "apply it to the equalized tomograms; or train a network on a few annotated tomograms of your own "
            "('deepict train3d'; Train 3D), which stores its reference and equalizes new tomograms itself.")


def build_network(info: ModelInfo) -> "torch.nn.Module":
    """A freshly initialised network with the architecture ``info`` describes."""
    from deepict.nn.networks import UNet2D, UNet3D
    if info.kind == KIND_3D and MEMBERS in info.architecture:
        from deepict.nn.ensemble import MeanProbabilityEnsemble
        return MeanProbabilityEnsemble([UNet3D(**member) for member in info.architecture[MEMBERS]])
    if info.kind == KIND_3D:
        return UNet3D(**info.architecture)
    if info.kind == KIND_2D:
        return UNet2D(**info.architecture)
    raise ValueError(f"unknown model kind {info.kind!r}")


def save_model(path, network: "torch.nn.Module", info: ModelInfo) -> None:
    """Write a model file atomically (see the module docstring for its layout)."""
    import torch
    state = {key: value.detach().cpu().clone() for key, value in network.state_dict().items()}
    version = FORMAT_VERSION if MEMBERS in info.architecture else _SINGLE_NETWORK_FORMAT_VERSION
    payload = {"format": FORMAT, "format_version": version, "info": asdict(info), "state_dict": state}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def network_depth(architecture: dict) -> int | None:
    """The pooling levels of a network (an ensemble's deepest member), or ``None`` when not recorded."""
    if MEMBERS in architecture:
        return max((network_depth(member) or 0 for member in architecture[MEMBERS]), default=None)
    return architecture.get("depth")


def read_model_info(path) -> ModelInfo:
    """The :class:`ModelInfo` of a model file, without building the network."""
    return _model_info(path, _model_payload(path))


def load_model(path, kind: str | None = None) -> tuple["torch.nn.Module", ModelInfo]:
    """Load a model file as (network in eval mode, info); refuse a model of another ``kind``."""
    return _network_from_payload(path, _model_payload(path), kind)


def _network_from_payload(path, payload: dict, kind: str | None) -> tuple["torch.nn.Module", ModelInfo]:
    info = _model_info(path, payload)
    if kind is not None and info.kind != kind:
        raise InputFileError(path, f"is a {info.kind.upper()} model, but a {kind.upper()} model is needed here",
                             f"Choose a model trained with 'deepict train{kind}' (or the Scipion train {kind.upper()} protocol).")
    network = build_network(info)
    try:
        network.load_state_dict(payload.get("state_dict"), strict=True)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise InputFileError(path, f"its weights do not match its architecture ({_first_line(exc)})",
                             "The file is damaged: train or import the model again.") from None
    return network.eval(), info


#: What to do with a file given as a model that is no model.
_MODEL_FIX = ("Give a model file written by 'deepict train3d', 'train2d' or 'import-model' (a published DeePiCt "
              ".pth checkpoint must be converted with 'deepict import-model' first).")
#: What to do with a file given to import-model that is no checkpoint.
_CHECKPOINT_FIX = ("Give one of the published DeePiCt 3D .pth checkpoints, obtained from a trusted source, or a 3D "
                   "model file written by 'deepict train3d'.")


def _model_payload(path) -> dict:
    """The plain data of a deepict_scipion model file; anything else is refused, saying what it is."""
    payload = read_torch_file(path, _MODEL_FIX)
    if _is_training_state(payload):
        raise _training_state_error(path)
    if isinstance(payload, dict) and "model_state_dict" in payload:
        raise InputFileError(path, "is a DeePiCt checkpoint that has not been converted",
                             "Convert it with 'deepict import-model --voxel-size ...' (or the Scipion import "
                             "model protocol) and give the converted model file.")
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputFileError(path, "is a torch file but not a deepict_scipion model", _MODEL_FIX)
    if not isinstance(payload.get("format_version", 0), int) or payload.get("format_version", 0) > FORMAT_VERSION:
        raise InputFileError(path, f"was written by a newer deepict_scipion (format {payload['format_version']})",
                             "Update the deepict_scipion plugin.")
    return payload


def _model_info(path, payload: dict) -> ModelInfo:
    data = payload.get("info")
    if not isinstance(data, dict):
        raise InputFileError(path, "is a damaged model file: it holds no model description ('info')",
                             "Train or import the model again.")
    required = [f.name for f in fields(ModelInfo) if f.default is MISSING and f.default_factory is MISSING]
    missing = [name for name in required if name not in data]
    if missing:
        raise InputFileError(path, f"is a damaged model file: its description lacks {', '.join(missing)}",
                             "Train or import the model again.")
    if data["kind"] not in (KIND_3D, KIND_2D) or not isinstance(data["architecture"], dict):
        raise InputFileError(path, f"is a damaged model file: unknown kind {data['kind']!r} or architecture",
                             "Train or import the model again.")
    known = {f.name for f in fields(ModelInfo)}
    return ModelInfo(**{k: v for k, v in data.items() if k in known})


def read_torch_file(path, fix: str, mmap: bool = False):
    """A torch file read with torch's restricted unpickler (tensors, plain data, the DeePiCt descriptor).

    Any file torch cannot read safely is refused with one :class:`InputFileError` in our words (never
    torch's advice to load it unsafely), ending with ``fix`` unless the cause needs another (unsafe
    pickles). For every torch file the engine reads, training states included. ``mmap`` maps the
    tensors instead of reading them (torch zip files only): cheap, for checks.
    """
    import torch
    path = check_readable(path, "model file")
    try:
        with torch.serialization.safe_globals([(_DeepictModelDescriptor, _DESCRIPTOR_PATH)]), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on pickle protocols are no concern of the user's
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and zipfile.is_zipfile(path))
    except UNREADABLE_ERRORS as exc:
        problem, advice = _unreadable(path, exc)
        raise InputFileError(path, problem, advice or fix) from None


def _unreadable(path: Path, exc: Exception) -> tuple[str, str | None]:
    """Why torch could not read ``path`` and, where it differs from the caller's, what to do, in our words.

    Torch's own message advises loading the file without ``weights_only``: exactly what must not
    be done with a file that holds pickled objects, so it is never shown.
    """
    blocked = re.search(r"GLOBAL ([\w.]+)", str(exc))
    blocked = blocked[1] if blocked else _foreign_global(path)
    if blocked:
        return (f"holds pickled Python objects ({blocked}) besides tensors and plain data: refused, "
                "because loading it could run arbitrary code",
                "Use only model files from a trusted source; do not open this one with other tools either.")
    with open(path, "rb") as handle:
        head = handle.read(4)
    if not head:
        return "is empty", None
    if head == b"PK\x03\x04":
        return "is a damaged torch file (a truncated zip archive, or one that torch did not write)", None
    return "is not a torch file (neither a torch zip archive nor a pickle of tensors)", None


def _foreign_global(path: Path) -> str | None:
    """The first non-torch class or function a plain pickle file would import, read with pickletools
    (nothing runs); ``None`` for other files. Torch refuses some such files before it meets the import."""
    pushed = []
    try:
        with open(path, "rb") as handle:
            for opcode, argument, _ in pickletools.genops(handle):
                if opcode.name == "GLOBAL":
                    name = argument.replace(" ", ".")
                elif opcode.name == "STACK_GLOBAL" and len(pushed) >= 2:
                    name = ".".join(pushed[-2:])
                else:
                    if isinstance(argument, str):
                        pushed.append(argument)
                    continue
                if not name.startswith(("torch.", "collections.OrderedDict")):
                    return name
    except (ValueError, EOFError, OSError, struct.error):  # a malformed pickle names no import
        return None
    return None


def _is_training_state(payload) -> bool:
    """A resumable training state (network, optimizer, history), whatever its file is called."""
    return isinstance(payload, dict) and payload.get("format") != FORMAT and "model_state_dict" not in payload \
        and "optimizer" in payload and "state_dict" in payload


def _training_state_error(path) -> InputFileError:
    model = _model_beside(Path(path))
    return InputFileError(
        path, "is a training state (to resume a training with --resume), not a model",
        f"Give the model file {model} that the same training wrote beside it." if model else
        "Give the model file the training wrote (its --out).")


def _model_beside(path: Path) -> Path | None:
    """The model file a training state was written beside (its name starts with the model's stem)."""
    candidates = [p for p in path.parent.glob("*.pt*") if p != path and p.suffix in (".pt", ".pth")
                  and path.name.startswith(p.stem + ".")]
    for candidate in sorted(candidates, key=lambda p: -len(p.name)):
        try:
            payload = read_torch_file(candidate, _MODEL_FIX, mmap=True)
        except InputFileError:
            continue
        if isinstance(payload, dict) and payload.get("format") == FORMAT:
            return candidate
    return None


def _first_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


# --------------------------------------------------------------------------------------------
# Published DeePiCt checkpoints
# --------------------------------------------------------------------------------------------

class _DeepictModelDescriptor:
    """Stand-in for the original ``constants.statistics.ModelDescriptor``: a bag of attributes."""


_DESCRIPTOR_PATH = "constants.statistics.ModelDescriptor"


def _checkpoint_payload(path, mmap: bool = False) -> dict:
    """The content of a file given to import: a DeePiCt checkpoint or one of our 3D models; else refused."""
    checkpoint = read_torch_file(path, _CHECKPOINT_FIX, mmap=mmap)
    if _is_training_state(checkpoint):
        raise _training_state_error(path)
    if isinstance(checkpoint, dict) and checkpoint.get("format") == FORMAT:
        info = _model_info(path, checkpoint)
        if info.kind != KIND_3D:
            raise InputFileError(path, f"is a {info.kind.upper()} model, but a 3D model is needed here",
                                 "Import a DeePiCt 3D checkpoint, or use the 2D model where 2D models go.")
    elif not isinstance(checkpoint, dict) or "model_state_dict" not in checkpoint:
        raise InputFileError(path, "holds no 'model_state_dict': it is not a DeePiCt training checkpoint",
                             _CHECKPOINT_FIX)
    return checkpoint


def model_file_problem(path) -> str | None:
    """Why ``path`` cannot be imported as a 3D model, as one line naming the file and the fix; ``None`` if it can.

    Meant for a Scipion form's validation: the file is read with torch's restricted unpickler and its
    tensors are memory-mapped rather than read, so it is cheap and runs no pickled code. Accepted are
    published DeePiCt 3D checkpoints and deepict_scipion 3D models; the import itself may still refuse a
    checkpoint whose weights do not fit the DeePiCt U-Net, or one given without its voxel size.
    """
    try:
        _checkpoint_payload(path, mmap=True)
    except InputFileError as exc:
        return str(exc)
    return None


def import_published_checkpoint(path, voxel_size: float | None) -> tuple["torch.nn.Module", ModelInfo]:
    """Read a DeePiCt 3D checkpoint (``{model_descriptor, model_state_dict, ...}``) as our network + info.

    The checkpoints carry no voxel size: pass the one the network was trained at (the published
    networks: 13.48 Å, 4x binning of 3.37 Å). One of our 3D model files is returned as it is.
    """
    path = Path(path)
    checkpoint = _checkpoint_payload(path)
    if checkpoint.get("format") == FORMAT:
        network, info = _network_from_payload(path, checkpoint, KIND_3D)
        if voxel_size is not None and voxel_sizes_differ(voxel_size, info.voxel_size):
            raise ParameterError(f"{path} is a model of this program, trained at {info.voxel_size:g} Å: --voxel-size "
                                 f"({voxel_size:g} Å) is for DeePiCt checkpoints (.pth); leave it out")
        return network, info
    if voxel_size is None:
        raise InputFileError(path, "DeePiCt checkpoints do not record the voxel size they were trained at",
                             "Give it (e.g. --voxel-size 13.48 for the published networks, 4x binned 3.37 Å data).")
    if not (math.isfinite(voxel_size) and voxel_size > 0):
        raise ParameterError(f"the voxel size must be a finite number > 0 Å, not {voxel_size:g}")
    try:
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
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InputFileError(path, f"does not describe a DeePiCt 3D U-Net (missing or odd entry: {_first_line(exc)})",
                             _CHECKPOINT_FIX) from None
    info = ModelInfo(
        kind=KIND_3D, classes=classes, architecture=architecture, voxel_size=float(voxel_size),
        patch_size=box, overlap=int(descriptor.get("overlap", 12)), label_kind="imported",
        postprocess={"threshold": 0.5, "min_size": 100, "max_size": None},
        history=[], training={"epochs": descriptor.get("epochs"), "best_epoch": checkpoint.get("epoch"),
                              "final_loss": checkpoint.get("loss"), "loss": descriptor.get("loss", "Dice")},
        # The checkpoints' own model_name is a generic "model_weights": the file name identifies the network.
        source=f"{PUBLISHED_SOURCE_PREFIX} {path.name}")
    network = build_network(info)
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise InputFileError(path, f"its weights do not fit the DeePiCt 3D U-Net layout ({_first_line(exc)})",
                             "Only DeePiCt 3D U-Net checkpoints can be imported.") from None
    return network.eval(), copy.deepcopy(info)
