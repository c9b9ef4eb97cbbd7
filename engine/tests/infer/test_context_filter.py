"""Tests of context filtering of coordinates (deepict.infer.context_filter, ``deepict filter-context``):
each mode against a brute-force computation over every voxel, masks at other voxel sizes, empty
inputs, and the command's files and exit codes."""

from __future__ import annotations

import json

import mrcfile
import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.distance import cdist

from deepict import jobs
from deepict.cli.main import main
from deepict.conventions import CONTEXT_MODES
from deepict.infer import context_filter
from deepict.infer.context_filter import context_keeps, mask_voxels
from deepict.io import CoordinateTable, Volume, read_coordinates, read_volume, write_coordinates, write_volume

SHAPE = (18, 27, 23)  # z, y, x


def blob_mask(shape=SHAPE, seed=0, level=0.25) -> np.ndarray:
    """Blobs of every shape (thin parts, holes, touching the volume's faces)."""
    field = ndimage.gaussian_filter(np.random.default_rng(seed).normal(size=shape), 1.6)
    return (field > level * field.std()).astype(np.int8)


def random_points(count, shape=SHAPE, seed=1) -> np.ndarray:
    """Continuous x, y, z anywhere in the volume (voxel i spans i - 0.5 .. i + 0.5)."""
    return np.random.default_rng(seed).uniform(-0.5, np.array(shape[::-1]) - 0.5, (count, 3))


def surface_by_neighbours(mask: np.ndarray) -> np.ndarray:
    """Mask voxels with a face neighbour inside the volume that is not in the mask (the edges are no surface)."""
    padded = np.pad(mask, 1, constant_values=True)
    centre = padded[1:-1, 1:-1, 1:-1]
    outside_neighbour = np.zeros(mask.shape, bool)
    for axis in range(3):
        for step in (-1, 1):
            outside_neighbour |= ~np.roll(padded, step, axis=axis)[1:-1, 1:-1, 1:-1]
    return centre & outside_neighbour


def brute_force(points_xyz: np.ndarray, mask: np.ndarray, mode: str, radius: float) -> np.ndarray:
    """The module docstring's definitions over every voxel (points in the mask's voxels, radius in voxels)."""
    mask = mask > 0
    zyx = points_xyz[:, ::-1]
    voxel = tuple(np.clip(np.floor(zyx + 0.5).astype(int), 0, np.array(mask.shape) - 1).T)
    if mode == "intersection":
        return mask[voxel]
    target = mask if mode == "contact" else surface_by_neighbours(mask)
    centres = np.argwhere(target)
    if not len(centres):
        return np.zeros(len(points_xyz), bool)
    distance = np.where(target[voxel], 0.0, cdist(zyx, centres).min(axis=1))
    return distance <= radius


def volume(data, voxel_size=10.0, path="mask.mrc") -> Volume:
    return Volume(np.asarray(data), voxel_size, path)


@pytest.mark.parametrize("mode", CONTEXT_MODES)
@pytest.mark.parametrize("radius", [0.0, 1.3, 3.7])
@pytest.mark.parametrize("seed", [0, 1])
def test_each_mode_matches_brute_force(mode, radius, seed, monkeypatch):
    monkeypatch.setattr(context_filter, "BLOCK", 8)  # points in many blocks, halos across block edges
    mask = blob_mask(seed=seed)
    points = random_points(400, seed=seed + 10)
    keep = context_keeps(points, 10.0, volume(mask), 10.0, mode, radius * 10.0)
    expected = brute_force(points, mask, mode, radius)
    np.testing.assert_array_equal(keep, expected)
    assert 0 < keep.sum() < len(points)  # the case is not trivial


def test_the_modes_differ_as_documented():
    """A compartment: contact keeps its inside and its surroundings, colocalization its border only."""
    mask = np.zeros((30, 30, 30), np.int8)
    mask[5:25, 5:25, 5:25] = 1
    centre, border, near, far = [15, 15, 15], [6, 15, 15], [3, 15, 15], [0, 0, 0]
    points = np.array([centre, border, near, far], float)
    keeps = {mode: context_keeps(points, 10.0, volume(mask), 10.0, mode, 25.0).tolist() for mode in CONTEXT_MODES}
    assert keeps == {"intersection": [True, True, False, False], "contact": [True, True, True, False],
                     "colocalization": [False, True, True, False]}


