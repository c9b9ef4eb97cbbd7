"""``deepict filaments``: a mask or a probability map to an oriented filament table; refusals exit 2."""

import json

import numpy as np
import pytest

from deepict.cli.main import main
from deepict.io import read_coordinates, write_volume
from deepict.jobs import FilamentsJob, write_job
from deepict.filaments.options import FilamentOptions


def tube_mask(shape=(24, 32, 64)):
    mask = np.zeros(shape, np.int8)
    mask[10:15, 14:19, 4:60] = 1
    return mask


def test_mask_and_probability_map_and_job_file(tmp_path, capsys):
    write_volume(tmp_path / "mask.mrc", tube_mask(), 10.0)
    out = tmp_path / "filaments.csv"
    assert main(["filaments", "--mask", str(tmp_path / "mask.mrc"), "--spacing-angstrom", "40",
                 "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["filaments"] == 1 and summary["points"] == len(read_coordinates(out)) >= 12
    table = read_coordinates(out)
    assert table.voxel_size == 10.0 and table.columns["tilt"] == pytest.approx(90.0, abs=3)
    probabilities = tube_mask().astype(np.float32) * 0.8
    write_volume(tmp_path / "p.mrc", probabilities, 10.0)
    assert main(["filaments", "--probability-map", str(tmp_path / "p.mrc"), "--threshold", "0.9",
                 "--spacing-angstrom", "40", "--out", str(tmp_path / "none.csv")]) == 0
    assert len(read_coordinates(tmp_path / "none.csv")) == 0  # nothing above 0.9: an empty, valid table
    job = FilamentsJob(probability_map=str(tmp_path / "p.mrc"), threshold=0.5, out=str(tmp_path / "job.csv"),
                       tracing=FilamentOptions(spacing_angstrom=40.0))
    assert main(["filaments", "--job", str(write_job(job, tmp_path / "job.json"))]) == 0
    assert len(read_coordinates(tmp_path / "job.csv")) == len(table)


@pytest.mark.parametrize("arguments, message", [
    (["--spacing-angstrom", "5"], "smaller than a voxel"),
    (["--spacing-angstrom", "40", "--voxel-size", "13.48"], "not the 13.48 Å given with --voxel-size"),
    (["--spacing-angstrom", "40", "--join-angle", "100"], "--join-angle"),
])
def test_refusals_exit_2_with_the_fix(tmp_path, capsys, arguments, message):
    write_volume(tmp_path / "p.mrc", tube_mask().astype(np.float32), 10.0)
    code = main(["filaments", "--probability-map", str(tmp_path / "p.mrc"), "--out", str(tmp_path / "f.csv"),
                 *arguments])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "f.csv").exists()


def test_missing_input_and_a_table_given_as_mask_exit_2(tmp_path, capsys):
    assert main(["filaments", "--spacing-angstrom", "40", "--out", str(tmp_path / "f.csv")]) == 2
    assert "--mask M.mrc or --probability-map" in capsys.readouterr().err
    (tmp_path / "t.csv").write_text("x,y,z\n1,2,3\n")
    assert main(["filaments", "--mask", str(tmp_path / "t.csv"), "--spacing-angstrom", "40",
                 "--out", str(tmp_path / "f.csv")]) == 2


def test_a_tomogram_given_as_map_or_mask_is_refused_or_reported(tmp_path, capsys):
    """A tomogram given as --probability-map traced 371 junk filaments, a NaN one 1980; as --mask it traced noise
    without a word."""
    tomogram = np.random.default_rng(0).normal(size=(24, 32, 64)).astype(np.float32)
    write_volume(tmp_path / "t.mrc", tomogram, 10.0)
    base = ["filaments", "--spacing-angstrom", "40", "--out", str(tmp_path / "f.csv")]
    assert main(base + ["--probability-map", str(tmp_path / "t.mrc")]) == 2
    assert "t.mrc: is not a probability map: its values run from -" in capsys.readouterr().err
    nan = tomogram.clip(0, 1)
    nan[3, 4, 5] = np.nan
    write_volume(tmp_path / "nan.mrc", nan, 10.0)
    assert main(base + ["--probability-map", str(tmp_path / "nan.mrc")]) == 2
    assert "nan.mrc: holds NaN or infinite voxels" in capsys.readouterr().err
    assert not (tmp_path / "f.csv").exists()
    assert main(base + ["--mask", str(tmp_path / "t.mrc")]) == 0  # half of a tomogram's voxels lie above 0
    assert "warning: " in capsys.readouterr().out
