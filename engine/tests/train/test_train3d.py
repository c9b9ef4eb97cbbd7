"""Tests of 3D training (deepict.train.train3d, labels, and the train3d input checks): tiny and fast."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from deepict.train import train3d
from deepict.cli.main import main
from deepict.train.data3d import load_training_tomograms
from deepict.errors import DeepictError, InputFileError, ParameterError
from deepict.io import CoordinateTable, write_coordinates, write_volume
from deepict.train.labels import paint_spheres, sphere_offsets, sphere_targets
from deepict.nn.model_files import KIND_3D, LABEL_SHARE, load_model, read_model_info
from deepict.synthetic import PhantomConfig, make_phantom, write_phantom
from deepict.train.train3d import TrainConfig, as_if_coarser, augment, train
from deepict.train.config import DEFAULT_EPOCHS, RARE_PARTICLE_EPOCHS, RARE_PARTICLES_PER_TOMOGRAM, default_epochs
from deepict.cli.model_info import describe
from deepict.nn.model_files import COMPLETE

pytestmark = pytest.mark.usefixtures("one_torch_thread")

VOXEL = 13.48
SHAPE = (32, 48, 48)


@pytest.fixture(scope="module")
def phantom_files(tmp_path_factory):
    phantom = make_phantom(PhantomConfig(shape_zyx=SHAPE, seed=1, n_ribosomes=5, n_fas=1, n_distractors=2,
                                         n_vesicles=1, n_sheets=0))
    assert len(phantom.coords["ribosome"]) >= 2
    return write_phantom(phantom, tmp_path_factory.mktemp("phantom"), "tomo")


def tiny_config(**changes) -> TrainConfig:
    values = dict(classes=["ribosome"], depth=1, initial_features=2, patch_size=16, batch_size=2, epochs=2,
                  iterations_per_epoch=2, device="cpu", sphere_radius={"ribosome": 4.0}, val_fraction=0.34)
    values.update(changes)
    return TrainConfig(**values)


# --------------------------------------------------------------------------------------------
# Training and resuming
# --------------------------------------------------------------------------------------------

def test_validation_and_the_averaged_model_report_progress(phantom_files, tmp_path, monkeypatch):
    """Validating each epoch and making the averaged model took 15-56 s without a line on one CPU thread: each now
    reports through Progress (here a line per unit, so that the tiny training shows them)."""
    from deepict.progress import Progress

    class EveryUnit(Progress):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **dict(kwargs, every=0.0))

    monkeypatch.setattr(train3d, "Progress", EveryUnit)
    tomograms = load_training_tomograms([phantom_files["tomogram"]], coords=[[phantom_files["ribosome"]]],
                                        radii=[4.0])
    messages = []
    train(tomograms, tiny_config(), tmp_path / "ribo.pt", log=messages.append)
    for label in ("validation", "batch-norm statistics of the averaged model", "validating the averaged model"):
        assert any(m.startswith(f"{label}: ") and "%" in m for m in messages), (label, messages)


def test_tiny_training_writes_model_and_state_then_resumes(phantom_files, tmp_path):
    tomograms = load_training_tomograms([phantom_files["tomogram"]], coords=[[phantom_files["ribosome"]]],
                                        radii=[4.0])
    assert tomograms[0].voxel_size == pytest.approx(VOXEL) and tomograms[0].targets.shape == (1,) + SHAPE
    out = tmp_path / "ribo.pt"
    messages = []
    info = train(tomograms, tiny_config(), out, log=messages.append)
    assert out.is_file() and (tmp_path / "ribo.pt.last.pt").is_file()
    assert not list(tmp_path.glob("*.part"))
    assert [h["epoch"] for h in info.history] == [1, 2]
    assert all(math.isfinite(h["loss"]) for h in info.history)
    assert all(h["val_dice"] is not None for h in info.history)  # the high-x slab is validation
    assert any("minimum cluster size" in m for m in messages)  # calibrated there, or said why not
    assert messages[0].startswith("preparing the training tomograms: 1/1 tomograms (100%)")
    network, saved = load_model(out, kind=KIND_3D)
    assert saved.training[COMPLETE] is True
    assert saved.classes == ["ribosome"] and saved.voxel_size == pytest.approx(VOXEL)
    assert saved.sphere_radius == {"ribosome": 4.0} and len(saved.history) == 2
    assert saved.architecture["depth"] == 1 and saved.architecture["initial_features"] == 2
    state = torch.load(tmp_path / "ribo.pt.last.pt", map_location="cpu", weights_only=True)
    assert state["epoch"] == 2

    # Raise the epoch count and resume: the history continues from epoch 3.
    lrs_before = [h["lr"] for h in info.history]
    resumed = train(tomograms, tiny_config(epochs=4), out, resume=True, log=messages.append)
    assert any("resuming" in m for m in messages)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3, 4]
    assert [h["lr"] for h in resumed.history[:2]] == lrs_before
    # The learning rate keeps decreasing after the resume (no warm restart of the schedule).
    lrs = [h["lr"] for h in resumed.history]
    assert lrs[0] == pytest.approx(1e-3)  # the rate used in epoch 1
    assert all(b <= a + 1e-12 for a, b in zip(lrs, lrs[1:])), lrs
    assert len(load_model(out)[1].history) == 4
    assert torch.load(tmp_path / "ribo.pt.last.pt", map_location="cpu", weights_only=True)["epoch"] == 4

    # Other box sampling or loss in the second half of a training: refused, naming what changed (it went on).
    with pytest.raises(InputFileError, match=r"other settings than this run's: positive_fraction 0\.7 \(now 0\.9\)"):
        train(tomograms, tiny_config(epochs=6, positive_fraction=0.9), out, resume=True, log=messages.append)
    # The weights are averaged over the second half of the resumed run's 4 epochs, not from epoch 2 of the first.
    assert resumed.training["weight_average"]["first_epoch"] == 3
    assert resumed.training["weight_average"]["last_epoch"] == 4
    assert any(m.startswith("the model is the mean of the weights of epochs 3-4, its batch-norm statistics "
                            "estimated anew: validation Dice") for m in messages)

    # A damaged state file, or one for another architecture, is refused with the state file's name.
    (tmp_path / "broken.pt.last.pt").write_bytes(b"hello")
    with pytest.raises(InputFileError, match="broken.pt.last.pt"):
        train(tomograms, tiny_config(), tmp_path / "broken.pt", resume=True, log=messages.append)
    with pytest.raises(InputFileError, match="ribo.pt.last.pt"):
        train(tomograms, tiny_config(epochs=5, initial_features=4), out, resume=True, log=messages.append)


def test_a_run_killed_in_the_calibration_leaves_a_model_marked_unfinished(phantom_files, tmp_path, monkeypatch,
                                                                           capsys):
    tomograms = load_training_tomograms([phantom_files["tomogram"]], coords=[[phantom_files["ribosome"]]],
                                        radii=[4.0])
    out, messages = tmp_path / "ribo.pt", []
    # A resume without a state says that it starts afresh (a run killed in epoch 1 leaves none).
    real_calibration = train3d.calibrate_postprocess

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train3d, "calibrate_postprocess", killed)
    with pytest.raises(KeyboardInterrupt):
        train(tomograms, tiny_config(), out, resume=True, log=messages.append)
    assert any("no training state" in m and "starting a new training" in m for m in messages)
    assert read_model_info(out).training[COMPLETE] is False
    # Picking with it says so.
    assert main(["pick", "--model", str(out), "--tomogram", phantom_files["tomogram"], "--out",
                 str(tmp_path / "picks.csv"), "--window", "16", "--margin", "4", "--device", "cpu"]) == 0
    assert "did not finish" in capsys.readouterr().out
    # Resuming only runs what was left: the calibration.
    monkeypatch.setattr(train3d, "calibrate_postprocess", real_calibration)
    messages.clear()
    info = train(tomograms, tiny_config(), out, resume=True, log=messages.append)
    assert any("every epoch is done, only the final calibration runs" in m for m in messages)
    assert not any(m.startswith("epoch ") for m in messages) and len(info.history) == 2
    assert read_model_info(out).training[COMPLETE] is True


def test_a_training_resumed_with_averaging_switched_off_keeps_its_best_epoch(phantom_files, tmp_path, monkeypatch):
    tomograms = load_training_tomograms([phantom_files["tomogram"]], coords=[[phantom_files["ribosome"]]],
                                        radii=[4.0])
    out = tmp_path / "ribo.pt"

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:  # every epoch done, the state holds an average, the run dies
        patch.setattr(train3d, "calibrate_postprocess", killed)
        with pytest.raises(KeyboardInterrupt):
            train(tomograms, tiny_config(epochs=4), out, log=lambda m: None)
    state = torch.load(tmp_path / "ribo.pt.last.pt", map_location="cpu", weights_only=True)
    assert state["weight_average"]["count"] == 2
    best = load_model(out)[0].state_dict()
    info = train(tomograms, tiny_config(epochs=4, weight_averaging=False), out, resume=True, log=lambda m: None)
    assert "weight_average" not in info.training
    assert all(torch.equal(v, load_model(out)[0].state_dict()[k]) for k, v in best.items())


def test_a_finished_averaged_training_resumed_with_averaging_off_says_its_best_epoch_is_gone(phantom_files, tmp_path):
    tomograms = load_training_tomograms([phantom_files["tomogram"]], coords=[[phantom_files["ribosome"]]],
                                        radii=[4.0])
    out, messages = tmp_path / "ribo.pt", []
    train(tomograms, tiny_config(epochs=4), out, log=lambda m: None)
    averaged = load_model(out)[0].state_dict()
    info = train(tomograms, tiny_config(epochs=4, weight_averaging=False), out, resume=True, log=messages.append)
    # The model is still the average, and says so; the log says why the best epoch cannot come back.
    assert info.training["weight_average"]["first_epoch"] == 3
    assert all(torch.equal(v, load_model(out)[0].state_dict()[k]) for k, v in averaged.items())
    said = "the finished training's model stays the mean of the weights of epochs 3-4"
    assert any(m.startswith(said) and "train again, not resumed, without weight averaging" in m for m in messages)


def test_the_model_is_the_weight_average_or_with_it_off_the_best_epoch(phantom_files, tmp_path):
    tomograms = load_training_tomograms([phantom_files["tomogram"]], coords=[[phantom_files["ribosome"]]],
                                        radii=[4.0])
    averaged = train(tomograms, tiny_config(epochs=4), tmp_path / "averaged.pt", log=lambda m: None)
    assert averaged.training["weight_average"]["first_epoch"] == 3
    assert averaged.training["weight_averaging"] is True
    messages = []
    best = train(tomograms, tiny_config(epochs=4, weight_averaging=False), tmp_path / "best.pt", log=messages.append)
    assert "weight_average" not in best.training
    assert not any("mean of the weights" in m for m in messages)
    # The same seed trains the same epochs: only the final choice differs.
    assert [h["loss"] for h in best.history] == [h["loss"] for h in averaged.history]
    state = torch.load(tmp_path / "best.pt.last.pt", map_location="cpu", weights_only=True)
    best_network, averaged_network = load_model(tmp_path / "best.pt")[0], load_model(tmp_path / "averaged.pt")[0]
    if best.training["best_epoch"] == 4:  # the best epoch is the last one, whose weights the state holds
        assert all(torch.equal(v, state["state_dict"][k]) for k, v in best_network.state_dict().items())
    differs = [not torch.equal(v, averaged_network.state_dict()[k]) for k, v in best_network.state_dict().items()
               if v.is_floating_point()]
    assert any(differs)


def test_a_training_mines_hard_negatives_keeps_them_in_its_state_and_a_resume_restores_them(phantom_files, tmp_path,
                                                                                          monkeypatch):
    tomograms = load_training_tomograms([phantom_files["tomogram"]], coords=[[phantom_files["ribosome"]]],
                                        radii=[4.0])
    point = [[10, 20, 12]]
    calls = []

    def found(network, tomograms, stats, widths, min_voxels, device, log):
        calls.append((widths, min_voxels))
        return [np.array(point)]

    monkeypatch.setattr(train3d, "find_hard_negatives", found)
    messages = []
    out = tmp_path / "m.pt"
    train(tomograms, tiny_config(epochs=4), out, log=messages.append)
    # After epochs 1, 2 and 3 of 4, in the training part (the high-x third is validation), for clusters an
    # uncalibrated pick reports (half a training sphere).
    assert len(calls) == 3 and calls[0] == ([32], 134)
    assert sum("hard negatives (clusters the network predicts outside every label)" in m for m in messages) == 3
    # Partial annotations turn hard negatives against real particles: the log says so once.
    assert sum("assume that every particle is annotated" in m for m in messages) == 1
    state = torch.load(tmp_path / "m.pt.last.pt", map_location="cpu", weights_only=True)
    assert state["hard_negatives"] == [point]

    # Resumed to 6 epochs, it mines at epochs 2, 3 and 4 (done already): it goes on with the restored ones.
    calls.clear()
    train(tomograms, tiny_config(epochs=6), out, resume=True, log=messages.append)
    assert not calls
    assert torch.load(tmp_path / "m.pt.last.pt", map_location="cpu", weights_only=True)["hard_negatives"] == [point]

    # Switched off, or a structure-mask training: never predicted.
    train(tomograms, tiny_config(epochs=4, hard_negatives=False), tmp_path / "off.pt", log=messages.append)
    train(tomograms, tiny_config(epochs=4, label_kind="masks"), tmp_path / "masks.pt", log=messages.append)
    assert not calls


def test_training_without_validation_slab_and_tomogram_smaller_than_a_patch(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.normal(size=(10, 20, 12)).astype(np.float32)
    write_volume(tmp_path / "small.mrc", data, VOXEL)
    write_coordinates(tmp_path / "small.csv", CoordinateTable([[5, 10, 4]], {}, VOXEL))
    tomograms = load_training_tomograms([tmp_path / "small.mrc"], coords=[[tmp_path / "small.csv"]], radii=[3.0])
    info = train(tomograms, tiny_config(epochs=1, val_fraction=0.0), tmp_path / "m.pt", log=lambda m: None)
    assert len(info.history) == 1 and info.history[0]["val_dice"] is None
    # what the labels covered of the tomogram (unpadded): the yardstick of a segmentation that fills the map
    sphere = np.count_nonzero(tomograms[0].targets[0])
    assert 100 < sphere < 130 and info.training[LABEL_SHARE] == {"ribosome": sphere / data.size}
    assert (tmp_path / "m.pt").is_file()


@pytest.mark.parametrize("particles, epochs",
                         [(3, RARE_PARTICLE_EPOCHS), (RARE_PARTICLES_PER_TOMOGRAM, DEFAULT_EPOCHS)])
def test_epochs_left_unset_are_twice_the_default_for_a_rare_particle(tmp_path, particles, epochs):
    # FAS (about 25 per tomogram) picked better after 80 epochs, ribosomes (about 120) did not: a training given
    # no --epochs chooses by the annotated particles per tomogram, says so, and records what it ran.
    rng = np.random.default_rng(0)
    write_volume(tmp_path / "t.mrc", rng.normal(size=(16, 16, 16)).astype(np.float32), VOXEL)
    write_coordinates(tmp_path / "t.csv", CoordinateTable(rng.uniform(2, 13, (particles, 3)), {}, VOXEL))
    tomograms = load_training_tomograms([tmp_path / "t.mrc"], coords=[[tmp_path / "t.csv"]], radii=[2.0])
    assert tomograms[0].particle_counts == (particles,)
    messages = []
    info = train(tomograms, tiny_config(epochs=None, iterations_per_epoch=1, val_fraction=0.0, hard_negatives=False,
                                        sphere_radius={"ribosome": 2.0}), tmp_path / "m.pt", log=messages.append)
    assert len(info.history) == epochs and info.training["epochs"] == epochs
    assert any(m.startswith(f"{epochs} epochs ") and "give --epochs to choose" in m for m in messages)
    assert describe(tmp_path / "m.pt")["epochs"] == epochs


def test_the_rarest_class_sets_the_default_epochs_and_masks_train_the_default():
    assert default_epochs({"ribosome": 120.0, "fas": 25.0})[0] == RARE_PARTICLE_EPOCHS
    assert "fas 25" in default_epochs({"ribosome": 120.0, "fas": 25.0})[1]
    assert default_epochs({"ribosome": 120.0})[0] == DEFAULT_EPOCHS
    assert default_epochs({})[0] == DEFAULT_EPOCHS  # structure masks: no particle count


def test_training_config_is_validated():
    with pytest.raises(ParameterError, match="divisible"):
        tiny_config(depth=3, patch_size=20).validate()
    with pytest.raises(ParameterError):
        tiny_config(epochs=0).validate()
    with pytest.raises(ParameterError, match="loss"):
        tiny_config(loss="focal").validate()


# --------------------------------------------------------------------------------------------
# Augmentation
# --------------------------------------------------------------------------------------------

def test_augmentation_changes_the_patch_but_keeps_labels_aligned():
    rng = np.random.default_rng(0)
    # Values far from 0 so that the intensity jitter (gain, offset, noise) cannot change their sign.
    image = np.where(rng.random((12, 16, 16)) < 0.3, 2.0, -2.0).astype(np.float32)
    label = np.stack([image > 0, image < 0]).astype(np.float32)  # two classes
    changed = 0
    for seed in range(12):
        new_image, new_label = augment(image, label, np.random.default_rng(seed))
        assert new_image.shape == image.shape and new_label.shape == label.shape
        assert new_image.dtype == np.float32 and new_image.flags.c_contiguous and new_label.flags.c_contiguous
        np.testing.assert_array_equal(new_label[0], new_image > 0)
        np.testing.assert_array_equal(new_label[1], new_image < 0)
        assert new_label.sum() == label.sum()  # a permutation of the voxels
        assert not np.array_equal(new_image, image)  # intensities always change
        changed += not np.array_equal(new_label, label)
    assert changed >= 8  # geometric transforms almost always move the voxels


def test_augmentation_keeps_z_and_only_rotates_in_plane():
    image = np.zeros((8, 10, 10), np.float32)
    image[1, 2, 3] = 5.0
    label = (image > 0)[None].astype(np.uint8)
    for seed in range(20):
        new_image, new_label = augment(image, label, np.random.default_rng(seed))
        z, y, x = np.argwhere(new_label[0])[0]
        assert z in (1, 6)  # z flipped or not, never swapped with y or x
        assert {y, x} <= {2, 3, 6, 7}


def test_as_if_coarser_removes_what_a_coarser_grid_cannot_hold_and_keeps_the_contrast():
    rng = np.random.default_rng(3)
    image = rng.normal(0, 1, (24, 24, 24)).astype(np.float32)
    low = as_if_coarser(image, 2.0)
    spectrum = np.abs(np.fft.fftn(low))
    frequency = np.abs(np.fft.fftfreq(24))
    beyond = (frequency[:, None, None] > 0.25) | (frequency[None, :, None] > 0.25) | (frequency[None, None, :] > 0.25)
    assert spectrum[beyond].max() < 1e-3 * spectrum.max()  # nothing beyond the 2x-coarser Nyquist
    assert low.std() == pytest.approx(image.std(), rel=1e-4)  # z-scored as a rescaled tomogram is
    assert low.dtype == np.float32
    np.testing.assert_allclose(as_if_coarser(image, 1.0), image, atol=1e-5)  # factor 1: nothing lost


def test_augmentation_low_passes_some_boxes_only_when_asked():
    image = np.random.default_rng(0).normal(0, 1, (16, 16, 16)).astype(np.float32)
    label = np.zeros((1, 16, 16, 16), np.float32)

    def smoothness(picture):  # mean squared difference of neighbours: falls when high frequencies go
        return float(np.mean(np.diff(picture, axis=2) ** 2))

    plain = [smoothness(augment(image, label, np.random.default_rng(s))[0]) for s in range(20)]
    coarse = [smoothness(augment(image, label, np.random.default_rng(s), 3.0)[0]) for s in range(20)]
    assert min(plain) > 1.2  # white noise stays rough (gain 0.85 at worst)
    assert 5 <= sum(value < 1.0 for value in coarse) <= 15  # about half of the boxes low-passed


# --------------------------------------------------------------------------------------------
# Sphere labels
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("radius", [1.0, 2.5, 4.0, 8.0])
def test_paint_spheres_matches_the_analytic_ball(radius):
    size = 2 * int(radius) + 5
    target = np.zeros((size, size, size), np.uint8)
    centre = size // 2
    paint_spheres(target, np.array([[centre, centre, centre]]), radius)
    z, y, x = np.indices(target.shape)
    ball = (z - centre) ** 2 + (y - centre) ** 2 + (x - centre) ** 2 <= radius ** 2
    np.testing.assert_array_equal(target.astype(bool), ball)
    assert len(sphere_offsets(radius)) == ball.sum()
    if radius >= 4:
        assert ball.sum() == pytest.approx(4 / 3 * math.pi * radius ** 3, rel=0.05)


def test_paint_spheres_clips_at_the_border_and_rounds_coordinates():
    target = np.zeros((10, 12, 14), np.uint8)
    paint_spheres(target, np.array([[0.4, 11.2, 9.6]]), 3.0)  # centre (z 10, y 11, x 0): partly outside
    z, y, x = np.indices(target.shape)
    ball = (z - 10) ** 2 + (y - 11) ** 2 + (x - 0) ** 2 <= 9
    np.testing.assert_array_equal(target.astype(bool), ball)
    targets = sphere_targets((10, 12, 14), [np.array([[3, 3, 3]]), np.zeros((0, 3))], [2.0, 2.0])
    assert targets.shape == (2, 10, 12, 14) and targets.dtype == np.uint8
    assert targets[0].sum() == len(sphere_offsets(2.0)) and targets[1].sum() == 0
    with pytest.raises(ParameterError):
        paint_spheres(target, np.array([[1, 1, 1]]), 0)


# --------------------------------------------------------------------------------------------
# Bad input: clear errors naming the file
# --------------------------------------------------------------------------------------------

def test_mismatched_numbers_of_tomograms_and_coordinate_files(phantom_files):
    with pytest.raises(ParameterError) as caught:
        load_training_tomograms([phantom_files["tomogram"], phantom_files["tomogram"]],
                                coords=[[phantom_files["ribosome"]]], radii=[4.0])
    assert isinstance(caught.value, DeepictError)
    assert "tomo_ribosome.csv" in str(caught.value) and "2 tomogram(s)" in str(caught.value)


def test_coordinates_outside_the_tomogram(phantom_files, tmp_path):
    path = tmp_path / "outside.csv"
    write_coordinates(path, CoordinateTable([[10, 10, 10], [10, 10, 40]], {}, VOXEL))  # z = 40 >= 32
    with pytest.raises(InputFileError, match="outside the tomogram") as caught:
        load_training_tomograms([phantom_files["tomogram"]], coords=[[path]], radii=[4.0])
    assert "outside.csv" in str(caught.value)


def test_coordinates_at_another_voxel_size(phantom_files, tmp_path):
    path = tmp_path / "bin2.csv"
    write_coordinates(path, CoordinateTable([[10, 10, 10]], {}, VOXEL / 2))
    with pytest.raises(InputFileError, match="Å/voxel") as caught:
        load_training_tomograms([phantom_files["tomogram"]], coords=[[path]], radii=[4.0])
    assert "bin2.csv" in str(caught.value)


def test_nan_tomogram(phantom_files, tmp_path):
    data = np.zeros(SHAPE, np.float32)
    data[20, 3, 4] = np.nan
    write_volume(tmp_path / "nan.mrc", data, VOXEL)
    with pytest.raises(InputFileError, match="NaN") as caught:
        load_training_tomograms([tmp_path / "nan.mrc"], coords=[[phantom_files["ribosome"]]], radii=[4.0])
    assert "nan.mrc" in str(caught.value)


def test_truncated_mrc(phantom_files, tmp_path):
    source = open(phantom_files["tomogram"], "rb").read()
    path = tmp_path / "truncated.mrc"
    path.write_bytes(source[:len(source) - 4096])
    with pytest.raises(InputFileError) as caught:
        load_training_tomograms([path], coords=[[phantom_files["ribosome"]]], radii=[4.0])
    assert "truncated.mrc" in str(caught.value)
    header_only = tmp_path / "header_only.mrc"
    header_only.write_bytes(source[:100])
    with pytest.raises(InputFileError, match="header_only.mrc"):
        load_training_tomograms([header_only], coords=[[phantom_files["ribosome"]]], radii=[4.0])


def test_empty_labels_are_refused(tmp_path):
    write_volume(tmp_path / "t.mrc", np.random.default_rng(0).normal(size=(16, 16, 16)).astype(np.float32), VOXEL)
    write_coordinates(tmp_path / "none.csv", CoordinateTable(np.zeros((0, 3)), {}, VOXEL))
    tomograms = load_training_tomograms([tmp_path / "t.mrc"], coords=[[tmp_path / "none.csv"]], radii=[3.0])
    with pytest.raises(InputFileError, match="no labelled voxel") as caught:
        train(tomograms, tiny_config(), tmp_path / "m.pt", log=lambda m: None)
    assert "t.mrc" in str(caught.value)