@pytest.mark.parametrize("mode", CONTEXT_MODES)
def test_mask_at_another_voxel_size_matches_brute_force_in_its_voxels(mode):
    fine = blob_mask(shape=(36, 54, 46), seed=3)
    points = random_points(300, shape=SHAPE, seed=4)  # voxels of 20 Å; the mask has 10 Å (half the size)
    keep = context_keeps(points, 20.0, volume(fine), 10.0, mode, 30.0, tomogram_shape_zyx=SHAPE)
    expected = brute_force(mask_voxels(points, 20.0, 10.0), fine, mode, 3.0)
    np.testing.assert_array_equal(keep, expected)


def test_a_mask_binned_twice_keeps_the_same_points_as_the_unbinned():
    coarse = blob_mask(seed=5)
    fine = coarse.repeat(2, 0).repeat(2, 1).repeat(2, 2)  # the same region at half the voxel size
    points = np.argwhere(np.ones(SHAPE))[:, ::-1].astype(float)  # every voxel centre of the coordinates' tomogram
    at_coarse = context_keeps(points, 20.0, volume(coarse), 20.0, "intersection", 0.0)
    at_fine = context_keeps(points, 20.0, volume(fine), 10.0, "intersection", 0.0, tomogram_shape_zyx=SHAPE)
    np.testing.assert_array_equal(at_coarse, at_fine)
    np.testing.assert_array_equal(at_coarse, coarse[tuple(points[:, ::-1].astype(int).T)] > 0)


def test_label_maps_count_every_label_above_zero():
    labels = np.zeros(SHAPE, np.int16)
    labels[2:6, 2:6, 2:6] = 3
    labels[10:14, 10:14, 10:14] = 7
    labels[2:6, 10:14, 10:14] = -1
    points = np.array([[4, 4, 4], [12, 12, 12], [12, 12, 4], [20, 20, 16]], float)
    np.testing.assert_array_equal(context_keeps(points, 10.0, volume(labels), 10.0, "intersection", 0.0),
                                  [True, True, False, False])


def test_memory_mapped_masks_are_read_in_blocks_like_arrays(tmp_path, monkeypatch):
    monkeypatch.setattr(context_filter, "BLOCK", 8)
    mask = blob_mask(seed=6)
    write_volume(tmp_path / "m.mrc", mask, 10.0)
    mapped = read_volume(tmp_path / "m.mrc")
    assert isinstance(mapped.data, np.memmap)
    points = random_points(300, seed=7)
    for mode in CONTEXT_MODES:
        np.testing.assert_array_equal(context_keeps(points, 10.0, mapped, 10.0, mode, 22.0),
                                      brute_force(points, mask, mode, 2.2))


# ------------------------------------------ the command ------------------------------------------

def write_inputs(tmp_path, mask, points, voxel=10.0, mask_voxel=10.0, tomogram_shape=None):
    write_volume(tmp_path / "mask.mrc", mask, mask_voxel)
    rng = np.random.default_rng(0)
    names = np.array([f"p{i}" for i in range(len(points))], dtype=object)
    write_coordinates(tmp_path / "picks.csv", CoordinateTable(points, {"score": rng.uniform(size=len(points)).round(3),
                                                                       "name": names}, voxel))
    if tomogram_shape is not None:
        write_volume(tmp_path / "tomo.mrc", np.zeros(tomogram_shape, np.float32), voxel)
    return str(tmp_path / "picks.csv"), str(tmp_path / "mask.mrc")


def run_filter(tmp_path, *options):
    return main(["filter-context", "--coords", str(tmp_path / "picks.csv"), "--context", str(tmp_path / "mask.mrc"),
                 "--out", str(tmp_path / "kept.csv"), "--rejected", str(tmp_path / "rejected.csv"), *options])


def rows(table: CoordinateTable) -> set:
    return {tuple(table.xyz[i]) + tuple(values[i] for values in table.columns.values()) for i in range(len(table))}


