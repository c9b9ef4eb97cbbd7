"""Rescaling tomograms to a model's voxel size: the resampling itself, its streaming, and pick/segment3d through it."""

from __future__ import annotations

import numpy as np
import pytest

from deepict.cli.main import main
from deepict.errors import InputFileError
from deepict.infer.rescale import resample_array, resample_volume, rescaled_shape, to_input_voxels
from deepict.infer.voxel_size import check_model_voxel_size, rescale_target
from deepict.io import CoordinateTable, read_coordinates, read_volume, write_coordinates, write_volume
from deepict.nn.model_files import read_model_info
from deepict.synthetic import PhantomConfig, make_phantom, write_phantom

pytestmark = pytest.mark.usefixtures("one_torch_thread")

VOXEL = 13.48
INFERENCE = ["--window", "32", "--margin", "4", "--batch-size", "4", "--device", "cpu"]


def band_limited_volume(shape_zyx, seed=0) -> np.ndarray:
    """A sum of cosines on the voxel-centre grid, well below every axis's Nyquist frequency."""
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*[(np.arange(n) + 0.5) / n for n in shape_zyx], indexing="ij")
    volume = np.zeros(shape_zyx, dtype=np.float32)
    for _ in range(6):
        kz, ky, kx = rng.integers(0, 5, size=3)
        volume += np.cos(np.pi * kz * z) * np.cos(np.pi * ky * y) * np.cos(np.pi * kx * x) * rng.normal()
    return volume


@pytest.mark.parametrize("factor", [13.48 / 10, 13.48 / 20, 3.9])
def test_round_trip_keeps_a_band_limited_signal(factor):
    volume = band_limited_volume((20, 24, 28))
    there = resample_array(volume, rescaled_shape(volume.shape, factor))
    back = resample_array(there, volume.shape)
    assert np.abs(back - volume).max() < 1e-4 * np.abs(volume).max()


def test_downsampling_removes_what_the_new_grid_cannot_hold():
    x = np.arange(64)
    fine = np.cos(np.pi * 40 * (x + 0.5) / 64).astype(np.float32)  # above the Nyquist frequency of 32 samples
    assert np.abs(resample_array(fine[None, None], (1, 1, 32))).max() < 1e-5


def test_streamed_resampling_equals_the_whole_array_in_memory(tmp_path):
    volume = band_limited_volume((18, 22, 26), seed=3) + np.random.default_rng(1).normal(size=(18, 22, 26))
    source = tmp_path / "in.mrc"
    write_volume(source, volume.astype(np.float32), 10.0)
    lines = []
    for shape in [(24, 30, 35), (9, 11, 13)]:
        out = tmp_path / f"out{shape[0]}.mrc"
        # Blocks of a few hundred voxels: many y blocks and z slabs, read from the memory map with file reads.
        resample_volume(read_volume(source).data, shape, out, 7.5, block_voxels=600, log=lines.append)
        result = read_volume(out)
        assert result.data.shape == shape and result.voxel_size == pytest.approx(7.5)
        np.testing.assert_allclose(result.data, resample_array(volume, shape), atol=1e-4)
    assert any("blocks" in line for line in lines)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no scratch left


