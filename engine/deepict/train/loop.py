"""The training loop 2D and 3D trainings share: epochs, validation, checkpoints, resume, early stopping.

A training supplies a :class:`TrainingTask` (its data sampling, augmentation, network, learning-rate
schedule, validation metric and what happens after the last epoch); :func:`run_training` does the rest:

* **Epochs** of optimiser steps (Adam at ``config.learning_rate``) on the task's batches, with a progress
  line when an epoch is long, and one line per epoch (loss, validation Dice, best epoch, rate, seconds, ETA).
  The forward passes run in the process's precision (:mod:`deepict.nn.precision`: bf16 or fp16 autocast
  where the hardware is fast at it, fp16 with loss scaling); the weights, the optimiser and every file
  written stay fp32.
* **Checkpoints** — whenever the validation Dice improves (by more than the task's ``min_gain``; every
  epoch without validation data), the network is written to ``OUT``, marked unfinished; after every epoch
  the full state goes to ``OUT.last.pt`` (:mod:`.state`), both atomically and, against Ctrl-C and SIGTERM,
  together (:func:`deepict.signals.interrupts_held`).
* **Early stopping** after ``config.patience`` epochs without improvement (0: never), counted only after the
  task's ``warmup_epochs``; the task's learning-rate schedule is told whether the epoch was a warm-up one.
* **Resume** continues after the last finished epoch of the state (:func:`resumable_state`); with every epoch
  done it only runs what follows them.
* **The end** — the best network is read back, the task finishes it (3D: the weight average may replace it;
  calibration, final record) and it is written marked complete; that
  :class:`~deepict.nn.model_files.ModelInfo` is the training's result.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import torch

from deepict.errors import InputFileError, ParameterError
from deepict.nn.losses import get_loss
from deepict.nn.model_files import COMPLETE, ModelInfo, load_model, save_model
from deepict.nn.precision import Precision, current_precision
from deepict.progress import Progress, format_duration
from deepict.signals import interrupts_held, note_kept
from deepict.train.state import read_state, state_path, state_to_resume, write_state


@dataclass
class Validation:
    """One epoch's validation: the Dice (``None`` without validation data) and what else the task measured."""

    dice: float | None
    details: dict = field(default_factory=dict)  # extra history entries, e.g. the 2D threshold
    note: str = ""  # said after the Dice on the epoch line


@dataclass
class Record:
    """Where a training stands: what the state file keeps besides the network, optimiser and schedule."""

    epoch: int = 0
    best_dice: float = -1.0
    best_epoch: int = 0
    bad_epochs: int = 0
    history: list = field(default_factory=list)
    seconds: float = 0.0
    stopped_early: bool = False

    @classmethod
    def from_state(cls, state: dict) -> "Record":
        return cls(int(state["epoch"]), float(state["best_dice"]), int(state["best_epoch"]),
                   int(state["bad_epochs"]), list(state["history"]), float(state["seconds"]))

    def state(self) -> dict:
        return {"epoch": self.epoch, "best_dice": self.best_dice, "best_epoch": self.best_epoch,
                "bad_epochs": self.bad_epochs, "history": self.history, "seconds": self.seconds}