@pytest.mark.parametrize("mode", CONTEXT_MODES)
def test_kept_and_rejected_are_exactly_the_input_rows(mode, tmp_path, capsys):
    mask = blob_mask(seed=8)
    points = np.round(random_points(200, seed=9), 2)
    write_inputs(tmp_path, mask, points, tomogram_shape=SHAPE)
    assert run_filter(tmp_path, "--mode", mode, "--distance-angstrom", "20",
                      "--tomogram", str(tmp_path / "tomo.mrc")) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    source = read_coordinates(tmp_path / "picks.csv")
    kept, rejected = read_coordinates(tmp_path / "kept.csv"), read_coordinates(tmp_path / "rejected.csv")
    assert (summary["kept"], summary["rejected"]) == (len(kept), len(rejected))
    assert len(kept) + len(rejected) == len(source) and rows(kept) | rows(rejected) == rows(source)
    assert list(kept.columns) == list(source.columns) == ["score", "name"]
    assert kept.voxel_size == rejected.voxel_size == 10.0
    expected = brute_force(points, mask, mode, 2.0)
    np.testing.assert_array_equal(kept.xyz, points[expected])  # input order kept
    np.testing.assert_array_equal(rejected.xyz, points[~expected])


def test_empty_mask_rejects_everything_into_valid_files(tmp_path, capsys):
    write_inputs(tmp_path, np.zeros(SHAPE, np.int8), random_points(20))
    assert run_filter(tmp_path, "--mode", "contact", "--distance-angstrom", "50") == 0
    assert json.loads(capsys.readouterr().out)["kept"] == 0
    assert len(read_coordinates(tmp_path / "kept.csv")) == 0
    assert len(read_coordinates(tmp_path / "rejected.csv")) == 20
    assert "x,y,z,score,name" in (tmp_path / "kept.csv").read_text()


@pytest.mark.parametrize("content", [
    "# voxel_size_angstrom: 10\n",
    "x,y,z,score\n",
])
def test_empty_coordinates_give_valid_empty_outputs(content, tmp_path, capsys):
    write_volume(tmp_path / "mask.mrc", blob_mask(), 10.0)
    (tmp_path / "picks.csv").write_text(content)
    assert run_filter(tmp_path, "--mode", "colocalization", "--distance-angstrom", "10") == 0
    assert json.loads(capsys.readouterr().out)["kept"] == 0
    for name in ("kept.csv", "rejected.csv"):
        assert len(read_coordinates(tmp_path / name)) == 0


def test_the_job_file_gives_what_the_options_give(tmp_path, capsys):
    write_inputs(tmp_path, blob_mask(seed=2), np.round(random_points(50, seed=3), 2))
    assert run_filter(tmp_path, "--mode", "contact", "--distance-angstrom", "15") == 0
    by_options = (tmp_path / "kept.csv").read_text()
    job = jobs.FilterContextJob(coords=str(tmp_path / "picks.csv"), context=str(tmp_path / "mask.mrc"),
                                mode="contact", distance_angstrom=15.0, out=str(tmp_path / "kept_job.csv"))
    assert main(["filter-context", "--job", jobs.write_job(job, str(tmp_path / "job.json"))]) == 0
    assert (tmp_path / "kept_job.csv").read_text() == by_options


