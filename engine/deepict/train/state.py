"""The resumable state of a training (3D and 2D alike): where it lives, how it is written and read back,
and how a model file says whether its training finished.

* **Name**: a training writing ``OUT`` keeps its full state (network, optimizer, history) in
  ``OUT.last.pt`` after every epoch (``model.pt`` -> ``model.pt.last.pt``). Before, 2D trainings used
  ``OUT-stem.last.pt``; a resume that finds only that name renames it and goes on.
* **Completion**: every model file a training writes records ``training["complete"]``: ``False`` while
  epochs run (the best epoch so far), ``True`` only once the training has finished, including the 3D
  calibration of the minimum cluster size. A killed run therefore never leaves a model that looks finished.
* **Resume** continues after the last finished epoch; a run killed before its first epoch ended left
  no state, and resume says so and starts afresh. With every epoch done it only finishes the training.
* **A finished model is kept**: a training that would start afresh where ``OUT`` holds a finished model is
  refused (:func:`check_fresh_start`), since it writes its best epoch there from its first epoch on, and a run
  stopped early would leave neither the old model nor a new one.
* **Content**: what the shared loop (:mod:`.loop`) records (``epoch``, ``best_dice``, ``best_epoch``,
  ``bad_epochs``, ``history``, ``seconds``, ``state_dict``, ``optimizer``, ``scheduler``) and the entries of
  its kind (3D: ``info``, ``rng``, ``torch_rng``; 2D: ``best_threshold``, ``config``). States written before
  the loop was shared lack some of the loop's entries in 3D; :func:`read_state` fills them in.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from deepict.errors import DeepictError, InputFileError
from deepict.io import atomic_path

STATE_SUFFIX = ".last.pt"
STATE_FORMAT = "deepict_scipion-training-state"
#: 2: the state says whether it is 3D or 2D; 2D states were "deepict_scipion-train2d-checkpoint" version 1.
STATE_VERSION = 2
_LEGACY_FORMATS = {"3d": (STATE_FORMAT, None), "2d": ("deepict_scipion-train2d-checkpoint", 1)}
_FRESH = "Delete it and train again without --resume."


def state_path(out) -> Path:
    """Where the resumable state of a training writing ``out`` lives: ``OUT.last.pt``."""
    return Path(f"{out}{STATE_SUFFIX}")


def _legacy_state_path(out) -> Path:
    """The name 2D trainings used before: ``OUT-stem.last.pt``."""
    out = Path(out)
    return out.with_name(f"{out.stem if out.suffix else out.name}{STATE_SUFFIX}")


def state_to_resume(out, log: Callable[[str], None]) -> Path | None:
    """The state ``--resume`` continues a training writing ``out`` from (``None``: start afresh, said in ``log``)."""
    path, legacy = state_path(out), _legacy_state_path(out)
    if not path.is_file() and legacy != path and legacy.is_file():
        os.replace(legacy, path)
        log(f"renamed the training state {legacy} to {path} (the name every training uses now)")
    if path.is_file():
        return path
    log(f"no training state {path} to resume (a first run, or one stopped before its first epoch ended): "
        "starting a new training")
    return None


def check_fresh_start(out, resume: bool) -> None:
    """Refuse a training that would start afresh into ``out`` (no ``resume``, or no state to resume from) while
    ``out`` holds a finished model; a file that is no model of ours is replaced as any output is."""
    out = Path(out)
    if not out.is_file() or (resume and (state_path(out).is_file() or _legacy_state_path(out).is_file())):
        return
    from deepict.nn.model_files import incomplete_training_warning, read_model_info
    try:
        finished = incomplete_training_warning(read_model_info(out).training) is None
    except DeepictError:
        return
    if finished:
        raise InputFileError(out, "holds a finished model, which a new training would overwrite from its first "
                                  "epoch on (a run stopped early would leave neither)",
                             f"Give another --out, or delete it (and {state_path(out).name}) to train it again; "
                             "to train it for more epochs, rerun its training with --resume and a larger --epochs.")


def write_state(path: Path, kind: str, state: dict) -> None:
    """Write a training state atomically (``kind``: ``3d`` or ``2d``)."""
    import torch
    with atomic_path(path) as tmp:
        torch.save({"format": STATE_FORMAT, "format_version": STATE_VERSION, "kind": kind, **state}, tmp)


def read_state(path: Path, kind: str) -> dict:
    """A training state of a ``kind`` training written by :func:`write_state` (or by the former writers)."""
    from deepict.nn.model_files import read_torch_file
    state = read_torch_file(path, _FRESH)
    if not isinstance(state, dict):
        raise InputFileError(path, "is not a deepict_scipion training state", _FRESH)
    if state.get("format") == STATE_FORMAT and state.get("format_version") == STATE_VERSION:
        if state.get("kind") != kind:
            raise InputFileError(path, f"is the state of a {state.get('kind')} training, not of a {kind} one", _FRESH)
        return _with_loop_entries(state)
    if (state.get("format"), state.get("format_version")) == _LEGACY_FORMATS[kind]:
        return _with_loop_entries(state)
    if state.get("format") == STATE_FORMAT and isinstance(state.get("format_version"), int) \
            and state["format_version"] > STATE_VERSION:
        raise InputFileError(path, "was written by a newer deepict_scipion", "Update the deepict_scipion plugin.")
    raise InputFileError(path, f"is not a deepict_scipion {kind} training state", _FRESH)


def _with_loop_entries(state: dict) -> dict:
    """A state with every entry the shared loop reads: 3D states used to keep the history and the best
    epoch in their ``info`` only, and counted neither the epochs without gain nor the seconds."""
    info = state.get("info") or {}
    state.setdefault("history", info.get("history", []))
    state.setdefault("best_epoch", (info.get("training") or {}).get("best_epoch") or 0)
    state.setdefault("bad_epochs", 0)
    state.setdefault("seconds", 0.0)
    return state
