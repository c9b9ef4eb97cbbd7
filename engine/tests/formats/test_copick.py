"""copick projects: our writer and reader, and both against the real copick library.

The real copick needs numpy >= 2, so it lives in its own environment (``bash scripts/copick-env.sh``
makes ``.venv-copick``) and runs here in a subprocess. Without that environment those tests skip,
unless CI=true: then they fail, because CI must run them.
"""

import importlib.util
import json
import os
import subprocess
import textwrap
from pathlib import Path

import mrcfile
import numpy as np
import pytest

from deepict.cli.main import main
from deepict.errors import InputFileError, ParameterError
from deepict.formats import copick
from deepict.io import CoordinateTable, read_coordinates, write_coordinates

REPOSITORY = Path(__file__).resolve().parents[3]
COPICK_PYTHON = REPOSITORY / ".venv-copick" / "bin" / "python"
VOXEL = 13.48
TOLERANCE_ANGSTROM = 1e-3


@pytest.fixture
def copick_python():
    if not COPICK_PYTHON.exists():
        message = f"{COPICK_PYTHON} is missing: run 'bash scripts/copick-env.sh' to test against the real copick"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must test against the real copick: {message}")
        pytest.skip(message)
    return str(COPICK_PYTHON)


def run_copick(python, script: str, *args) -> str:
    result = subprocess.run([python, "-c", textwrap.dedent(script), *map(str, args)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def picks_table(n=5, seed=0, voxel_size=VOXEL):
    rng = np.random.default_rng(seed)
    return CoordinateTable(rng.uniform(0, 60, (n, 3)).round(2), {"score": rng.uniform(0, 1, n)},
                           voxel_size=voxel_size)


def write_tomogram(path, shape_zyx=(64, 64, 64), voxel_size=VOXEL):
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.zeros(shape_zyx, np.float32))
        mrc.voxel_size = voxel_size
    return path


# ------------------------------------------------------------------------------------------------
# ours -> ours
# ------------------------------------------------------------------------------------------------

def test_round_trip_keeps_voxels_scores_and_reads_at_another_voxel_size(tmp_path):
    table = picks_table()
    written = copick.write_picks(tmp_path / "proj", "TS_01", "ribosome", "deepict", "0", table, VOXEL, radius=150)
    assert written == tmp_path / "proj" / "ExperimentRuns" / "TS_01" / "Picks" / "deepict_0_ribosome.json"
    back = copick.read_picks(tmp_path / "proj", "TS_01", "ribosome", "deepict", "0", VOXEL)
    np.testing.assert_allclose(back.xyz, table.xyz, atol=1e-9)
    np.testing.assert_allclose(back.columns["score"], table.columns["score"])
    assert back.voxel_size == VOXEL
    binned = copick.read_picks(tmp_path / "proj" / copick.CONFIG_NAME, "TS_01", "ribosome", "deepict", "0", 2 * VOXEL)
    np.testing.assert_allclose(binned.xyz, table.xyz / 2, atol=1e-9)
    config = copick.read_config(tmp_path / "proj")
    assert config["pickable_objects"] == [{"name": "ribosome", "is_particle": True, "label": 1,
                                           "color": [100, 100, 100, 255], "radius": 150.0}]
    assert copick.runs(tmp_path / "proj") == ["TS_01"]


def test_a_second_object_extends_the_config_with_the_next_label(tmp_path):
    copick.write_picks(tmp_path, "TS_01", "ribosome", "deepict", "0", picks_table(), VOXEL)
    copick.write_picks(tmp_path, "TS_01", "fas", "deepict", "0", picks_table(seed=1), VOXEL, radius=120)
    copick.write_picks(tmp_path, "TS_02", "ribosome", "deepict", "0", picks_table(seed=2), VOXEL)
    objects = copick.read_config(tmp_path)["pickable_objects"]
    assert [(o["name"], o["label"]) for o in objects] == [("ribosome", 1), ("fas", 2)]
    assert copick.runs(tmp_path) == ["TS_01", "TS_02"]


def test_orientations_shift_the_centre_as_copick_defines_it(tmp_path):
    table = picks_table(n=2)
    matrices = np.tile(np.eye(4), (2, 1, 1))
    matrices[1, :3, 3] = [VOXEL, 0, -2 * VOXEL]  # a shift of (+1, 0, -2) voxels in Å
    path = copick.write_picks(tmp_path, "TS_01", "ribosome", "deepict", "0", table, VOXEL, transformations=matrices)
    back, read_matrices = copick.read_picks_file(path, VOXEL)
    np.testing.assert_allclose(read_matrices, matrices)
    np.testing.assert_allclose(back.xyz, table.xyz + [[0, 0, 0], [1, 0, -2]], atol=1e-9)
    assert json.loads(path.read_text())["trust_orientation"] is True


def test_refusals_name_the_fix(tmp_path):
    with pytest.raises(ParameterError, match="hyphen"):
        copick.write_picks(tmp_path, "TS_01", "fatty_acid_synthase", "deepict", "0", picks_table(), VOXEL)
    copick.write_picks(tmp_path, "TS_01", "ribosome", "deepict", "0", picks_table(), VOXEL)
    with pytest.raises(InputFileError, match="deepict_0_ribosome"):
        copick.read_picks(tmp_path, "TS_01", "ribosome", "someone", "0", VOXEL)
    with pytest.raises(InputFileError, match="no copick config"):
        copick.read_config(tmp_path / "elsewhere")
    config = copick.read_config(tmp_path)
    config["overlay_root"] = "s3://bucket/project"
    (tmp_path / copick.CONFIG_NAME).write_text(json.dumps(config))
    with pytest.raises(InputFileError, match="Copy the project locally"):
        copick.roots(tmp_path)


def test_cli_export_and_import_round_trip_per_class(tmp_path, capsys):
    tomogram = write_tomogram(tmp_path / "TS_01.mrc")
    table = picks_table(n=6)
    table.columns["class"] = np.array(["ribosome", "fas"] * 3, dtype=object)
    write_coordinates(tmp_path / "picks.csv", table)
    project = tmp_path / "project"
    assert main(["export", "--coords", str(tmp_path / "picks.csv"), "--tomogram", str(tomogram),
                 "--format", "copick", "--out", str(project), "--copick-user-id", "tester"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert len(summary["files"]) == 3 and summary["particles"] == 6  # the config and one picks file per class
    for name in ("ribosome", "fas"):
        out = tmp_path / f"{name}.csv"
        assert main(["import-picks", "--copick", str(project), "--run", "TS_01", "--object", name,
                     "--user-id", "tester", "--session-id", "0", "--voxel-size", str(VOXEL), "--out", str(out)]) == 0
        back = read_coordinates(out)
        rows = table.columns["class"] == name
        np.testing.assert_allclose(back.xyz, table.xyz[rows], atol=1e-9)
        assert back.voxel_size == pytest.approx(VOXEL)
    capsys.readouterr()
    assert main(["export", "--coords", str(tmp_path / "picks.csv"), "--tomogram", str(tomogram), "--format",
                 "copick", "--out", str(project), "--output-pixel-size", "3"]) == 2
    assert "does not apply" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------
# against the real copick
# ------------------------------------------------------------------------------------------------

READ_WITH_COPICK = """
    import json, sys
    import copick
    root = copick.from_file(sys.argv[1])
    result = {}
    for run in root.runs:
        for picks in run.get_picks(user_id=sys.argv[2], session_id=sys.argv[3]):
            result[f"{run.name}/{picks.pickable_object_name}"] = [
                [p.location.x, p.location.y, p.location.z, p.score] for p in picks.points]
    print(json.dumps({"picks": result, "objects": {o.name: o.radius for o in root.pickable_objects}}))
"""

WRITE_WITH_COPICK = """
    import json, sys
    import numpy as np
    import copick
    from copick.models import CopickLocation, CopickPoint
    root = copick.from_file(sys.argv[1])
    points = json.loads(sys.argv[2])
    run = root.new_run("TS_07")
    picks = run.new_picks(object_name="ribosome", user_id="annotator", session_id="3")
    shifted = np.eye(4)
    shifted[:3, 3] = [2.0, -1.0, 0.5]
    picks.points = [CopickPoint(location=CopickLocation(x=x, y=y, z=z), score=0.5,
                                transformation_=(shifted if i == 0 else np.eye(4)).tolist())
                    for i, (x, y, z) in enumerate(points)]
    picks.store()
"""


def test_copick_reads_what_we_write(tmp_path, copick_python):
    tables = {"TS_01": picks_table(seed=3), "TS_02": picks_table(n=3, seed=4)}
    for run, table in tables.items():
        copick.write_picks(tmp_path, run, "ribosome", "deepict", "0", table, VOXEL, radius=150)
    config = copick.config_path(tmp_path)
    seen = json.loads(run_copick(copick_python, READ_WITH_COPICK, config, "deepict", "0"))
    assert seen["objects"] == {"ribosome": 150.0}
    assert sorted(seen["picks"]) == ["TS_01/ribosome", "TS_02/ribosome"]
    for run, table in tables.items():
        points = np.array(seen["picks"][f"{run}/ribosome"])
        np.testing.assert_allclose(points[:, :3], table.xyz * VOXEL, atol=TOLERANCE_ANGSTROM)
        np.testing.assert_allclose(points[:, 3], table.columns["score"], atol=1e-6)


def test_we_read_what_copick_writes(tmp_path, copick_python):
    copick.write_picks(tmp_path, "TS_01", "ribosome", "deepict", "0", picks_table(), VOXEL)  # a project copick opens
    angstrom = np.array([[100.0, 250.5, 33.25], [13.48, 26.96, 40.44], [0.0, 500.0, 1000.0]])
    run_copick(copick_python, WRITE_WITH_COPICK, copick.config_path(tmp_path), json.dumps(angstrom.tolist()))
    back = copick.read_picks(tmp_path, "TS_07", "ribosome", "annotator", "3", VOXEL)
    expected = angstrom.copy()
    expected[0] += [2.0, -1.0, 0.5]  # copick: centre = location + the transformation's shift
    np.testing.assert_allclose(back.xyz * VOXEL, expected, atol=TOLERANCE_ANGSTROM)
    np.testing.assert_allclose(back.columns["score"], 0.5)


def test_a_runs_tomogram_is_found_by_voxel_spacing_and_type(tmp_path):
    copick.write_picks(tmp_path, "TS_01", "ribosome", "deepict", "0", picks_table(), VOXEL)
    zarr_folder = tmp_path / "ExperimentRuns" / "TS_01" / "VoxelSpacing13.480" / "wbp.zarr"
    zarr_folder.mkdir(parents=True)
    assert copick.tomogram_path(tmp_path, "TS_01", VOXEL, "wbp") == zarr_folder
    with pytest.raises(InputFileError, match="VoxelSpacing"):
        copick.tomogram_path(tmp_path, "TS_01", 10.0, "wbp")
    if importlib.util.find_spec("zarr") is None:
        with pytest.raises(ParameterError, match=r"engine\[zarr\]"):
            copick.read_tomogram(zarr_folder)


WRITE_TOMOGRAM_WITH_COPICK = """
    import sys
    import numpy as np
    import copick
    root = copick.from_file(sys.argv[1])
    data = np.arange(16 * 24 * 32, dtype=np.float32).reshape(16, 24, 32)  # z, y, x
    root.get_run("TS_01").new_voxel_spacing(10.0).new_tomogram("wbp").from_numpy(data)
"""

READ_LEVEL_ZERO = """
    import sys
    import numpy as np
    import zarr
    level = np.asarray(zarr.open(sys.argv[1], mode="r")["0"][:])
    print(level.shape, float(level[3, 5, 7]))
"""


def test_we_find_the_tomogram_copick_writes_where_read_tomogram_reads_it(tmp_path, copick_python):
    copick.write_picks(tmp_path, "TS_01", "ribosome", "deepict", "0", picks_table(), VOXEL)
    run_copick(copick_python, WRITE_TOMOGRAM_WITH_COPICK, copick.config_path(tmp_path))
    path = copick.tomogram_path(tmp_path, "TS_01", 10.0, "wbp")
    assert path.name == "wbp.zarr" and path.parent.name == "VoxelSpacing10.000"
    # read_tomogram's access (level "0" of the OME-Zarr group, z y x), run where zarr is installed
    assert run_copick(copick_python, READ_LEVEL_ZERO, path).strip() == f"(16, 24, 32) {float(3 * 24 * 32 + 5 * 32 + 7)}"