def test_a_binned_mask_is_reconciled_by_the_voxel_sizes(tmp_path, capsys):
    coarse = blob_mask(seed=4)
    points = np.argwhere(np.ones(SHAPE))[::7, ::-1].astype(float) * 2 + 0.5  # voxels of 10 Å, mask of 20 Å
    write_inputs(tmp_path, coarse, points, voxel=10.0, mask_voxel=20.0,
                 tomogram_shape=tuple(2 * s for s in SHAPE))
    assert run_filter(tmp_path, "--tomogram", str(tmp_path / "tomo.mrc")) == 0
    kept = read_coordinates(tmp_path / "kept.csv")
    np.testing.assert_array_equal(kept.xyz, points[coarse[tuple((points[:, ::-1] // 2).astype(int).T)] > 0])


def error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_a_mask_not_covering_the_tomogram_is_refused_naming_it(tmp_path, capsys):
    write_inputs(tmp_path, blob_mask(), random_points(5), tomogram_shape=(SHAPE[0], SHAPE[1], SHAPE[2] + 10))
    assert run_filter(tmp_path, "--tomogram", str(tmp_path / "tomo.mrc")) == 2
    line = error_line(capsys)
    assert "mask.mrc" in line and "extent" in line and "Give the mask made on this tomogram" in line
    assert not (tmp_path / "kept.csv").exists() and not (tmp_path / "rejected.csv").exists()


def test_coordinates_outside_the_mask_are_refused_naming_the_mask(tmp_path, capsys):
    write_inputs(tmp_path, blob_mask(), np.array([[1.0, 1.0, 1.0], [SHAPE[2] + 3.0, 1.0, 1.0]]))
    assert run_filter(tmp_path) == 2
    line = error_line(capsys)
    assert "mask.mrc: does not cover 1 of the 2 coordinates" in line and "picks.csv" in line


def test_an_anisotropic_mask_is_refused_naming_it(tmp_path, capsys):
    write_inputs(tmp_path, blob_mask(), random_points(5))
    with mrcfile.open(tmp_path / "mask.mrc", mode="r+") as mrc:
        mrc.voxel_size = (10.0, 10.0, 20.0)
    assert run_filter(tmp_path) == 2
    line = error_line(capsys)
    assert "mask.mrc" in line and "different voxel sizes along x, y, z" in line


def test_voxel_sizes_missing_everywhere_are_asked_for(tmp_path, capsys):
    write_volume(tmp_path / "mask.mrc", blob_mask(), 0.0)
    (tmp_path / "picks.csv").write_text("x,y,z\n1,2,3\n")
    assert run_filter(tmp_path, "--mode", "contact", "--distance-angstrom", "10") == 2
    assert "--voxel-size and --context-voxel-size" in error_line(capsys)
    assert run_filter(tmp_path, "--voxel-size", "10") == 0  # the mask is then taken at the coordinates' size
    assert "taken as the coordinates'" in capsys.readouterr().err


@pytest.mark.parametrize("options, says", [
    (["--distance-angstrom", "-5", "--mode", "contact"], "distance must be 0 or more"),
])  # --voxel-size 0: tests/cli/test_voxel_size_options.py
def test_bad_parameters_exit_2_in_one_line(options, says, tmp_path, capsys):
    write_inputs(tmp_path, blob_mask(), random_points(5))
    assert run_filter(tmp_path, *options) == 2
    assert says in error_line(capsys)


def test_missing_files_and_overwriting_the_input_exit_2(tmp_path, capsys):
    write_inputs(tmp_path, blob_mask(), random_points(5))
    assert main(["filter-context", "--coords", str(tmp_path / "nope.csv"), "--context", str(tmp_path / "mask.mrc"),
                 "--out", str(tmp_path / "kept.csv")]) == 2
    assert "nope.csv: coordinate file not found" in error_line(capsys)
    assert main(["filter-context", "--coords", str(tmp_path / "picks.csv"), "--context", str(tmp_path / "mask.mrc"),
                 "--out", str(tmp_path / "picks.csv")]) == 2
    assert "is also an input of this run (--coords" in error_line(capsys)
    with pytest.raises(SystemExit) as exit_info:
        run_filter(tmp_path, "--mode", "near")
    assert exit_info.value.code == 2


@pytest.mark.parametrize("mask, points, mode, says", [
    (np.zeros(SHAPE, np.int8), random_points(5), "intersection", "has no voxel above 0 (no context)"),
    (np.ones(SHAPE, np.int8), random_points(5), "colocalization", "is above 0 everywhere: it has no surface"),
    (blob_mask(), np.zeros((0, 3)), "intersection", "picks.csv holds no coordinates: nothing to filter"),
])
def test_an_empty_result_made_by_the_inputs_says_why(mask, points, mode, says, tmp_path, capsys):
    """All three exited 0 with everything (or nothing) rejected and no word of why."""
    write_inputs(tmp_path, mask, points)
    assert run_filter(tmp_path, "--mode", mode, "--distance-angstrom", "100") == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["kept"] == 0
    assert [line for line in captured.err.splitlines() if line.startswith("warning: ")] == [
        line for line in captured.err.splitlines() if says in line]
    assert says in captured.err


def test_a_result_with_kept_coordinates_gives_no_warning(tmp_path, capsys):
    write_inputs(tmp_path, blob_mask(), random_points(50))
    assert run_filter(tmp_path) == 0
    assert "warning" not in capsys.readouterr().err
