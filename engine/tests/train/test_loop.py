"""The training loop 2D and 3D share (deepict.train.loop) and the training state it writes (deepict.train.state)."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
import torch

from deepict.errors import InputFileError
from deepict.io import write_volume
from deepict.nn.model_files import (KIND_2D, KIND_3D, ModelInfo, build_network, load_model, read_model_info,
                                    save_model)
from deepict.synthetic import PhantomConfig, make_phantom, write_phantom
from deepict.train import loop
from deepict.train.config import Train2DConfig, TrainConfig
from deepict.train.data3d import load_training_tomograms
from deepict.train.loop import TrainingTask, Validation, resumable_state, run_training
from deepict.nn.model_files import COMPLETE
from deepict.train.state import STATE_FORMAT, STATE_VERSION, read_state, state_path, state_to_resume
from deepict.train.train2d import train_2d
from deepict.train.train3d import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")

VOXEL = 13.48
#: What the loop records in every training state, 2D or 3D.
LOOP_ENTRIES = {"format", "format_version", "kind", "epoch", "best_dice", "best_epoch", "bad_epochs", "history",
                "seconds", "state_dict", "optimizer", "scheduler"}


class ScriptedTask(TrainingTask):
    """A one-weight network whose validation Dice follows a script: the loop's rules without data."""

    kind, unit, final_step = KIND_3D, "batches", "nothing"

    def __init__(self, dice: list, epochs: int, patience: int = 0, warmup_epochs: int = 0):
        self.config = TrainConfig(classes=["x"], epochs=epochs, patience=patience, iterations_per_epoch=1)
        self.dice, self.warmup_epochs, self.units_per_epoch = dice, warmup_epochs, 1
        self.info = ModelInfo(kind=KIND_3D, classes=["x"], architecture={"depth": 1, "initial_features": 1},
                              voxel_size=None, patch_size=2, overlap=0, training={})
        self.network = build_network(self.info)
        self.validations, self.finished = 0, False

    def learning_rate_schedule(self, optimizer):
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=1.0)

    def step_learning_rate(self, schedule, dice, warm):
        schedule.step()

    def batches(self, epoch):
        yield torch.zeros(1, 1, 2, 2, 2), torch.zeros(1, 1, 2, 2, 2), None, 1

    def validate(self):
        self.validations += 1
        return Validation(self.dice[self.validations - 1] if self.dice else None)

    def model_info(self, record):
        self.info.history, self.info.training["best_epoch"] = record.history, record.best_epoch
        return self.info

    def finish(self, network, info, record):
        self.finished = True
        return network, info


def test_early_stopping_counts_only_after_the_warm_up_and_a_resume_knows_it_stopped(tmp_path):
    out, logs = tmp_path / "m.pt", []
    task = ScriptedTask([0.5, 0.4, 0.4, 0.4, 0.4, 0.4], epochs=6, patience=2, warmup_epochs=2)
    info = run_training(task, out, None, logs.append)
    # Epochs 1-2 are warm-up: 3 and 4 are the two without gain, so the training stops after epoch 4.
    assert [h["epoch"] for h in info.history] == [1, 2, 3, 4] and info.training[COMPLETE] is True
    assert info.training["best_epoch"] == 1 and task.finished
    assert "stopping early: no validation improvement for 2 epochs" in logs
    state = read_state(state_path(out), KIND_3D)
    assert LOOP_ENTRIES <= set(state) and state["bad_epochs"] == 2 and state["epoch"] == 4
    assert state["format"] == STATE_FORMAT and state["format_version"] == STATE_VERSION
    logs.clear()
    resumed = run_training(ScriptedTask([], epochs=6, patience=2), out, resumable_state(out, KIND_3D, logs.append),
                           logs.append)
    assert len(resumed.history) == 4
    assert logs == [f"resuming from {state_path(out)} after epoch 4 of 6",
                    "the interrupted training had already stopped early at epoch 4 (patience 2)"]


def test_without_validation_every_epoch_is_kept_and_the_lines_say_n_a(tmp_path):
    logs = []
    info = run_training(ScriptedTask([], epochs=2, patience=1), tmp_path / "m.pt", None, logs.append)
    assert [h["val_dice"] for h in info.history] == [None, None] and info.training["best_epoch"] == 2
    assert [line.split("  ")[0] for line in logs] == ["epoch 1/2", "epoch 2/2"]
    assert all("  val Dice n/a *  lr 0.001  " in line for line in logs), logs


