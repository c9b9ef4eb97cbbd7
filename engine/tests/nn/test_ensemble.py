"""``deepict ensemble``: models combined into one file whose map is the mean of theirs, usable by pick as any model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from deepict.io import read_coordinates, read_volume
from deepict.nn.model_files import ENSEMBLE_MEMBERS, POSTPROCESS_CALIBRATION, read_model_info
from deepict.synthetic import PhantomConfig, make_phantom, write_phantom
from tiny_world import TINY_TRAINING, constant_model, noise_tomogram, run, untrained_model

SMALL_WINDOW = ["--window", "16", "--margin", "4", "--device", "cpu", "--precision", "fp32"]


@pytest.fixture
def two_constant_models(tmp_path) -> tuple[Path, Path]:
    """Maps of 0.2 and 0.6 everywhere; calibrated thresholds 0.5 and 0.4."""
    return constant_model(tmp_path / "low.pt", 0.2, 0.5), constant_model(tmp_path / "high.pt", 0.6, 0.4)


def test_the_ensemble_map_is_the_members_mean_and_pick_uses_it_as_any_model(two_constant_models, tmp_path, capsys):
    low, high = two_constant_models
    ensemble = tmp_path / "ensemble.pt"
    code, out, err = run(capsys, "ensemble", "--models", low, high, "--out", ensemble)
    assert code == 0, err
    assert "median post-processing: threshold 0.45" in out

    tomogram = noise_tomogram(tmp_path / "noise.mrc")
    code, _, err = run(capsys, "pick", "--model", ensemble, "--tomogram", tomogram, "--out", tmp_path / "picks.csv",
                       "--probability-map", tmp_path / "map.mrc", *SMALL_WINDOW)
    assert code == 0, err
    probability = np.asarray(read_volume(tmp_path / "map.mrc").data)
    assert np.allclose(probability, 0.4, atol=1e-4)
    # At the members' median threshold 0.45 a map of 0.4 holds no particle.
    assert len(read_coordinates(tmp_path / "picks.csv").xyz) == 0


def test_model_info_lists_the_members_and_an_older_reader_is_told_to_update(two_constant_models, tmp_path, capsys):
    low, high = two_constant_models
    ensemble = tmp_path / "ensemble.pt"
    assert run(capsys, "ensemble", "--models", low, high, "--out", ensemble)[0] == 0
    code, out, _ = run(capsys, "model-info", "--model", ensemble)
    assert code == 0 and '"depth": 1' in out and str(low) in out and str(high) in out
    info = read_model_info(ensemble)
    assert [m["file"] for m in info.training[ENSEMBLE_MEMBERS]] == [str(low), str(high)]
    assert info.postprocess == {"threshold": 0.45, "min_size": 1, "max_size": None}
    # Ensembles need format 2, which an older reader refuses as newer; a single network stays format 1.
    assert torch.load(ensemble, weights_only=True)["format_version"] == 2
    assert torch.load(low, weights_only=True)["format_version"] == 1


@pytest.mark.parametrize("case", ["one model", "an ensemble as member", "other labels", "other spectrum"])
def test_members_that_cannot_be_averaged_are_refused_naming_the_file(case, two_constant_models, tmp_path, capsys):
    low, high = two_constant_models
    if case == "one model":
        models, named = [low], "at least two models"
    elif case == "an ensemble as member":
        nested = tmp_path / "nested.pt"
        assert run(capsys, "ensemble", "--models", low, high, "--out", nested)[0] == 0
        models, named = [low, nested], f"{nested}: is itself an ensemble"
    elif case == "other labels":
        other = untrained_model(tmp_path / "other.pt")  # imported-like: no training sphere
        models, named = [low, other], f"{other}: cannot be averaged with {low}: labels"
    else:
        spectrum = {"frequency": [0.01, 0.02], "amplitude": [1.0, 0.5], "voxel_size": 13.48,
                    "lowpass_angstrom": None, "lowpass_width": 0.1, "source": "x"}
        other = untrained_model(tmp_path / "other.pt", spectrum=spectrum)
        plain = untrained_model(tmp_path / "plain.pt")
        models, named = [plain, other], f"{other}: cannot be averaged with {plain}: another reference spectrum"
    out_path = tmp_path / "ensemble_out.pt"
    code, _, err = run(capsys, "ensemble", "--models", *models, "--out", out_path)
    assert code == 2 and named in err and "Traceback" not in err
    assert not out_path.exists()


def test_calibrating_needs_tomograms_and_coordinates_together(two_constant_models, tmp_path, capsys):
    low, high = two_constant_models
    code, _, err = run(capsys, "ensemble", "--models", low, high, "--out", tmp_path / "e.pt",
                       "--tomograms", noise_tomogram(tmp_path / "noise.mrc"))
    assert code == 2 and "both --tomograms and --coords" in err


def test_members_that_do_not_say_where_they_validated_are_not_calibrated(two_constant_models, tmp_path, capsys):
    """Particle models not trained by train3d (here made by hand) record no validation slabs to calibrate on."""
    low, high = two_constant_models
    coords = tmp_path / "noise.csv"
    coords.write_text("x,y,z\n20,20,12\n")
    code, _, err = run(capsys, "ensemble", "--models", low, high, "--out", tmp_path / "e.pt",
                       "--tomograms", noise_tomogram(tmp_path / "noise.mrc"), "--coords", coords)
    assert code == 2 and "Traceback" not in err
    assert f"{low} does not say where its training kept validation slabs" in err
    assert not (tmp_path / "e.pt").exists()


def _phantom(folder: Path) -> tuple[str, str]:
    """A phantom tomogram with about ten ribosomes and their coordinates."""
    phantom = make_phantom(PhantomConfig(shape_zyx=(32, 64, 96), seed=3, n_ribosomes=30, n_fas=1, n_distractors=1,
                                         n_vesicles=0, n_sheets=0))
    paths = write_phantom(phantom, folder, "tomo")
    return str(paths["tomogram"]), str(paths["ribosome"])


def _train(folder: Path, tomogram: str, coords: str, seed: int, *options, capsys=None) -> Path:
    model = folder / f"member{seed}.pt"
    code, _, err = run(capsys, "train3d", "--tomograms", tomogram, "--coords", coords, "--out", model,
                       "--seed", seed, *TINY_TRAINING, *options)
    assert code == 0, err
    return model


def test_the_ensemble_is_calibrated_on_the_members_training_data(tmp_path, capsys):
    tomogram, coords = _phantom(tmp_path)
    members = [_train(tmp_path, tomogram, coords, seed, capsys=capsys) for seed in (0, 1)]
    ensemble = tmp_path / "ensemble.pt"
    code, out, err = run(capsys, "ensemble", "--models", *members, "--out", ensemble, "--tomograms", tomogram,
                         "--coords", coords, "--device", "cpu")
    assert code == 0, err
    assert "equalizing the training tomograms to the model's reference spectrum" in out
    assert "post-processing calibrated on" in out
    info = read_model_info(ensemble)
    calibration = info.training[POSTPROCESS_CALIBRATION]
    assert info.postprocess["min_size"] == calibration["min_size"]
    assert info.spectrum == read_model_info(members[0]).spectrum


def test_calibrating_on_coordinate_files_without_coordinates_is_refused_at_once(tmp_path, capsys):
    """It predicted the tomograms for about 80 s, then blamed the validation slabs."""
    tomogram, coords = _phantom(tmp_path)
    members = [_train(tmp_path, tomogram, coords, seed, capsys=capsys) for seed in (0, 1)]
    empty = tmp_path / "empty.csv"
    empty.write_text("x,y,z\n")
    code, out, err = run(capsys, "ensemble", "--models", *members, "--out", tmp_path / "e.pt", "--tomograms",
                         tomogram, "--coords", empty, "--device", "cpu")
    assert code == 2 and "empty.csv hold no coordinates: calibrating needs the annotated particles" in err
    assert "predicting" not in out and not (tmp_path / "e.pt").exists()


def test_without_validation_slabs_the_ensemble_says_it_keeps_the_median(tmp_path, capsys):
    tomogram, coords = _phantom(tmp_path)
    members = [_train(tmp_path, tomogram, coords, seed, "--val-fraction", "0", capsys=capsys)
               for seed in (0, 1)]
    ensemble = tmp_path / "ensemble.pt"
    code, out, err = run(capsys, "ensemble", "--models", *members, "--out", ensemble, "--tomograms", tomogram,
                         "--coords", coords, "--device", "cpu")
    assert code == 0, err
    assert "the post-processing stays as it was: the training kept no validation slabs" in out
    assert POSTPROCESS_CALIBRATION not in read_model_info(ensemble).training


def test_members_with_other_validation_slabs_are_combined_but_not_calibrated(tmp_path, capsys):
    """Calibrating on one member's validation slabs would score the other on data it trained on."""
    tomogram, coords = _phantom(tmp_path)
    members = [_train(tmp_path, tomogram, coords, 0, capsys=capsys),
               _train(tmp_path, tomogram, coords, 1, "--val-fraction", "0.3", capsys=capsys)]
    ensemble = tmp_path / "ensemble.pt"
    code, _, err = run(capsys, "ensemble", "--models", *members, "--out", ensemble, "--tomograms", tomogram,
                       "--coords", coords, "--device", "cpu")
    assert code == 2 and "Traceback" not in err
    assert f"{members[1]}: val fraction 0.3, patch size" in err and "without --tomograms/--coords" in err
    assert not ensemble.exists()
    assert run(capsys, "ensemble", "--models", *members, "--out", ensemble)[0] == 0


def test_members_named_alike_are_told_apart_by_their_folders_and_seeds(tmp_path, capsys):
    """Scipion's training runs all write extra/model.pt: the ensemble's source names their run folders."""
    first = constant_model(tmp_path / "000349_ProtDeepictTrain3D" / "extra" / "model.pt", 0.2, 0.5)
    second = constant_model(tmp_path / "000412_ProtDeepictTrain3D" / "extra" / "model.pt", 0.6, 0.4)
    ensemble = tmp_path / "ensemble.pt"
    assert run(capsys, "ensemble", "--models", first, second, "--out", ensemble)[0] == 0
    source = read_model_info(ensemble).source
    assert source.startswith("ensemble of 2 models: 000349_ProtDeepictTrain3D/extra/model.pt")
    assert "000412_ProtDeepictTrain3D/extra/model.pt" in source