class TrainingTask:
    """What a 2D or 3D training brings to :func:`run_training`; subclasses set the attributes in ``__init__``."""

    kind: str                 # the model kind, also the kind of its training state
    config: object            # epochs, patience, learning_rate and loss are read from it
    network: torch.nn.Module  # on its device, initialised
    unit: str                 # what an epoch's progress counts ("batches", "tiles")
    units_per_epoch: int
    warmup_epochs: int = 0    # epochs in which neither early stopping nor the schedule's cuts act
    min_gain: float = 0.0     # a validation Dice must beat the best by more than this to count as better
    final_step: str           # what runs after the last epoch, as said on a resume with every epoch done

    def learning_rate_schedule(self, optimizer) -> torch.optim.lr_scheduler.LRScheduler:
        raise NotImplementedError

    def step_learning_rate(self, schedule, dice: float | None, warm: bool) -> None:
        raise NotImplementedError

    def batches(self, epoch: int) -> Iterator[tuple]:
        """The epoch's (inputs, targets, loss weights or None, units) tensors, on the network's device."""
        raise NotImplementedError

    def validate(self) -> Validation:
        raise NotImplementedError

    def epoch_done(self, epoch: int) -> None:
        """Called after each epoch's validation (e.g. to add the weights to a running average)."""

    def model_info(self, record: Record) -> ModelInfo:
        """The description written with the best network so far (marked unfinished by the loop)."""
        raise NotImplementedError

    def state(self, record: Record) -> dict:
        """The task's own entries of the training state."""
        return {}

    def restore(self, state: dict, path: Path) -> None:
        """Take back the task's entries of a state, or refuse a state of another training (naming ``path``)."""

    def finish(self, network: torch.nn.Module, info: ModelInfo, record: Record) -> tuple:
        """The final network and its description, from the best network (read back from ``OUT``) once the
        epochs are over."""
        return network, info


def resumable_state(out, kind: str, log: Callable[[str], None]) -> dict | None:
    """The training state ``--resume`` continues from (``None``: there is none, start afresh)."""
    path = state_to_resume(out, log)
    return read_state(path, kind) if path else None


def run_training(task: TrainingTask, out, resumed: dict | None, log: Callable[[str], None]) -> ModelInfo:
    """Train ``task`` (continuing ``resumed``, a :func:`resumable_state`), keep the best network in ``out``."""
    config, out = task.config, Path(out)
    path = state_path(out)
    optimizer = torch.optim.Adam(task.network.parameters(), lr=config.learning_rate)
    schedule = task.learning_rate_schedule(optimizer)
    record = Record()
    if resumed is not None:
        task.restore(resumed, path)
        if not out.is_file():
            raise InputFileError(out, "the best model of the interrupted training is missing",
                                 "Train again without --resume.")
        task.network.load_state_dict(resumed["state_dict"])
        optimizer.load_state_dict(resumed["optimizer"])
        if resumed.get("scheduler"):
            schedule.load_state_dict(resumed["scheduler"])
        record = Record.from_state(resumed)
        log(f"resuming from {path} after epoch {record.epoch} of {config.epochs}"
            + (f": every epoch is done, only {task.final_step} runs" if record.epoch >= config.epochs else ""))
    record.stopped_early = _patience_spent(config, record)
    if record.stopped_early:
        log(f"the interrupted training had already stopped early at epoch {record.epoch} "
            f"(patience {config.patience})")
    previous_seconds, started = record.seconds, time.time()
    try:
        return _train_and_finish(task, out, record, optimizer, schedule, previous_seconds, started, log)
    except (KeyboardInterrupt, SystemError) as exc:
        if state_path(out).is_file() and out.is_file() and record.epoch > 0:
            note_kept(exc, f"{out} holds the best epoch so far ({record.epoch} of {config.epochs} done), marked "
                           "unfinished: run the same command with --resume to go on")
        raise


