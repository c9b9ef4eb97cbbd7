"""Exports carry the orientation of each point: RELION angles and priors (+ helical columns for filaments),
Dynamo's ZXZ angles, Warp angles and copick 4x4 matrices; reading back gives the same angles."""

import json

import numpy as np
import pytest
from emtable import Table

from deepict import formats as export
from deepict.formats import PickedTomogram, TomogramInfo, copick
from deepict.io import CoordinateTable
from deepict.orientations import euler_to_matrix, euler_to_transform, relion_to_dynamo

TOMOGRAM = TomogramInfo("TS_01", (64, 48, 21), 13.48, "/data/TS_01.mrc")


def filament_picks():
    rng = np.random.default_rng(3)
    n = 6
    xyz = rng.uniform(0, 1, (n, 3)) * (np.array(TOMOGRAM.shape) - 1)
    columns = {"rot": rng.uniform(-180, 180, n), "tilt": rng.uniform(1, 179, n), "psi": rng.uniform(-180, 180, n),
               "filament_id": np.array([1, 1, 1, 2, 2, 2]), "arc_length_angstrom": np.array([0, 40, 80, 0, 40, 80.0])}
    return [PickedTomogram(TOMOGRAM, CoordinateTable(xyz, columns, TOMOGRAM.voxel_size))]


@pytest.mark.parametrize("fmt", ["relion4", "relion5"])
def test_relion_star_of_filaments_has_priors_and_helical_columns(tmp_path, fmt):
    picks = filament_picks()
    out = tmp_path / "particles.star"
    export.export_coordinates(fmt, out, picks)
    table = Table(fileName=str(out), tableName="particles")
    names = table.getColumnNames()
    for column in ("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi", "rlnAngleTiltPrior", "rlnAnglePsiPrior",
                   "rlnHelicalTubeID", "rlnHelicalTrackLengthAngst"):
        assert column in names
    rows = list(table)
    source = picks[0].coordinates.columns
    assert [r.rlnAngleTilt for r in rows] == pytest.approx(source["tilt"], abs=1e-4)
    assert [r.rlnAngleTiltPrior for r in rows] == pytest.approx(source["tilt"], abs=1e-4)
    assert [r.rlnAnglePsiPrior for r in rows] == pytest.approx(source["psi"], abs=1e-4)
    assert [int(r.rlnHelicalTubeID) for r in rows] == [1, 1, 1, 2, 2, 2]
    assert [r.rlnHelicalTrackLengthAngst for r in rows] == pytest.approx(source["arc_length_angstrom"])
    back = export.read_exported(fmt, out, [TOMOGRAM])[0]
    assert np.allclose(back.angles(), picks[0].coordinates.angles(), atol=1e-4)
    assert back.columns["filament_id"].tolist() == [1, 1, 1, 2, 2, 2]


def test_relion4_puts_every_segment_of_a_filament_in_one_half_set(tmp_path):
    """rlnRandomSubset alternated segment by segment along a tube: overlapping segments of one filament in both
    halves correlate the half-maps and inflate the FSC. Tubes alternate, over the tomograms too."""
    first = filament_picks()[0]
    second = PickedTomogram(TomogramInfo("TS_02", TOMOGRAM.shape, TOMOGRAM.voxel_size, "/data/TS_02.mrc"),
                            first.coordinates)
    plain = PickedTomogram(TomogramInfo("TS_03", TOMOGRAM.shape, TOMOGRAM.voxel_size, "/data/TS_03.mrc"),
                           CoordinateTable(np.array([[1.0, 2, 3], [4, 5, 6], [7, 8, 9]]), {}, TOMOGRAM.voxel_size))
    export.export_coordinates("relion4", tmp_path / "p.star", [first, second, plain])
    rows = list(Table(fileName=str(tmp_path / "p.star"), tableName="particles"))
    assert [int(r.rlnRandomSubset) for r in rows] == [1, 1, 1, 2, 2, 2] + [1, 1, 1, 2, 2, 2] + [1, 2, 1]


