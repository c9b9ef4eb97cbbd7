"""End-to-end test of the 3D commands (``deepict train3d / pick / segment3d / import-model``) on a tiny phantom."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from deepict.cli.main import main
from deepict.io import read_coordinates, read_volume, write_volume
from deepict.nn.model_files import KIND_3D, load_model, read_model_info
from deepict.synthetic import PhantomConfig, make_phantom, write_phantom
from tiny_world import PUBLISHED

pytestmark = pytest.mark.usefixtures("one_torch_thread")

VOXEL = 13.48
INFERENCE = ["--window", "32", "--margin", "4", "--batch-size", "4", "--device", "cpu"]


@pytest.fixture(scope="module")
def phantom_files(tmp_path_factory):
    phantom = make_phantom(PhantomConfig(shape_zyx=(32, 48, 48), seed=2, n_ribosomes=5, n_fas=1, n_distractors=2,
                                         n_vesicles=1, n_sheets=0))
    return write_phantom(phantom, tmp_path_factory.mktemp("phantom"), "tomo")


@pytest.fixture(scope="module")
def trained_model(phantom_files, tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "ribo.pt"
    code = main(["train3d", "--tomograms", phantom_files["tomogram"], "--coords", phantom_files["ribosome"],
                 "--class-name", "ribosome", "--radius", "4", "--out", str(out), "--epochs", "2",
                 "--iterations-per-epoch", "2", "--patch-size", "16", "--depth", "1", "--initial-features", "2",
                 "--batch-size", "2", "--device", "cpu"])
    assert code == 0
    return out


def last_json(text: str) -> dict:
    return json.loads([line for line in text.splitlines() if line.startswith("{")][-1])


def test_train3d_writes_a_model(trained_model, capsys):
    # Beside the model: its resumable training state (named by training_state, whose naming has changed).
    assert trained_model.is_file() and [p for p in trained_model.parent.iterdir() if p != trained_model
                                        and p.name.startswith(f"{trained_model.stem}.") and p.suffix == ".pt"]
    info = read_model_info(trained_model)
    assert info.kind == KIND_3D and info.classes == ["ribosome"] and info.voxel_size == pytest.approx(VOXEL)
    assert info.sphere_radius == {"ribosome": 4.0} and len(info.history) == 2
    # Two epochs: the model is the weight average of the second, and model-info says so.
    assert main(["model-info", "--model", str(trained_model)]) == 0
    described = json.loads(capsys.readouterr().out)
    assert described["weight_average"]["first_epoch"] == 2 and described["complete"] is True


def test_pick_and_segment3d(trained_model, phantom_files, tmp_path, capsys):
    picks = tmp_path / "picks.csv"
    probability = tmp_path / "probability.mrc"
    code = main(["pick", "--model", str(trained_model), "--tomogram", phantom_files["tomogram"], "--out", str(picks),
                 "--threshold", "0.3", "--min-size", "1", "--probability-map", str(probability)] + INFERENCE)
    assert code == 0
    table = read_coordinates(picks)
    assert table.voxel_size == pytest.approx(VOXEL)
    assert {"score", "size", "class"} <= set(table.columns)
    assert np.all((table.xyz >= 0) & (table.xyz <= np.array([47, 47, 31])))
    probabilities = read_volume(probability)
    assert probabilities.data.shape == (32, 48, 48) and probabilities.voxel_size == pytest.approx(VOXEL)
    assert 0 <= probabilities.data.min() and probabilities.data.max() <= 1
    assert "particle(s) picked" in capsys.readouterr().out

    mask = tmp_path / "mask.mrc"
    code = main(["segment3d", "--model", str(trained_model), "--tomogram", phantom_files["tomogram"],
                 "--out", str(mask), "--threshold", "0.3", "--min-size", "1", "--border", "2", "1", "0"] + INFERENCE)
    assert code == 0
    segmented = read_volume(mask)
    assert segmented.data.shape == (32, 48, 48) and segmented.data.dtype == np.int8
    expected = np.asarray(probabilities.data) > 0.3
    expected[:, :, :2] = expected[:, :, -2:] = False
    expected[:, :1] = expected[:, -1:] = False
    np.testing.assert_array_equal(segmented.data.astype(bool), expected)  # min size 1: every cluster is kept
    assert not list(tmp_path.glob(".deepict-*")), "the scratch folder of the probability map was left behind"


def test_import_published_model_and_pick(phantom_files, tmp_path, capsys):
    checkpoint = PUBLISHED / "ribosomeModel.pth"
    if not checkpoint.is_file():
        pytest.skip(f"{checkpoint} is not available")
    model = tmp_path / "published_ribo.pt"
    assert main(["import-model", str(checkpoint), "--out", str(model), "--voxel-size", str(VOXEL)]) == 0
    printed = capsys.readouterr().out
    report = last_json(printed)
    assert report["classes"] == ["ribo"] and report["voxel_size"] == pytest.approx(VOXEL)
    # It stores no reference spectrum: said at the import, not only when a pick finds little.
    assert f"warning: {model}: this published DeePiCt network" in printed
    network, info = load_model(model, kind=KIND_3D)
    assert sum(p.numel() for p in network.parameters()) == 21_453
    picks = tmp_path / "picks.csv"
    code = main(["pick", "--model", str(model), "--tomogram", phantom_files["tomogram"], "--out", str(picks)]
                + INFERENCE)
    assert code == 0 and picks.is_file()
    assert len(read_coordinates(picks)) >= 0


def test_import_model_without_voxel_size_fails_cleanly(tmp_path, capsys):
    checkpoint = PUBLISHED / "ribosomeModel.pth"
    if not checkpoint.is_file():
        pytest.skip(f"{checkpoint} is not available")
    assert main(["import-model", str(checkpoint), "--out", str(tmp_path / "m.pt")]) == 2
    error = capsys.readouterr().err
    assert "deepict import-model: error:" in error and "--voxel-size" in error
    assert not (tmp_path / "m.pt").exists()


def test_other_voxel_size_is_rescaled_and_too_far_is_refused(trained_model, phantom_files, tmp_path, capsys):
    data = read_volume(phantom_files["tomogram"]).data
    other = tmp_path / "half.mrc"
    write_volume(other, np.asarray(data), VOXEL / 2)
    picks, probability = tmp_path / "picks.csv", tmp_path / "p.mrc"
    assert main(["pick", "--model", str(trained_model), "--tomogram", str(other), "--out", str(picks),
                 "--probability-map", str(probability)] + INFERENCE) == 0
    out = capsys.readouterr().out
    assert "rescaling" in out and "from 6.74 Å to the model's 13.48 Å" in out and "factor 0.5" in out
    assert read_coordinates(picks).voxel_size == pytest.approx(VOXEL / 2)
    result = read_volume(probability)
    assert result.data.shape == data.shape and result.voxel_size == pytest.approx(VOXEL / 2)
    # Beyond 4x either way: refused with the fix.
    far = tmp_path / "far.mrc"
    write_volume(far, np.asarray(data), VOXEL / 5)
    assert main(["pick", "--model", str(trained_model), "--tomogram", str(far), "--out", str(picks)]
                + INFERENCE) == 2
    error = capsys.readouterr().err
    assert "deepict pick: error:" in error and "far.mrc" in error and "2.696" in error and "4x" in error
    # Rescaled smaller than the network's 16-voxel box: refused.
    coarse = tmp_path / "fine.mrc"
    write_volume(coarse, np.asarray(data), VOXEL / 3)
    assert main(["pick", "--model", str(trained_model), "--tomogram", str(coarse), "--out", str(picks)]
                + INFERENCE) == 2
    assert "box" in capsys.readouterr().err
    # --ignore-voxel-size applies the model as is.
    assert main(["pick", "--model", str(trained_model), "--tomogram", str(far), "--out", str(picks),
                 "--ignore-voxel-size"] + INFERENCE) == 0
    assert "rescaling" not in capsys.readouterr().out


def test_bad_inputs_exit_with_code_2(trained_model, phantom_files, tmp_path, capsys):
    missing = tmp_path / "missing.mrc"
    assert main(["pick", "--model", str(trained_model), "--tomogram", str(missing),
                 "--out", str(tmp_path / "p.csv")] + INFERENCE) == 2
    assert "missing.mrc" in capsys.readouterr().err
    assert main(["train3d", "--tomograms", phantom_files["tomogram"], phantom_files["tomogram"],
                 "--coords", phantom_files["ribosome"], "--radius", "4", "--out", str(tmp_path / "m.pt")]) == 2
    assert "tomo_ribosome.csv" in capsys.readouterr().err
    # A model file that is not a model, and a 3D command given a non-3D file.
    fake = tmp_path / "fake.pt"
    fake.write_text("hello")
    assert main(["pick", "--model", str(fake), "--tomogram", phantom_files["tomogram"],
                 "--out", str(tmp_path / "p.csv")] + INFERENCE) == 2
    assert "fake.pt" in capsys.readouterr().err
    # A window the network cannot take.
    assert main(["pick", "--model", str(trained_model), "--tomogram", phantom_files["tomogram"],
                 "--out", str(tmp_path / "p.csv"), "--window", "8", "--margin", "4", "--device", "cpu"]) == 2
    assert "margin" in capsys.readouterr().err


def test_a_binned_context_mask_picks_as_the_same_mask_at_the_tomograms_binning(trained_model, phantom_files,
                                                                              tmp_path, capsys):
    """A context mask made on a binned copy of the tomogram (cytosol from segment2d at bin 2) is resampled to the
    tomogram's voxels, as filter-context takes it; it was refused."""
    full, binned = tmp_path / "full_mask.mrc", tmp_path / "bin2_mask.mrc"
    mask = np.zeros((32, 48, 48), np.int8)
    mask[:, :, :24] = 1  # the half of the tomogram with lower x
    write_volume(full, mask, VOXEL)
    write_volume(binned, mask[::2, ::2, ::2], VOXEL * 2)
    picks = {}
    for path in (full, binned):
        out_csv = tmp_path / f"picks_{path.stem}.csv"
        assert main(["pick", "--model", str(trained_model), "--tomogram", phantom_files["tomogram"], "--out",
                     str(out_csv), "--context", str(path), "--threshold", "0.3", *INFERENCE]) == 0
        picks[path] = read_coordinates(out_csv).xyz
    out = capsys.readouterr().out
    assert "context mask bin2_mask.mrc (x,y,z = (24, 24, 16) at 26.96 Å) resampled to the tomogram's grid" in out
    assert len(picks[full]) and np.all(picks[full][:, 0] < 24)
    np.testing.assert_array_equal(picks[binned], picks[full])
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no scratch left behind


