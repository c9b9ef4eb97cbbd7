"""2D compartment segmentation: tiling, post-processing, training, resume, errors and the CLI.

Everything runs on tiny synthetic volumes with a tiny U-Net (depth 3, 4 filters) on the CPU.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter1d

from deepict.cli import main as cli
from deepict import io
from deepict.infer import slices2d as predict2d
from deepict.infer import smoothing
from deepict.infer.masks import binary_mask, parse_remap, remap_labels
from deepict.infer.rescale import resample_array, rescaled_shape
from deepict.infer.smoothing import smooth_and_threshold, smooth_and_threshold_slabs
from deepict.infer.compartments import DEFAULT_CROP, MAX_AUTO_TILE
from deepict.infer.tiling import auto_tile_size, box_starts
from deepict.errors import InputFileError, ParameterError
from deepict.io import read_volume, write_volume
from deepict.nn.model_files import ModelInfo, read_model_info, save_model
from deepict.nn.networks import UNet3D
from deepict.infer.slices2d import predict_slices, segment_tomogram
from deepict.train.train2d import train_2d
from deepict.nn.model_files import COMPLETE
from deepict.train.state import state_path
from deepict.train.config import Train2DConfig

VOXEL = 13.48
SHAPE = (24, 48, 48)  # z, y, x
#: a ready torch device: the engine then keeps the test's thread count (a device name would use every core)
CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _few_threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def tiny_config(**changes) -> Train2DConfig:
    settings = dict(class_name="cytosol", epochs=4, tiles_per_epoch=48, patience=0, tile_size=32, z_stride=2,
                    batch_size=8, learning_rate=1e-2, depth=3, initial_features=4, crop=8, threshold=None,
                    sigma=1.0, seed=1, device="cpu", val_slices=6)
    settings.update(changes)
    return Train2DConfig(**settings)


def synthetic_pair(seed: int, shape=SHAPE):
    """A bright ellipsoidal compartment in a dark noisy surrounding, and its mask."""
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    centre = [n / 2 + rng.uniform(-0.15, 0.15) * n for n in shape]
    radii = [rng.uniform(0.3, 0.45) * n for n in shape]
    inside = ((z - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2 + ((x - centre[2]) / radii[2]) ** 2
    mask = (inside < 1).astype(np.int8)
    tomogram = (np.where(mask, 1.0, -1.0) + rng.normal(0, 0.8, shape)).astype(np.float32) * 20
    return tomogram, mask


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("compartments")
    paths = {}
    for i in range(3):
        tomogram, mask = synthetic_pair(i)
        paths[f"t{i}"] = folder / f"t{i}.mrc"
        paths[f"m{i}"] = folder / f"t{i}_cytosol.mrc"
        write_volume(paths[f"t{i}"], tomogram, VOXEL)
        write_volume(paths[f"m{i}"], mask, VOXEL)
    return folder, paths


@pytest.fixture(scope="module")
def trained(data):
    folder, paths = data
    out = folder / "model2d.pt"
    logs = []
    summary = train_2d([paths["t0"], paths["t1"]], [paths["m0"], paths["m1"]], out, tiny_config(), log=logs.append,
                       device=CPU)
    return out, summary, logs


def dice(a, b) -> float:
    a, b = np.asarray(a) != 0, np.asarray(b) != 0
    return 2 * np.count_nonzero(a & b) / max(np.count_nonzero(a) + np.count_nonzero(b), 1)


# --------------------------------------------------------------------------------------------
# Tiling and post-processing
# --------------------------------------------------------------------------------------------

class _Identity(torch.nn.Module):
    """Returns its input as logits: predictions must equal sigmoid(slice) wherever a core lands."""

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return x


@pytest.mark.parametrize("shape_yx", [(5, 7), (1, 40), (33, 47), (64, 64), (401, 333)])
def test_tiling_covers_every_pixel(shape_yx):
    tile, crop = 64, 8
    rng = np.random.default_rng(0)
    slices = [(z, rng.normal(size=shape_yx).astype(np.float32)) for z in range(3)]
    results = list(predict_slices(_Identity(), slices, tile, crop, batch_size=5, device="cpu"))
    assert [z for z, _ in results] == [0, 1, 2]
    for (_, image), (_, prob) in zip(slices, results):
        assert prob.shape == image.shape
        np.testing.assert_allclose(prob, 1 / (1 + np.exp(-image)), rtol=1e-5, atol=1e-6)
    if shape_yx == (401, 333):
        assert len(box_starts(401, tile, crop)) > 5


def test_auto_tile_size_is_valid():
    for shape in ((256, 256), (928, 928), (30, 500)):
        tile = auto_tile_size(shape, 192, 48, 5)
        assert tile % 16 == 0 and 192 <= tile <= 512


def test_a_928_px_slice_is_segmented_as_one_tile_by_default():
    # the common slice of a 4x-binned K2/K3 tomogram: one 1024 px tile needs 16 % less work than four of 560 px
    tile = auto_tile_size((928, 928), 128, DEFAULT_CROP, 5, MAX_AUTO_TILE)
    assert tile == 1024
    assert len(box_starts(928, tile, DEFAULT_CROP)) == 1


def test_smooth_and_threshold_matches_whole_volume():
    rng = np.random.default_rng(3)
    prob = rng.random((75, 9, 11)).astype(np.float32)
    for sigma in (0.0, 1.5, 5.0):
        expected = (gaussian_filter1d(prob, sigma, axis=0, mode="reflect") if sigma else prob) > 0.5
        result = smooth_and_threshold(prob, sigma, 0.5)
        assert result.dtype == np.uint8
        np.testing.assert_array_equal(result, expected)
    # streaming form: small z slabs and row bands give the same result
    expected = gaussian_filter1d(prob, 2.0, axis=0, mode="reflect") > 0.4
    pieces = {}
    positive = smooth_and_threshold_slabs(lambda a, b, c, d: prob[a:b, c:d], prob.shape, 2.0, 0.4,
                                          lambda z0, mask: pieces.setdefault(z0, mask.copy()), slab=7, rows=4)
    np.testing.assert_array_equal(np.concatenate([pieces[z] for z in sorted(pieces)]), expected)
    assert positive == np.count_nonzero(expected)
    with pytest.raises(ParameterError):
        smooth_and_threshold(prob, 1.0, 1.5)


def test_remapping():
    labels = np.array([0, 1, 2, 3, 5, 12])
    np.testing.assert_array_equal(remap_labels(labels, parse_remap(".:1")), [0, 1, 1, 1, 1, 1])
    np.testing.assert_array_equal(remap_labels(labels, parse_remap("2,3,5:1")), [0, 0, 1, 1, 1, 0])
    np.testing.assert_array_equal(remap_labels(labels, parse_remap("1:0,12:0,.:1")), [0, 0, 1, 1, 1, 0])
    with pytest.raises(ParameterError):
        parse_remap("2,3")
    with pytest.raises(ParameterError):
        parse_remap("2:7")
    with pytest.raises(InputFileError, match="--remap"):
        binary_mask(labels, "labels.mrc")


# --------------------------------------------------------------------------------------------
# Training, prediction, resume
# --------------------------------------------------------------------------------------------

def test_trained_model_separates_the_compartment(data, trained, tmp_path):
    _, paths = data
    out, summary, logs = trained
    info = read_model_info(out)
    assert info.kind == "2d" and info.classes == ["cytosol"] and info.voxel_size == pytest.approx(VOXEL)
    assert info.patch_size == 32 and info.overlap == 8 and len(info.history) == 4
    assert 0.05 <= info.postprocess["threshold"] <= 0.95 and info.postprocess["sigma"] == 1.0  # calibrated
    # one result line per epoch (a slow epoch also reports its progress under the same "epoch i/n" label)
    assert sum(line.startswith("epoch ") and "val Dice" in line for line in logs) == 4
    assert "ETA" in logs[-2] and "val Dice" in logs[-2]
    mask_path, prob_path = tmp_path / "t2_mask.mrc", tmp_path / "t2_prob.mrc"
    result = segment_tomogram(out, paths["t2"], mask_path, probability_map=prob_path, device=CPU, log=None)
    mask, prob = read_volume(mask_path), read_volume(prob_path)
    truth = read_volume(paths["m2"]).data
    assert mask.data.shape == SHAPE and mask.data.dtype == np.int8 and mask.voxel_size == pytest.approx(VOXEL, 1e-3)
    assert prob.data.dtype == np.float32 and 0 <= prob.data.min() and prob.data.max() <= 1
    chance = dice(np.ones_like(truth), truth)
    score = dice(mask.data, truth)
    assert score > 0.8 and score > chance + 0.2, (score, chance)
    assert summary.training["best_val_dice"] > 0.7
    # the share its labels cover, against which segment2d judges a mask (deepict.infer.clusters)
    truth_share = float(np.mean([read_volume(paths[m]).data.mean() for m in ("m0", "m1")]))
    assert info.training["label_share"]["cytosol"] == pytest.approx(truth_share, abs=0.1)
    assert result["tile_size"] % 4 == 0
    # a z range leaves the other slices empty
    partial = tmp_path / "partial.mrc"
    logs = []
    segment_tomogram(out, paths["t2"], partial, z_range=(5, 15), device=CPU, log=logs.append)
    assert any(line.startswith("segmenting t2.mrc: 1/10 slices (10%)") and "ETA" in line for line in logs)
    assert "segmenting t2.mrc: 10/10 slices (100%)" in "\n".join(logs)
    data_partial = read_volume(partial).data
    assert not data_partial[:5].any() and not data_partial[15:].any() and data_partial[5:15].any()


def test_big_volume_path_streams_through_a_temporary_file(data, trained, tmp_path, monkeypatch):
    _, paths = data
    in_memory, streamed = tmp_path / "memory.mrc", tmp_path / "streamed.mrc"
    segment_tomogram(trained[0], paths["t2"], in_memory, device=CPU, log=None)
    monkeypatch.setattr(predict2d, "IN_MEMORY_LIMIT_BYTES", 0)
    monkeypatch.setattr(smoothing, "SMOOTH_ROWS", 5)
    segment_tomogram(trained[0], paths["t2"], streamed, device=CPU, log=None)
    np.testing.assert_array_equal(read_volume(streamed).data, read_volume(in_memory).data)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["memory.mrc", "streamed.mrc"]  # scratch file removed


def test_big_volume_scratch_names_its_owner_so_a_killed_run_is_cleaned_up(tmp_path, monkeypatch):
    """SIGKILL leaves the streamed probabilities behind: they must sit in a scratch folder that names its
    owner (host and pid), which the next write into that folder removes once the owner is dead."""
    monkeypatch.setattr(predict2d, "IN_MEMORY_LIMIT_BYTES", 0)
    store = predict2d._SliceStore((4, 8, 8), tmp_path / "cytosol.mrc")
    store.write(1, np.ones((8, 8), np.float32))
    (scratch,) = tmp_path.iterdir()
    assert scratch.name.startswith(io.SCRATCH_PREFIX) and io.files._owner_tag() in scratch.name
    np.testing.assert_array_equal(store.read(1, 2)[0], 1)
    store.close()
    assert not any(tmp_path.iterdir())


def test_resume_continues_the_epoch_count(data, tmp_path):
    _, paths = data
    out = tmp_path / "resume.pt"
    config = tiny_config(epochs=2, tiles_per_epoch=16)
    first = train_2d([paths["t0"], paths["t1"]], [paths["m0"], paths["m1"]], out, config, log=None, device=CPU)
    assert first.training["epochs_run"] == 2
    checkpoint_path = state_path(out)
    assert checkpoint_path.name == "resume.pt.last.pt"  # the name 3D trainings use too
    checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    assert checkpoint["epoch"] == 2 and "optimizer" in checkpoint and checkpoint["kind"] == "2d"
    assert read_model_info(out).training[COMPLETE] is True
    # A state under the name 2D trainings used before is still resumed from (and renamed).
    checkpoint_path.rename(tmp_path / "resume.last.pt")
    logs = []
    second = train_2d([paths["t0"], paths["t1"]], [paths["m0"], paths["m1"]], out,
                      tiny_config(epochs=3, tiles_per_epoch=16), resume=True, log=logs.append, device=CPU)
    assert second.training["epochs_run"] == 3
    assert any("resuming" in line for line in logs) and any("renamed" in line for line in logs)
    assert checkpoint_path.is_file() and not (tmp_path / "resume.last.pt").exists()
    assert [line.split()[1] for line in logs if line.startswith("epoch ") and "ETA" in line and "val Dice" in line] \
        == ["3/3"]
    assert [h["epoch"] for h in read_model_info(out).history] == [1, 2, 3]
    with pytest.raises(ParameterError, match="trained on"):
        train_2d([paths["t1"], paths["t0"]], [paths["m1"], paths["m0"]], out, config, resume=True, log=None, device=CPU)


def test_early_stopping_waits_for_the_warm_up(data, tmp_path):
    _, paths = data
    logs = []
    config = tiny_config(epochs=6, tiles_per_epoch=8, patience=1, learning_rate=1e-9)  # nothing improves
    summary = train_2d([paths["t0"], paths["t1"]], [paths["m0"], paths["m1"]], tmp_path / "stop.pt", config,
                       log=logs.append, device=CPU)
    assert summary.training["stopped_early"] and summary.training["epochs_run"] == 4  # warm-up: epochs 1-3 (half of 6)
    assert any("stopping early" in line for line in logs)


def test_single_tomogram_holds_out_a_z_range(data, tmp_path):
    _, paths = data
    logs = []
    summary = train_2d([paths["t0"]], [paths["m0"]], tmp_path / "single.pt",
                       tiny_config(epochs=1, tiles_per_epoch=8), log=logs.append, device=CPU)
    assert summary.training["epochs_run"] == 1
    assert any("slices 14..18" in line for line in logs), logs[0]


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------

def test_wrong_mask_shape_names_both_files(data, tmp_path):
    _, paths = data
    small = tmp_path / "small_mask.mrc"
    write_volume(small, np.ones((24, 40, 48), np.int8), VOXEL)
    with pytest.raises(InputFileError) as error:
        train_2d([paths["t0"]], [small], tmp_path / "x.pt", tiny_config(), log=None, device=CPU)
    assert "small_mask.mrc" in str(error.value) and "t0.mrc" in str(error.value)


def test_empty_mask_and_label_map_are_refused(data, tmp_path):
    _, paths = data
    empty = tmp_path / "empty.mrc"
    write_volume(empty, np.zeros(SHAPE, np.int8), VOXEL)
    with pytest.raises(InputFileError, match="no positive voxels"):
        train_2d([paths["t0"]], [empty], tmp_path / "x.pt", tiny_config(), log=None, device=CPU)
    labels = tmp_path / "labels.mrc"
    write_volume(labels, (read_volume(paths["m0"]).data * 3).astype(np.int8), VOXEL)
    with pytest.raises(InputFileError, match="remap"):
        train_2d([paths["t0"]], [labels], tmp_path / "x.pt", tiny_config(), log=None, device=CPU)
    summary = train_2d([paths["t0"]], [labels], tmp_path / "x.pt", tiny_config(epochs=1, tiles_per_epoch=8,
                                                                               remap="3:1"), log=None, device=CPU)
    assert summary.training["epochs_run"] == 1
    with pytest.raises(ParameterError, match="2 tomograms but 1 masks"):
        train_2d([paths["t0"], paths["t1"]], [paths["m0"]], tmp_path / "y.pt", tiny_config(), log=None, device=CPU)


def test_mask_voxel_size_must_match(data, tmp_path):
    _, paths = data
    other = tmp_path / "other_voxel.mrc"
    write_volume(other, read_volume(paths["m0"]).data, 2 * VOXEL)
    with pytest.raises(InputFileError, match="voxel size"):
        train_2d([paths["t0"]], [other], tmp_path / "x.pt", tiny_config(), log=None, device=CPU)


def test_3d_model_and_voxel_size_mismatch_are_refused(data, trained, tmp_path):
    _, paths = data
    model3d = tmp_path / "model3d.pt"
    save_model(model3d, UNet3D(depth=1, initial_features=2),
               ModelInfo(kind="3d", classes=["ribo"], architecture={"depth": 1, "initial_features": 2},
                         voxel_size=VOXEL, patch_size=16, overlap=4))
    with pytest.raises(InputFileError, match="3D model"):
        segment_tomogram(model3d, paths["t2"], tmp_path / "m.mrc", device=CPU, log=None)
    binned = tmp_path / "binned.mrc"
    write_volume(binned, read_volume(paths["t2"]).data, 5 * VOXEL)
    with pytest.raises(InputFileError, match="more than the 4x"):
        segment_tomogram(trained[0], binned, tmp_path / "m.mrc", device=CPU, log=None)
    assert not (tmp_path / "m.mrc").exists()
    result = segment_tomogram(trained[0], binned, tmp_path / "m.mrc", device=CPU, ignore_voxel_size=True, log=None)
    assert "as is" in result["warning"]


def test_other_voxel_size_is_segmented_rescaled_at_its_own_size(data, trained, tmp_path):
    """A tomogram at 1.5x the model's voxel size: rescaled for the network, mask and map at its own grid."""
    _, paths = data
    native = read_volume(paths["t2"])
    coarse = tmp_path / "coarse.mrc"
    shape = rescaled_shape(native.data.shape, 1 / 1.5)
    write_volume(coarse, resample_array(native.data, shape), 1.5 * VOXEL)
    lines = []
    result = segment_tomogram(trained[0], coarse, tmp_path / "m.mrc", probability_map=tmp_path / "p.mrc",
                              device=CPU, log=lines.append)
    assert any("from 20.22 Å to the model's 13.48 Å" in line for line in lines)
    # the log names the user's files, not the scratch copies it segments
    assert any(line.startswith("segmenting cytosol in coarse.mrc rescaled") for line in lines)
    assert not any("rescaled.mrc" in line or ".deepict-scratch" in line for line in lines), lines
    for path, dtype in ((tmp_path / "m.mrc", np.int8), (tmp_path / "p.mrc", np.float32)):
        volume = read_volume(path)
        assert volume.data.shape == shape and volume.voxel_size == pytest.approx(1.5 * VOXEL)
        assert volume.data.dtype == dtype
    assert result["shape_zyx"] == list(shape) and result["rescaled_to"] == pytest.approx(VOXEL)
    # The mask is the rescaled native segmentation: mostly the same voxels.
    segment_tomogram(trained[0], paths["t2"], tmp_path / "native.mrc", device=CPU, log=None)
    expected = resample_array(read_volume(tmp_path / "native.mrc").data, shape) > 0.5
    agreement = np.mean(expected == (read_volume(tmp_path / "m.mrc").data > 0))
    assert agreement > 0.9, agreement


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------

