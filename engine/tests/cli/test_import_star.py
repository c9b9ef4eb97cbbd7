"""``deepict import-star``: RELION 4/5 particles STAR files back into coordinate tables, e.g. annotations made in RELION
for ``train3d --coords``; a STAR file given where a table is read says how to convert it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deepict.io import read_coordinates
from tiny_world import make_tiny_world, run


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_tiny_world(tmp_path_factory.mktemp("world"))


@pytest.mark.parametrize("fmt, extra", [("relion5", []), ("relion4", ["--output-pixel-size", "3.37"])])
def test_an_export_comes_back_where_it_was(world, tmp_path, capsys, fmt, extra):
    star = tmp_path / "particles.star"
    code, _, err = run(capsys, "export", "--coords", world.coords, "--tomogram", world.tomo, "--format", fmt,
                       "--out", star, *extra)
    assert code == 0, err
    code, out, err = run(capsys, "import-star", "--star", star, "--tomogram", world.tomo, "--out", tmp_path / "back")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["format"] == fmt and summary["particles"] == {"tomo": len(world.truth)}
    back = read_coordinates(tmp_path / "back" / "tomo.csv")
    np.testing.assert_allclose(np.sort(back.xyz, axis=0), np.sort(world.truth, axis=0), atol=1e-3)
    # The table trains, evaluates and exports as any: evaluate scores it against the truth as perfect.
    code, out, err = run(capsys, "evaluate", "--pred", tmp_path / "back" / "tomo.csv", "--gt", world.coords)
    assert code == 0 and json.loads(out)["particles"]["f1"] == pytest.approx(1.0), out + err


def test_particles_of_another_tomogram_are_named_with_the_fix(world, tmp_path, capsys):
    star = tmp_path / "particles.star"
    run(capsys, "export", "--coords", world.coords, "--tomogram", world.tomo, "--tomo-name", "TS_07", "--format",
        "relion5", "--out", star)
    code, _, err = run(capsys, "import-star", "--star", star, "--tomogram", world.tomo, "--out", tmp_path / "p.csv")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert "TS_07" in lines[0] and "'tomo'" in lines[0] and "--tomo-name" in lines[0]
    assert not (tmp_path / "p.csv").exists()
    code, _, err = run(capsys, "import-star", "--star", star, "--tomogram", world.tomo, "--tomo-name", "TS_07",
                       "--out", tmp_path / "p.csv")
    assert code == 0 and len(read_coordinates(tmp_path / "p.csv")) == len(world.truth), err


def test_a_star_file_given_for_a_table_says_how_to_convert_it(world, tmp_path, capsys):
    star = tmp_path / "particles.star"
    run(capsys, "export", "--coords", world.coords, "--tomogram", world.tomo, "--format", "relion4", "--out", star)
    for argv in (["evaluate", "--pred", star, "--gt", world.coords],
                 ["export", "--coords", star, "--tomogram", world.tomo, "--format", "warp", "--out", tmp_path / "w"]):
        code, _, err = run(capsys, *argv)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1, err
        assert "is a STAR file (RELION), not a coordinate table" in lines[0] and "deepict import-star" in lines[0]