def test_picks_without_angles_keep_the_plain_columns(tmp_path):
    xyz = np.array([[1.0, 2.0, 3.0], [10.0, 11.0, 12.0]])
    picks = [PickedTomogram(TOMOGRAM, CoordinateTable(xyz, {"score": np.ones(2)}, TOMOGRAM.voxel_size))]
    export.export_coordinates("relion4", tmp_path / "p.star", picks)
    assert Table(fileName=str(tmp_path / "p.star"), tableName="particles").getColumnNames() == export.RELION4_COLUMNS
    assert export.read_exported("relion4", tmp_path / "p.star", [TOMOGRAM])[0].angles() is None


def test_warp_and_dynamo_angles_round_trip(tmp_path):
    picks = filament_picks()
    angles = picks[0].coordinates.angles()
    export.export_coordinates("warp", tmp_path / "warp", picks)
    rows = list(Table(fileName=str(tmp_path / "warp" / "TS_01.star"), tableName=None))
    assert [r.rlnAnglePsi for r in rows] == pytest.approx(angles[:, 2], abs=1e-4)
    assert np.allclose(export.read_exported("warp", tmp_path / "warp", [TOMOGRAM])[0].angles(), angles, atol=1e-4)
    export.export_coordinates("dynamo", tmp_path / "p.tbl", picks)
    table = export.read_dynamo_table(tmp_path / "p.tbl")
    assert np.allclose(table[:, 6:9], np.stack(relion_to_dynamo(*angles.T), 1), atol=1e-4)
    back = export.read_exported("dynamo", tmp_path / "p.tbl", [TOMOGRAM])[0].angles()
    assert np.allclose(euler_to_matrix(*back.T), euler_to_matrix(*angles.T), atol=1e-5)


def test_copick_points_carry_the_rotation(tmp_path):
    picks = filament_picks()
    files = copick.write_project(tmp_path / "proj", picks, "microtubule", "deepict", "0", radius=125)
    points = json.loads(files[0].read_text())["points"]
    expected = euler_to_transform(*picks[0].coordinates.angles().T)
    assert np.allclose([p["transformation_"] for p in points], expected)
    assert json.loads(files[0].read_text())["trust_orientation"] is True
    back, _ = copick.read_picks_file(files[0], TOMOGRAM.voxel_size)
    assert np.allclose(euler_to_matrix(*back.angles().T), euler_to_matrix(*picks[0].coordinates.angles().T))


def test_a_motl_export_of_oriented_picks_says_it_drops_the_angles(tmp_path, capsys):
    """The README says exports carry orientations; motl wrote 0 without a word. The check must not refuse
    copick, whose picks carry them (it once said "Unknown export format 'copick'" for oriented picks)."""
    from deepict.cli.main import main
    from deepict.io import write_coordinates, write_volume
    picks = filament_picks()[0]
    write_coordinates(tmp_path / "f.csv", picks.coordinates)
    x, y, z = TOMOGRAM.shape
    write_volume(tmp_path / "TS_01.mrc", np.zeros((z, y, x), np.int8), TOMOGRAM.voxel_size)
    for fmt, warned in (("motl", True), ("relion4", False), ("copick", False)):
        out = tmp_path / {"motl": "motl", "relion4": "p.star", "copick": "copick"}[fmt]
        named = ["--copick-object", "microtubule"] if fmt == "copick" else []
        assert main(["export", "--coords", str(tmp_path / "f.csv"), "--tomogram", str(tmp_path / "TS_01.mrc"),
                     "--format", fmt, "--out", str(out), *named]) == 0
        assert ("orientations (rot, tilt, psi) are not written" in capsys.readouterr().err) == warned
    written = sorted((tmp_path / "copick").rglob("*.json"))
    back, _ = copick.read_picks_file([f for f in written if f.name != "copick_config.json"][0], TOMOGRAM.voxel_size)
    # (the CSV holds the angles to 1e-4 degrees)
    assert np.allclose(euler_to_matrix(*back.angles().T), euler_to_matrix(*picks.coordinates.angles().T), atol=1e-5)