def test_cli_round_trip(data, tmp_path, capsys):
    _, paths = data
    model = tmp_path / "cli2d.pt"
    code = cli.main(["train2d", "--tomograms", str(paths["t0"]), str(paths["t1"]),
                     "--masks", str(paths["m0"]), str(paths["m1"]), "--out", str(model), "--class-name", "cytosol",
                     "--epochs", "2", "--tiles-per-epoch", "16", "--tile-size", "32", "--z-stride", "3",
                     "--depth", "3", "--initial-features", "4", "--crop", "8", "--learning-rate", "0.01",
                     "--seed", "3", "--device", "cpu", "--threads", "1"])
    assert code == 0
    assert "epoch 2/2" in capsys.readouterr().out
    assert read_model_info(model).training["settings"]["z_stride"] == 3
    mask, prob = tmp_path / "cli_mask.mrc", tmp_path / "cli_prob.mrc"
    code = cli.main(["segment2d", "--model", str(model), "--tomogram", str(paths["t2"]), "--out", str(mask),
                     "--probability-map", str(prob), "--threshold", "0.5", "--sigma", "2", "--batch-size", "3",
                     "--device", "cpu", "--threads", "1"])
    assert code == 0
    assert read_volume(mask).data.shape == SHAPE and read_volume(prob).voxel_size == pytest.approx(VOXEL, 1e-3)
    code = cli.main(["segment2d", "--model", str(model), "--tomogram", str(paths["t2"]), "--out", str(mask),
                     "--threshold", "1.5", "--device", "cpu"])
    assert code == 2 and "threshold" in capsys.readouterr().err