def test_positions_map_back_to_the_input_voxels():
    shape = (40, 40, 40)
    z, y, x = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    centre = np.array([17.3, 21.6, 12.2])  # x, y, z
    blob = np.exp(-((x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2) / (2 * 3.0 ** 2))
    for factor in (13.48 / 10, 13.48 / 20):
        small = resample_array(blob, rescaled_shape(shape, factor))
        weights = np.clip(small, 0, None) ** 4
        grid = np.meshgrid(*[np.arange(n) for n in small.shape], indexing="ij")
        peak = np.array([(g * weights).sum() / weights.sum() for g in grid[::-1]])
        mapped = to_input_voxels(peak[None], shape, small.shape)[0]
        assert np.abs(mapped - centre).max() < 0.3


def test_what_cannot_work_is_refused_and_the_rest_rescaled():
    assert rescale_target(13.48, 13.48 * 1.04) is None  # within the tolerance: as it is
    assert rescale_target(10.0, 13.48) == pytest.approx(13.48)
    assert rescale_target(10.0, 13.48, ignore=True) is None
    assert check_model_voxel_size(10.0, 13.48, "t.mrc") is None
    assert check_model_voxel_size(13.48 * 4, 13.48, "t.mrc") is None
    for far in (13.48 * 4.2, 13.48 / 4.2):
        with pytest.raises(InputFileError, match="more than the 4x") as error:
            check_model_voxel_size(far, 13.48, "t.mrc", "m.pt")
        assert "binvol" in str(error.value) and "t.mrc" in str(error.value)
    assert "as is" in check_model_voxel_size(13.48 * 5, 13.48, "t.mrc", ignore=True)


# --------------------------------------------------------------------------------------------
# pick and segment3d on a rescaled copy of a phantom
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    phantom = make_phantom(PhantomConfig(shape_zyx=(32, 48, 48), seed=4, n_ribosomes=6, n_fas=1, n_distractors=2,
                                         n_vesicles=1, n_sheets=0))
    return write_phantom(phantom, tmp_path_factory.mktemp("phantom"), "tomo")


@pytest.fixture(scope="module")
def model(phantom, tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "ribo.pt"
    assert main(["train3d", "--tomograms", phantom["tomogram"], "--coords", phantom["ribosome"],
                 "--class-name", "ribosome", "--radius", "4", "--out", str(out), "--epochs", "3",
                 "--iterations-per-epoch", "3", "--patch-size", "16", "--depth", "1", "--initial-features", "4",
                 "--batch-size", "2", "--device", "cpu", "--seed", "1"]) == 0
    return out


def test_picks_on_a_rescaled_copy_agree_with_the_native_picks(model, phantom, tmp_path, capsys):
    native = read_volume(phantom["tomogram"])
    common = ["--model", str(model), "--threshold", "0.2", "--min-size", "1", "--min-distance", "0"] + INFERENCE
    assert main(["pick", "--tomogram", phantom["tomogram"], "--out", str(tmp_path / "native.csv"),
                 "--probability-map", str(tmp_path / "native.mrc")] + common) == 0
    finer = 10.0  # the copy has more voxels; pick rescales it back to the model's 13.48 Å
    shape = rescaled_shape(native.data.shape, VOXEL / finer)
    copy = tmp_path / "copy.mrc"
    write_volume(copy, resample_array(native.data, shape), finer)
    capsys.readouterr()
    # --min-size in the copy's voxels: the native 1-voxel floor scaled by the voxel volume.
    assert main(["pick", "--tomogram", str(copy), "--out", str(tmp_path / "copy.csv"),
                 "--probability-map", str(tmp_path / "copy_map.mrc")] + common) == 0
    assert "from 10 Å to the model's 13.48 Å" in capsys.readouterr().out
    copy_map = read_volume(tmp_path / "copy_map.mrc")
    assert copy_map.data.shape == shape and copy_map.voxel_size == pytest.approx(finer)
    assert 0 <= copy_map.data.min() and copy_map.data.max() <= 1
    # The map given back, brought to the native grid, is the native map.
    native_map = read_volume(tmp_path / "native.mrc").data
    # Resampling there and back moves a few single voxels (one next to a face) by about 0.05, to either side
    # of it with the thread count or the precision (fp32 too); 99.9 % of them move by less than 0.013.
    difference = np.abs(np.clip(resample_array(copy_map.data, native.data.shape), 0, 1) - native_map)
    assert np.quantile(difference, 0.999) < 0.025 and difference.max() < 0.1
    native_picks = read_coordinates(tmp_path / "native.csv")
    copy_picks = read_coordinates(tmp_path / "copy.csv")
    assert copy_picks.voxel_size == pytest.approx(finer) and len(native_picks) > 0
    mapped = copy_picks.xyz * finer / VOXEL  # positions in Å, in native voxels
    distances = np.linalg.norm(mapped[:, None] - native_picks.xyz[None], axis=2).min(axis=1)
    assert np.mean(distances <= 1.5) >= 0.8, distances


def test_segment3d_mask_has_the_input_size_and_voxel_size(model, phantom, tmp_path, capsys):
    coarse = 20.0
    native = read_volume(phantom["tomogram"])
    shape = rescaled_shape(native.data.shape, VOXEL / coarse)
    copy = tmp_path / "coarse.mrc"
    write_volume(copy, resample_array(native.data, shape), coarse)
    mask = tmp_path / "mask.mrc"
    assert main(["segment3d", "--model", str(model), "--tomogram", str(copy), "--out", str(mask),
                 "--threshold", "0.2"] + INFERENCE) == 0
    result = read_volume(mask)
    assert result.data.shape == shape and result.voxel_size == pytest.approx(coarse)
    assert result.data.dtype == np.int8 and set(np.unique(result.data)) <= {0, 1}
    assert "factor 1.48" in capsys.readouterr().out


def test_training_on_tomograms_at_two_voxel_sizes(phantom, tmp_path, capsys):
    native = read_volume(phantom["tomogram"])
    finer = 10.0
    shape = rescaled_shape(native.data.shape, VOXEL / finer)
    copy, copy_csv = tmp_path / "copy.mrc", tmp_path / "copy.csv"
    write_volume(copy, resample_array(native.data, shape), finer)
    truth = read_coordinates(phantom["ribosome"])
    write_coordinates(copy_csv, CoordinateTable(to_input_voxels(truth.xyz, shape, native.data.shape), {}, finer))
    tiny = ["--class-name", "ribosome", "--radius", "4", "--epochs", "1", "--iterations-per-epoch", "1",
            "--patch-size", "16", "--depth", "1", "--initial-features", "2", "--batch-size", "2", "--device", "cpu"]
    model = tmp_path / "mixed.pt"
    assert main(["train3d", "--tomograms", phantom["tomogram"], str(copy), "--coords", phantom["ribosome"],
                 str(copy_csv), "--out", str(model)] + tiny) == 0
    out = capsys.readouterr().out
    assert "copy.mrc from 10 Å to 13.48 Å/voxel" in out
    assert read_model_info(model).voxel_size == pytest.approx(VOXEL)  # the first tomogram's
    at_ten = tmp_path / "at10.pt"
    assert main(["train3d", "--tomograms", phantom["tomogram"], str(copy), "--coords", phantom["ribosome"],
                 str(copy_csv), "--training-voxel-size", "10", "--out", str(at_ten)] + tiny) == 0
    assert "tomo.mrc from 13.48 Å to 10 Å/voxel" in capsys.readouterr().out
    assert read_model_info(at_ten).voxel_size == pytest.approx(finer)


def test_rescaled_training_labels_follow_the_tomogram(phantom, tmp_path):
    from deepict.train.data3d import load_training_tomograms
    native, truth = read_volume(phantom["tomogram"]), read_coordinates(phantom["ribosome"])
    coarse = 20.0
    shape = rescaled_shape(native.data.shape, VOXEL / coarse)
    copy, copy_csv, mask = tmp_path / "copy.mrc", tmp_path / "copy.csv", tmp_path / "mask.mrc"
    write_volume(copy, resample_array(native.data, shape), coarse)
    write_coordinates(copy_csv, CoordinateTable(to_input_voxels(truth.xyz, shape, native.data.shape), {}, coarse))
    spheres = load_training_tomograms([phantom["tomogram"], str(copy)], coords=[[phantom["ribosome"], str(copy_csv)]],
                                      radii=[3], log=lambda line: None)
    assert [t.voxel_size for t in spheres] == pytest.approx([VOXEL, VOXEL])
    back = rescaled_shape(shape, coarse / VOXEL)  # the native shape, give or take the rounding of each way
    assert spheres[1].data.shape == back == spheres[1].targets.shape[1:]
    assert np.abs(np.subtract(back, native.data.shape)).max() <= 1
    np.testing.assert_allclose(spheres[1].label_points_zyx, spheres[0].label_points_zyx, atol=1.5)
    native_mask = tmp_path / "native_mask.mrc"
    write_volume(native_mask, spheres[0].targets[0].astype(np.int8), VOXEL)
    write_volume(mask, (resample_array(spheres[0].targets[0], shape) > 0.5).astype(np.int8), coarse)
    masks = load_training_tomograms([phantom["tomogram"], str(copy)], masks=[[str(native_mask), str(mask)]],
                                    log=lambda line: None)
    assert masks[1].targets.shape == spheres[1].targets.shape
    overlap = np.logical_and(spheres[1].targets[0], masks[1].targets[0]).sum() / spheres[1].targets[0].sum()
    assert overlap > 0.7, overlap


def test_2d_training_rescales_a_tomogram_at_another_voxel_size_with_its_mask(tmp_path):
    from deepict.train.config import Train2DConfig
    from deepict.train.data2d import load_training_slices
    rng = np.random.default_rng(0)
    z, y, x = np.meshgrid(np.arange(12), np.arange(40), np.arange(40), indexing="ij")
    mask = ((y - 20) ** 2 + (x - 18) ** 2 < 100).astype(np.int8)
    paths = []
    for name, size, factor in (("a", VOXEL, 1.0), ("b", 10.0, VOXEL / 10.0)):
        shape = rescaled_shape(mask.shape, factor)
        tomogram = resample_array(mask + 0.3 * rng.normal(size=mask.shape), shape)
        write_volume(tmp_path / f"{name}.mrc", tomogram, size)
        write_volume(tmp_path / f"{name}_mask.mrc", (resample_array(mask, shape) > 0.5).astype(np.int8), size)
        paths.append((str(tmp_path / f"{name}.mrc"), str(tmp_path / f"{name}_mask.mrc")))
    lines = []
    train, val, voxel_size = load_training_slices([p[0] for p in paths], [p[1] for p in paths], Train2DConfig(),
                                                  lines.append)
    assert voxel_size == pytest.approx(VOXEL)
    assert any("b.mrc from 10 Å to 13.48 Å/voxel" in line for line in lines)
    for part in train + val:
        assert part.images.shape[1:] == (40, 40) == part.masks.shape[1:], part.name
    overlap = [np.mean(part.masks[0] == mask[0]) for part in train + val]
    assert min(overlap) > 0.97, overlap

    # A chosen training voxel size: both are rescaled to it, the first one too.
    train, val, voxel_size = load_training_slices([p[0] for p in paths], [p[1] for p in paths], Train2DConfig(),
                                                  lines.append, training_voxel_size=10.0)
    assert voxel_size == 10.0
    assert any("a.mrc from 13.48 Å to 10 Å/voxel" in line for line in lines)
    assert {part.images.shape[1:] for part in train + val} == {rescaled_shape(mask.shape, VOXEL / 10.0)[1:]}
