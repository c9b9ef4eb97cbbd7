"""A voxel or pixel size given on the command line is a finite number above 0: ``nan`` passed into model files
(a later traceback) and coordinate tables (every row NaN, exit 0)."""

from __future__ import annotations

import pytest

from deepict.cli.main import main
from tiny_world import run, untrained_model


@pytest.mark.parametrize("value", ["nan", "inf", "0", "-3"])
@pytest.mark.parametrize("argv, option", [
    (["import-model", "m.pth", "--out", "x.pt"], "--voxel-size"),
    (["import-picks", "--copick", "c.json", "--run", "T", "--object", "o", "--user-id", "u", "--session-id", "0",
      "--out", "p"], "--voxel-size"),
    (["export", "--coords", "p.csv", "--tomogram", "t.mrc", "--format", "relion4", "--out", "p.star"],
     "--output-pixel-size"),
    (["import-star", "--star", "p.star", "--tomogram", "t.mrc", "--out", "p"], "--voxel-size"),
    (["import-star", "--star", "p.star", "--tomogram", "t.mrc", "--out", "p"], "--pixel-size"),
    (["pick", "--model", "m.pt", "--tomogram", "t.mrc", "--out", "p.csv"], "--voxel-size"),
    (["segment2d", "--model", "m.pt", "--tomogram", "t.mrc", "--out", "m.mrc"], "--voxel-size"),
    (["filter-context", "--coords", "p.csv", "--context", "c.mrc", "--out", "k.csv"], "--context-voxel-size"),
    (["train2d", "--tomograms", "t.mrc", "--masks", "m.mrc", "--out", "m.pt"], "--training-voxel-size"),
])
def test_a_voxel_size_that_is_no_size_is_refused_before_anything_runs(tmp_path, capsys, monkeypatch, argv, option,
                                                                      value):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:  # argparse's refusal
        main([*argv, option, value])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and f"argument {option}: must be a finite number > 0, not {value}" in err
    assert "Traceback" not in err and list(tmp_path.iterdir()) == []


def test_import_model_refuses_a_voxel_size_for_its_own_model_files(tmp_path, capsys):
    """A model of this program knows its voxel size: --voxel-size 10 was silently ignored."""
    model = untrained_model(tmp_path / "m.pt")
    code, _, err = run(capsys, "import-model", model, "--voxel-size", "10", "--out", tmp_path / "copy.pt")
    assert code == 2 and "trained at 13.48 Å: --voxel-size (10 Å) is for DeePiCt checkpoints (.pth)" in err
    assert not (tmp_path / "copy.pt").exists()