def test_cli_voxel_size_overrides_a_wrong_header(data, trained, tmp_path, capsys):
    """segment2d had no --voxel-size (pick and segment3d have): a tomogram whose header is wrong could only be
    applied as it is (--ignore-voxel-size), and its mask kept the wrong voxel size."""
    _, paths = data
    wrong = tmp_path / "wrong_header.mrc"
    write_volume(wrong, read_volume(paths["t2"]).data, 5 * VOXEL)
    mask = tmp_path / "mask.mrc"
    argv = ["segment2d", "--model", str(trained[0]), "--tomogram", str(wrong), "--out", str(mask), "--device", "cpu",
            "--threads", "1"]
    assert cli.main(argv) == 2 and "more than the 4x" in capsys.readouterr().err
    assert cli.main([*argv, "--voxel-size", str(VOXEL)]) == 0
    assert "rescaling" not in capsys.readouterr().out  # the model's own voxel size: applied as it is
    segment_tomogram(trained[0], paths["t2"], tmp_path / "native.mrc", device=CPU, log=None)
    result = read_volume(mask)
    assert result.voxel_size == pytest.approx(VOXEL, 1e-3)
    assert np.array_equal(result.data, read_volume(tmp_path / "native.mrc").data)


def test_cli_help_mentions_every_option(capsys):
    for command, options in (("train2d", ["--tiles-per-epoch", "--remap", "--resume", "--val-tomograms"]),
                             ("segment2d", ["--probability-map", "--z-range", "--voxel-size",
                                            "--ignore-voxel-size"])):
        with pytest.raises(SystemExit) as stop:
            cli.main([command, "--help"])
        assert stop.value.code == 0
        text = capsys.readouterr().out
        for option in options:
            assert option in text


def test_a_network_no_better_than_marking_everything_is_reported(data, tmp_path):
    """The README's 2-epoch try kept 'val Dice 0.7090 (threshold 0.05)' in every epoch, the Dice of marking every
    voxel as cytosol, and wrote it as its calibrated best without a word."""
    _, paths = data
    logs = []
    train_2d([paths["t0"], paths["t1"]], [paths["m0"], paths["m1"]], tmp_path / "untrained.pt",
             tiny_config(epochs=1, tiles_per_epoch=8, learning_rate=1e-12), log=logs.append, device=CPU)
    warnings = [line for line in logs if line.startswith("warning: ")]
    assert len(warnings) == 1 and "is no better than marking every voxel as cytosol" in warnings[0]
    assert "Train longer" in warnings[0]


def test_a_trained_network_is_not_reported(trained):
    _, _, logs = trained
    assert not [line for line in logs if line.startswith("warning: ")]