def test_a_resume_without_the_best_model_is_refused(tmp_path):
    out = tmp_path / "m.pt"
    run_training(ScriptedTask([0.5], epochs=1), out, None, lambda line: None)
    out.unlink()
    with pytest.raises(InputFileError, match="best model of the interrupted training is missing"):
        run_training(ScriptedTask([], epochs=2), out, resumable_state(out, KIND_3D, print), print)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_between_the_best_model_and_the_state_waits_until_both_are_written(tmp_path, monkeypatch, signum):
    """Ctrl-C (or a scheduler's SIGTERM) right after the best model is written still leaves the state that
    --resume continues from: the two files are one step."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt(signum)

    def save_then_signal(*args, **kwargs):
        save_model(*args, **kwargs)
        os.kill(os.getpid(), signum)

    monkeypatch.setattr(loop, "save_model", save_then_signal)
    # Both raise, as the CLI's handlers do (a job started in the background of a shell ignores SIGINT).
    previous = {held: signal.signal(held, interrupt) for held in (signal.SIGINT, signal.SIGTERM)}
    try:
        out = tmp_path / "m.pt"
        with pytest.raises(KeyboardInterrupt):
            run_training(ScriptedTask([0.5, 0.6], epochs=2), out, None, lambda line: None)
        assert signal.getsignal(signal.SIGINT) is interrupt and signal.getsignal(signal.SIGTERM) is interrupt
    finally:
        for held, handler in previous.items():
            signal.signal(held, handler)
    assert read_model_info(out).training[COMPLETE] is False
    assert read_state(state_path(out), KIND_3D)["epoch"] == 1


# --------------------------------------------------------------------------------------------
# 2D and 3D trainings resume through the same loop, with the same messages and state entries
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def inputs_2d_3d(tmp_path_factory):
    folder = tmp_path_factory.mktemp("loop")
    phantom = make_phantom(PhantomConfig(shape_zyx=(32, 48, 48), seed=1, n_ribosomes=5, n_fas=1, n_distractors=2,
                                         n_vesicles=1, n_sheets=0))
    files = write_phantom(phantom, folder, "tomo")
    rng = np.random.default_rng(0)
    mask = np.zeros((16, 32, 32), np.int8)
    mask[:, 8:24, 8:24] = 1
    pairs = []
    for i in range(2):
        write_volume(folder / f"t{i}.mrc", (mask + rng.normal(0, 0.5, mask.shape)).astype(np.float32), VOXEL)
        write_volume(folder / f"m{i}.mrc", mask, VOXEL)
        pairs.append((folder / f"t{i}.mrc", folder / f"m{i}.mrc"))
    return files, pairs


def _train_3d(files, out, epochs, resume, log):
    tomograms = load_training_tomograms([files["tomogram"]], coords=[[files["ribosome"]]], radii=[4.0])
    config = TrainConfig(classes=["ribosome"], depth=1, initial_features=2, patch_size=16, batch_size=1,
                         epochs=epochs, iterations_per_epoch=1, device="cpu", sphere_radius={"ribosome": 4.0},
                         val_fraction=0.34)
    return train(tomograms, config, out, resume=resume, log=log)


def _train_2d(pairs, out, epochs, resume, log):
    config = Train2DConfig(class_name="box", epochs=epochs, tiles_per_epoch=4, patience=0, tile_size=16,
                           z_stride=4, batch_size=4, depth=2, initial_features=2, crop=4, seed=1, device="cpu",
                           val_slices=2)
    return train_2d([t for t, _ in pairs], [m for _, m in pairs], out, config, resume=resume, log=log,
                    device=torch.device("cpu"))


@pytest.mark.parametrize("kind", [KIND_3D, KIND_2D])
def test_2d_and_3d_trainings_resume_through_the_same_loop(inputs_2d_3d, tmp_path, monkeypatch, kind):
    files, pairs = inputs_2d_3d
    run = (lambda *a: _train_3d(files, *a)) if kind == KIND_3D else (lambda *a: _train_2d(pairs, *a))
    epochs_run = []
    real_epoch = loop._train_epoch

    def counted_epoch(task, *args):
        epochs_run.append((task.kind, args[-2]))
        return real_epoch(task, *args)

    monkeypatch.setattr(loop, "_train_epoch", counted_epoch)
    out, logs = tmp_path / "model.pt", []
    first = run(out, 1, False, logs.append)
    assert isinstance(first, ModelInfo) and first.kind == kind and first.training[COMPLETE] is True
    state = torch.load(state_path(out), map_location="cpu", weights_only=True)
    assert LOOP_ENTRIES <= set(state) and state["kind"] == kind and state["epoch"] == 1
    logs.clear()
    second = run(out, 2, True, logs.append)
    assert epochs_run == [(kind, 1), (kind, 2)]
    assert f"resuming from {state_path(out)} after epoch 1 of 2" in logs
    assert [line.split("  ")[0] for line in logs if line.startswith("epoch ") and "ETA" in line] == ["epoch 2/2"]
    assert [h["epoch"] for h in second.history] == [1, 2] == [h["epoch"] for h in read_model_info(out).history]
    assert second.training[COMPLETE] is True


@pytest.mark.parametrize("kind", [KIND_3D, KIND_2D])
def test_a_fresh_training_never_overwrites_a_finished_model(inputs_2d_3d, tmp_path, kind):
    """Both trainings refuse to start afresh into a finished model, before any epoch; an unfinished one (a run
    stopped early) is trained afresh as asked."""
    files, pairs = inputs_2d_3d
    run = (lambda *a: _train_3d(files, *a)) if kind == KIND_3D else (lambda *a: _train_2d(pairs, *a))
    out = tmp_path / "model.pt"
    run(out, 1, False, lambda line: None)
    finished = out.read_bytes()
    for resume in (False, True):
        if resume:
            state_path(out).unlink()  # nothing to resume: it would start afresh
        with pytest.raises(InputFileError, match="holds a finished model"):
            run(out, 1, resume, lambda line: None)
        assert out.read_bytes() == finished
    network, info = load_model(out)
    info.training[COMPLETE] = False
    save_model(out, network, info)
    assert run(out, 1, False, lambda line: None).training[COMPLETE] is True


def test_an_old_named_unversioned_2d_state_is_still_found_and_resumed(inputs_2d_3d, tmp_path):
    _, pairs = inputs_2d_3d
    out = tmp_path / "cytosol.pt"
    _train_2d(pairs, out, 1, False, lambda line: None)
    # The state as 2D trainings wrote it before: OUT-stem.last.pt, format "train2d-checkpoint" version 1.
    state = torch.load(state_path(out), map_location="cpu", weights_only=True)
    state.update(format="deepict_scipion-train2d-checkpoint", format_version=1)
    del state["kind"]
    old_name = tmp_path / "cytosol.last.pt"
    torch.save(state, old_name)
    state_path(out).unlink()
    logs = []
    assert state_to_resume(out, logs.append) == state_path(out) and not old_name.exists()
    assert logs == [f"renamed the training state {old_name} to {state_path(out)} (the name every training uses now)"]
    info = _train_2d(pairs, out, 2, True, logs.append)
    assert [h["epoch"] for h in info.history] == [1, 2]
    assert any(line.startswith(f"resuming from {state_path(out)} after epoch 1 of 2") for line in logs)


def test_a_3d_state_written_before_the_shared_loop_gets_the_loop_entries(tmp_path):
    history = [{"epoch": 1, "loss": 0.5, "val_dice": 0.2, "seconds": 1.0, "lr": 1e-3},
               {"epoch": 2, "loss": 0.4, "val_dice": 0.1, "seconds": 1.0, "lr": 1e-3}]
    path = tmp_path / "m.pt.last.pt"
    torch.save({"format": STATE_FORMAT, "info": {"history": history, "training": {"best_epoch": 1}}, "epoch": 2,
                "best_dice": 0.2, "state_dict": {}, "optimizer": {}, "scheduler": {}}, path)
    state = read_state(path, KIND_3D)
    assert state["history"] == history and state["best_epoch"] == 1
    assert state["bad_epochs"] == 0 and state["seconds"] == 0.0