def test_a_context_mask_of_another_tomogram_is_refused_before_predicting(trained_model, phantom_files, tmp_path,
                                                                         capsys):
    """It was refused only after the whole prediction (minutes on a real tomogram), leaving the map behind."""
    mask = tmp_path / "other_mask.mrc"
    write_volume(mask, np.ones((16, 24, 20), np.int8), VOXEL * 2)
    code = main(["pick", "--model", str(trained_model), "--tomogram", phantom_files["tomogram"], "--out",
                 str(tmp_path / "picks.csv"), "--context", str(mask), "--probability-map", str(tmp_path / "map.mrc"),
                 *INFERENCE])
    out, err = capsys.readouterr()
    assert code == 2
    assert "other_mask.mrc: its extent x,y,z = 539 x 647 x 431 Å (20 x 24 x 16 voxels of 26.96 Å) is not the " \
           "tomogram's 647 x 647 x 431 Å" in err and "at any binning" in err
    assert "predicting" not in out + err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other_mask.mrc"]


def test_a_context_mask_of_the_tomograms_shape_at_another_voxel_size_is_refused(trained_model, phantom_files,
                                                                                 tmp_path, capsys):
    """filter-context, train2d and train3d refuse it; pick and segment3d used it as it was."""
    mask = tmp_path / "mask_10A.mrc"
    write_volume(mask, np.ones((32, 48, 48), np.int8), 10.0)
    code = main(["pick", "--model", str(trained_model), "--tomogram", phantom_files["tomogram"], "--out",
                 str(tmp_path / "picks.csv"), "--context", str(mask), *INFERENCE])
    err = capsys.readouterr().err
    assert code == 2 and "mask_10A.mrc: has the shape of the tomogram" in err and "10 Å against its 13.48 Å" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mask_10A.mrc"]


def test_model_info_gives_a_radius_in_angstrom_as_it_was_given(tmp_path):
    """108 Å at 13.48 Å/voxel is stored as 8.0119 voxels; model-info (and the Scipion model) said 107.99999999999999."""
    from deepict.cli.model_info import describe
    from deepict.nn.model_files import ModelInfo, build_network, save_model
    info = ModelInfo(kind=KIND_3D, classes=["ribosome"], voxel_size=13.48, patch_size=16, overlap=4,
                     architecture={"depth": 1, "initial_features": 2, "out_channels": 1, "batch_norm": False},
                     sphere_radius={"ribosome": 108 / 13.48})
    save_model(tmp_path / "m.pt", build_network(info), info)
    assert describe(tmp_path / "m.pt")["sphere_radius_angstrom"] == {"ribosome": 108.0}