def _train_and_finish(task: TrainingTask, out: Path, record: Record, optimizer, schedule, previous_seconds: float,
                      started: float, log: Callable[[str], None]) -> ModelInfo:
    """The epochs after ``record``'s, then the task's finish; the best network written to ``out`` as it goes."""
    config, path = task.config, state_path(out)
    loss_fn = get_loss(config.loss)
    precision = current_precision(next(task.network.parameters()).device)
    scaler = precision.grad_scaler()
    epoch_seconds = []
    while record.epoch < config.epochs and not record.stopped_early:
        epoch, tick = record.epoch + 1, time.time()
        learning_rate = optimizer.param_groups[0]["lr"]  # the rate used in this epoch
        loss = _train_epoch(task, optimizer, scaler, precision, loss_fn, epoch, log)
        validation = task.validate()
        task.epoch_done(epoch)
        warm = epoch <= task.warmup_epochs
        task.step_learning_rate(schedule, validation.dice, warm)
        seconds = time.time() - tick
        epoch_seconds.append(seconds)
        record.epoch = epoch
        record.history.append({"epoch": epoch, "loss": round(loss, 6),
                               "val_dice": None if validation.dice is None else round(validation.dice, 6),
                               **validation.details, "lr": learning_rate, "seconds": round(seconds, 2)})
        improved = validation.dice is None or validation.dice > record.best_dice + task.min_gain
        if improved:
            record.best_dice = record.best_dice if validation.dice is None else validation.dice
            record.best_epoch, record.bad_epochs = epoch, 0
        elif not warm:
            record.bad_epochs += 1
        record.seconds = previous_seconds + (time.time() - started)
        with interrupts_held():  # the best model and the state to resume from land together
            if improved:
                info = task.model_info(record)
                info.training[COMPLETE] = False
                save_model(out, task.network, info)
            write_state(path, task.kind, {**record.state(), **task.state(record),
                                          "optimizer": optimizer.state_dict(), "scheduler": schedule.state_dict(),
                                          "state_dict": _cpu_state(task.network)})
        eta = sum(epoch_seconds) / len(epoch_seconds) * (config.epochs - epoch)
        log(_epoch_line(config.epochs, loss, validation, improved, record, learning_rate, seconds, eta))
        if _patience_spent(config, record) and epoch < config.epochs:
            record.stopped_early = True
            log(f"stopping early: no validation improvement for {config.patience} epochs")

    if not out.is_file():
        raise ParameterError("training produced no model (no epoch finished)")
    record.seconds = previous_seconds + (time.time() - started)
    network, info = load_model(out, kind=task.kind)
    # The best model file carries the whole history, not only the epochs up to the best one.
    info.history = record.history
    network, info = task.finish(network, info, record)
    info.training[COMPLETE] = True
    save_model(out, network, info)
    return info


def _patience_spent(config, record: Record) -> bool:
    return config.patience > 0 and record.bad_epochs >= config.patience


def _train_epoch(task: TrainingTask, optimizer, scaler: torch.amp.GradScaler, precision: Precision, loss_fn,
                 epoch: int, log) -> float:
    """One epoch of optimiser steps; the mean loss per unit (computed in fp32 whatever the precision)."""
    task.network.train()
    # Silent unless the epoch takes longer than a progress interval.
    progress = Progress(f"epoch {epoch}/{task.config.epochs}", task.units_per_epoch, task.unit, log,
                        first_line=False)
    total, units = 0.0, 0
    for inputs, targets, weights, count in task.batches(epoch):
        optimizer.zero_grad(set_to_none=True)
        with precision.autocast():
            outputs = task.network(inputs)
        loss = loss_fn(outputs.float(), targets, weights)
        if not torch.isfinite(loss):
            raise ParameterError(f"the training loss became {float(loss)} in epoch {epoch}: lower the learning "
                                 f"rate (now {task.config.learning_rate:g}) and train again (or --resume)")
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        total, units = total + float(loss.detach()) * count, units + count
        progress.advance(count)
    return total / max(units, 1)


def _cpu_state(network: torch.nn.Module) -> dict:
    return {name: value.detach().cpu().clone() for name, value in network.state_dict().items()}


def _epoch_line(epochs: int, loss: float, validation: Validation, improved: bool, record: Record,
                learning_rate: float, seconds: float, eta: float) -> str:
    if validation.dice is None:
        dice, best = "n/a", ""
    else:
        dice, best = f"{validation.dice:.4f}", f" best {record.best_dice:.4f} @ epoch {record.best_epoch}"
    return (f"epoch {record.epoch}/{epochs}  loss {loss:.4f}  val Dice {dice}{validation.note}"
            f"{' *' if improved else '  '}{best}  lr {learning_rate:.2g}  {seconds:.1f} s  "
            f"ETA {format_duration(eta)}")
