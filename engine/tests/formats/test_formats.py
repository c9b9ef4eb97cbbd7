"""Tests of deepict.formats and the ``deepict export`` command."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from emtable import Table

from deepict import formats as export
from deepict.formats import staging, star
from deepict.cli.main import main
from deepict.errors import InputFileError, ParameterError
from deepict.formats import PickedTomogram, TomogramInfo
from deepict.formats.copick import COPICK_FORMAT
from deepict.io import CoordinateTable, read_coordinates, write_coordinates, write_volume

TOLERANCE = 0.01  # voxels


def _picks(seed=0, n=(7, 4)):
    rng = np.random.default_rng(seed)
    tomo_a = TomogramInfo("TS_01", (64, 48, 21), 13.48, "/data/TS_01.mrc")
    tomo_b = TomogramInfo("TS_02", (65, 47, 20), 13.48, "/data/TS_02.mrc")
    picks = []
    for tomogram, count in zip((tomo_a, tomo_b), n):
        xyz = rng.uniform(0, 1, (count, 3)) * (np.array(tomogram.shape) - 1)
        columns = {"score": np.round(rng.uniform(1, 500, count), 3), "class": rng.integers(1, 4, count)}
        picks.append(PickedTomogram(tomogram, CoordinateTable(xyz, columns, tomogram.voxel_size)))
    return picks


def _out(tmp_path, fmt):
    return {"relion4": tmp_path / "particles.star", "relion5": tmp_path / "particles5.star",
            "warp": tmp_path / "warp", "dynamo": tmp_path / "particles.tbl", "motl": tmp_path / "motl"}[fmt]


# ------------------------------------------------------------------------------------------------
# round trips
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", export.FORMATS)
@pytest.mark.parametrize("output_pixel_size", [None, 3.37, 5.1])
def test_round_trip_within_a_hundredth_of_a_voxel(tmp_path, fmt, output_pixel_size):
    picks = _picks()
    out = _out(tmp_path, fmt)
    if fmt == "dynamo" and output_pixel_size is not None:  # the .doc points at the tomograms: their voxels only
        with pytest.raises(ParameterError, match=r"Dynamo's .doc points at /data/TS_01.mrc \(13.48 Å/voxel\)"):
            export.export_coordinates(fmt, out, picks, output_pixel_size=output_pixel_size)
        assert not any(tmp_path.iterdir())
        return
    files = export.export_coordinates(fmt, out, picks, output_pixel_size=output_pixel_size)
    assert all(f.is_file() for f in files)
    back = export.read_exported(fmt, out, [p.tomogram for p in picks], output_pixel_size=output_pixel_size)
    assert len(back) == len(picks)
    for (tomogram, original), table in zip(picks, back):
        assert len(table) == len(original)
        assert np.abs(table.xyz - original.xyz).max() < TOLERANCE
        assert table.columns["score"] == pytest.approx(original.columns["score"], abs=1e-5)
        if fmt != "warp":  # Warp particle files carry no class
            assert table.columns["class"].tolist() == original.columns["class"].tolist()
    assert not list(tmp_path.rglob("*.part"))


def test_rescaling_follows_scipion_convention(tmp_path):
    tomogram = TomogramInfo("TS_01", (64, 64, 32), 13.48, "/data/TS_01.mrc")
    picks = [PickedTomogram(tomogram, CoordinateTable([[10.0, 0.0, 31.0]]))]
    export.write_relion4(tmp_path / "p.star", picks, output_pixel_size=3.37)
    row = Table(fileName=str(tmp_path / "p.star"), tableName="particles")[0]
    # x_out = x * 13.48 / 3.37 (corner frame, no half-voxel shift)
    assert (row.rlnCoordinateX, row.rlnCoordinateY, row.rlnCoordinateZ) == pytest.approx((40.0, 0.0, 124.0))
    assert export.scale_factor(tomogram, None) == 1.0
    assert export.scale_factor(tomogram, 6.74) == pytest.approx(2.0)


def test_relion4_columns(tmp_path):
    picks = _picks()
    export.write_relion4(tmp_path / "p.star", picks)
    table = Table(fileName=str(tmp_path / "p.star"), tableName="particles")
    assert table.getColumnNames()[:6] == ["rlnTomoName", "rlnTomoParticleId", "rlnTomoManifoldIndex",
                                          "rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]
    for name in ("rlnOriginXAngst", "rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi", "rlnClassNumber",
                 "rlnAutopickFigureOfMerit"):
        assert name in table.getColumnNames()
    assert [r.rlnTomoParticleId for r in table] == list(range(1, 12))
    assert {r.rlnTomoName for r in table} == {"TS_01", "TS_02"}
    assert all(r.rlnAngleTilt == 0 and r.rlnOriginZAngst == 0 for r in table)


@pytest.mark.parametrize("size, index, expected_angstrom", [
    (64, 32.0, 0.0),     # even: centre = 32
    (64, 0.0, -32.0),
    (65, 32.5, 0.0),     # odd: centre = 32.5, between voxels 32 and 33
    (65, 32.0, -0.5),
    (65, 64.0, 31.5),
])
def test_relion5_centre_convention(tmp_path, size, index, expected_angstrom):
    voxel_size = 2.0
    tomogram = TomogramInfo("TS_07", (size, size, size), voxel_size)
    assert export.relion5_centre(tomogram).tolist() == [size / 2.0] * 3
    picks = [PickedTomogram(tomogram, CoordinateTable([[index, index, index]]))]
    path = tmp_path / "p5.star"
    export.write_relion5(path, picks, output_pixel_size=1.0)  # Å values do not depend on it
    text = path.read_text()
    assert "# version 50001" in text and "data_particles" in text
    row = Table(fileName=str(path), tableName="particles")[0]
    assert row.rlnCenteredCoordinateXAngst == pytest.approx(expected_angstrom * voxel_size)
    assert row.rlnCenteredCoordinateZAngst == pytest.approx(expected_angstrom * voxel_size)
    assert "rlnTomoParticleId" not in Table(fileName=str(path), tableName="particles").getColumnNames()


def test_warp_names_and_columns(tmp_path):
    picks = _picks()
    files = export.write_warp(tmp_path / "warp", picks, output_pixel_size=6.74)
    assert sorted(f.name for f in files) == ["TS_01.star", "TS_02.star"]
    table = Table(fileName=str(tmp_path / "warp" / "TS_02.star"))
    assert table.getColumnNames() == export.WARP_COLUMNS
    assert {r.rlnMicrographName for r in table} == {"TS_02.tomostar"}
    assert table[0].rlnCoordinateX == pytest.approx(picks[1].coordinates.xyz[0, 0] * 2, abs=1e-5)
    assert "data_\n" in (tmp_path / "warp" / "TS_01.star").read_text()


def test_dynamo_table_and_doc(tmp_path):
    picks = _picks()
    tbl, doc = export.write_dynamo(tmp_path / "p.tbl", picks)
    assert doc == tmp_path / "p.doc"
    table = np.loadtxt(tbl, ndmin=2)
    assert table.shape == (11, 40)
    assert table[:, 0].tolist() == list(range(1, 12))            # col 1 tag
    assert table[:, 19].tolist() == [1] * 7 + [2] * 4             # col 20 tomogram index
    assert table[:, 21].tolist() == np.concatenate([p.coordinates.columns["class"] for p in picks]).tolist()
    assert np.abs(table[:7, 23:26] - picks[0].coordinates.xyz).max() < 1e-5  # cols 24-26, no +1
    assert export.read_dynamo_doc(doc) == {1: "/data/TS_01.mrc", 2: "/data/TS_02.mrc"}


def test_dynamo_doc_names_the_tomogram_as_given_not_where_a_link_ends(tmp_path):
    target = tmp_path / "data" / "TS_01.mrc"
    target.parent.mkdir()
    target.write_bytes(b"")
    link = tmp_path / "project" / "TS_01.mrc"  # a Scipion project links its imported tomograms
    link.parent.mkdir()
    link.symlink_to(target)
    picked = _picks()[0]
    picks = [export.PickedTomogram(export.TomogramInfo(picked.tomogram.name, picked.tomogram.shape,
                                                       picked.tomogram.voxel_size, str(link)), picked.coordinates)]
    _, doc = export.write_dynamo(tmp_path / "p.tbl", picks)
    assert export.read_dynamo_doc(doc) == {1: str(link)}


def test_motl_layout_and_reading_by_io(tmp_path):
    tomogram, coords = _picks()[0]
    path = tmp_path / "TS_01_motl.csv"
    export.write_motl(path, [PickedTomogram(tomogram, coords)])
    table = np.loadtxt(path, delimiter=",", ndmin=2)
    assert table.shape == (7, 20)
    assert table[:, 3].tolist() == list(range(1, 8))
    assert table[:, 0] == pytest.approx(coords.columns["score"])
    assert table[:, 19].tolist() == coords.columns["class"].tolist()
    assert np.abs(table[:, 7:10] - coords.xyz).max() < 1e-5
    assert np.abs(table[:, 1:3] - coords.xyz[:, :2]).max() < 1e-5
    again = read_coordinates(path)  # the engine's own reader understands it
    assert np.abs(again.xyz - coords.xyz).max() < 1e-5


def test_empty_tables_round_trip(tmp_path):
    tomogram = TomogramInfo("TS_01", (10, 10, 10), 10.0, "/data/TS_01.mrc")
    picks = [PickedTomogram(tomogram, CoordinateTable(np.zeros((0, 3))))]
    for fmt in export.FORMATS:
        out = _out(tmp_path, fmt)
        export.export_coordinates(fmt, out, picks)
        back = export.read_exported(fmt, out, [tomogram])
        assert len(back) == 1 and len(back[0]) == 0


# ------------------------------------------------------------------------------------------------
# bad input and atomicity
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [0, -1.0, float("nan"), "abc"])
def test_bad_output_pixel_size(tmp_path, size):
    with pytest.raises(ParameterError, match="output pixel size"):
        export.export_coordinates("relion4", tmp_path / "p.star", _picks(), output_pixel_size=size)
    assert not (tmp_path / "p.star").exists()


def test_unknown_format(tmp_path):
    with pytest.raises(ParameterError, match="Unknown export format"):
        export.export_coordinates("imod", tmp_path / "p.mod", _picks())


def test_coordinates_without_a_tomogram(tmp_path):
    with pytest.raises(ParameterError, match="without a tomogram"):
        export.export_coordinates("relion4", tmp_path / "p.star", [(None, CoordinateTable([[1, 2, 3]]))])


def test_invalid_tomograms_and_coordinates(tmp_path):
    with pytest.raises(ParameterError):
        TomogramInfo("TS 01", (10, 10, 10), 1.0)
    with pytest.raises(ParameterError):
        TomogramInfo("TS_01", (10, 0, 10), 1.0)
    with pytest.raises(ParameterError):
        TomogramInfo("TS_01", (10, 10, 10), 0)
    tomogram = TomogramInfo("TS_01", (10, 10, 10), 1.0)
    with pytest.raises(InputFileError, match="outside"):
        export.write_relion4(tmp_path / "p.star", [PickedTomogram(tomogram, CoordinateTable([[12, 1, 1]]))])
    with pytest.raises(ParameterError, match="twice"):
        export.write_relion4(tmp_path / "p.star", [PickedTomogram(tomogram, CoordinateTable([[1, 1, 1]]))] * 2)
    with pytest.raises(ParameterError, match="Å/voxel"):
        export.write_relion4(tmp_path / "p.star", [PickedTomogram(tomogram, CoordinateTable([[1, 1, 1]], {}, 4.0))])
    with pytest.raises(ParameterError, match="path"):
        export.write_dynamo(tmp_path / "p.tbl", [PickedTomogram(tomogram, CoordinateTable([[1, 1, 1]]))])
    with pytest.raises(ParameterError, match="one tomogram"):
        export.write_motl(tmp_path / "m.csv", _picks())
    assert not any(tmp_path.iterdir())


def test_reading_back_with_unknown_tomogram_fails(tmp_path):
    picks = _picks()
    export.write_relion4(tmp_path / "p.star", picks)
    with pytest.raises(InputFileError, match="TS_02"):
        export.read_relion4(tmp_path / "p.star", [picks[0].tomogram])


def test_failed_multi_file_export_leaves_nothing(tmp_path, monkeypatch):
    picks = _picks()
    real = star.write_star
    calls = []

    def failing(handle, *args):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full")
        return real(handle, *args)

    monkeypatch.setattr(star, "write_star", failing)
    with pytest.raises(OSError):
        export.write_warp(tmp_path / "warp", picks)
    assert not any(tmp_path.iterdir())


def test_failed_export_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "p.star"
    export.write_relion4(path, _picks())
    before = path.read_text()

    def failing(handle, *args):
        handle.write("half a file")
        raise OSError("disk full")

    monkeypatch.setattr(star, "write_star", failing)
    with pytest.raises(OSError):
        export.write_relion4(path, _picks(seed=1))
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["p.star"]


# ------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------

def _cli_inputs(tmp_path):
    picks = _picks()
    coords, tomos = [], []
    for i, (tomogram, table) in enumerate(picks):
        tomo_path = tmp_path / f"tomo_{i}.mrc"
        x, y, z = tomogram.shape
        write_volume(tomo_path, np.zeros((z, y, x), dtype=np.int8), tomogram.voxel_size)
        coords_path = tmp_path / f"picks_{i}.csv"
        write_coordinates(coords_path, table)
        coords.append(str(coords_path))
        tomos.append(str(tomo_path))
    return picks, coords, tomos


@pytest.mark.parametrize("fmt", export.FORMATS)
def test_cli_round_trip(tmp_path, capsys, fmt):
    picks, coords, tomos = _cli_inputs(tmp_path)
    out = _out(tmp_path / "out", fmt)
    pixel_size = 13.48 if fmt == "dynamo" else 3.37
    code = main(["export", "--coords", *coords, "--tomogram", *tomos, "--format", fmt, "--out", str(out),
                 "--output-pixel-size", str(pixel_size), "--tomo-name", "TS_01", "TS_02"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["particles"] == 11 and summary["tomograms"] == 2 and summary["format"] == fmt
    assert summary["classes"] is None  # numbered classes need no map
    infos = [TomogramInfo.from_volume(t, name=n) for t, n in zip(tomos, ["TS_01", "TS_02"])]
    back = export.read_exported(fmt, out, infos, output_pixel_size=pixel_size)
    for (_, original), table in zip(picks, back):
        assert np.abs(table.xyz - original.xyz).max() < TOLERANCE


def test_cli_default_names_and_repeated_options(tmp_path, capsys):
    picks, coords, tomos = _cli_inputs(tmp_path)
    out = tmp_path / "warp"
    code = main(["export", "--coords", coords[0], "--coords", coords[1], "--tomogram", tomos[0],
                 "--tomogram", tomos[1], "--format", "warp", "--out", str(out)])
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["tomo_0.star", "tomo_1.star"]


def test_cli_bad_inputs(tmp_path, capsys):
    _, coords, tomos = _cli_inputs(tmp_path)
    base = ["export", "--format", "relion4", "--out", str(tmp_path / "p.star")]
    assert main(base + ["--coords", *coords, "--tomogram", tomos[0]]) == 2
    with pytest.raises(SystemExit):  # argparse refuses it (tests/cli/test_voxel_size_options.py)
        main(base + ["--coords", coords[0], "--tomogram", tomos[0], "--output-pixel-size", "0"])
    assert main(base + ["--coords", coords[0], "--tomogram", tomos[0], "--tomo-name", "a", "b"]) == 2
    assert main(base + ["--coords", coords[0], "--tomogram", str(tmp_path / "none.mrc")]) == 2
    # picks of the big tomogram against the small one: outside
    write_volume(tmp_path / "small.mrc", np.zeros((2, 2, 2), np.int8), 13.48)
    assert main(base + ["--coords", coords[0], "--tomogram", str(tmp_path / "small.mrc")]) == 2
    # coordinates picked at another voxel size
    assert main(base + ["--coords", coords[0], "--tomogram", tomos[0], "--voxel-size", "5"]) == 2
    assert "error:" in capsys.readouterr().err
    assert not (tmp_path / "p.star").exists()
    with pytest.raises(SystemExit):
        main(base[:1] + ["--format", "imod", "--out", "x", "--coords", coords[0], "--tomogram", tomos[0]])


def _one_tomogram_with_far_picks():
    """TS_01 (x, y, z = 64, 48, 21) and picks of it, one beyond x = 21: outside the shape given as (z, y, x)."""
    (tomogram, table), _ = _picks()
    table = CoordinateTable(np.vstack([table.xyz, [[40.0, 10.0, 5.0]]]), {}, tomogram.voxel_size)
    return tomogram, table


@pytest.mark.parametrize("fmt", export.FORMATS)
def test_a_shape_given_as_zyx_is_named_as_the_cause(tmp_path, fmt):
    """A volume's .shape (z, y, x) given as TomogramInfo.shape (x, y, z) moves RELION 5's centre (shape / 2): the
    export refuses picks outside the shape in one line that names the tomogram, its file and the likely swap."""
    tomogram, table = _one_tomogram_with_far_picks()
    swapped = TomogramInfo(tomogram.name, tomogram.shape_zyx, tomogram.voxel_size, tomogram.path)
    out = _out(tmp_path, fmt) if fmt != "motl" else tmp_path / "m.csv"
    with pytest.raises(InputFileError) as error:
        export.export_coordinates(fmt, out, [PickedTomogram(swapped, table)])
    message = str(error.value)
    assert "\n" not in message
    assert "TS_01 (/data/TS_01.mrc)" in message and "all would fit with x and z swapped" in message
    assert "shape given as (z, y, x)" in message and "TomogramInfo.from_volume" in message
    assert not out.exists()
    export.export_coordinates(fmt, out, [PickedTomogram(tomogram, table)])  # the right shape takes them


def test_cli_coordinates_in_zyx_order_exit_2_naming_the_file_and_the_swap(tmp_path, capsys):
    """`deepict export` reads the shape from the tomogram; columns written in an array's (z, y, x) order that fit
    only with x and z swapped are refused (exit 2) in one line naming the file and the column order."""
    tomogram, table = _one_tomogram_with_far_picks()
    x, y, z = tomogram.shape
    tomogram_path = tmp_path / "TS_01.mrc"
    write_volume(tomogram_path, np.zeros((z, y, x), dtype=np.int8), tomogram.voxel_size)
    zyx = tmp_path / "picks_zyx.csv"
    write_coordinates(zyx, CoordinateTable(table.xyz[:, ::-1], {}, tomogram.voxel_size))
    out = tmp_path / "p.star"
    assert main(["export", "--coords", str(zyx), "--tomogram", str(tomogram_path), "--format", "relion5",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert str(zyx) in err and "all would fit with x and z swapped" in err and "z, y, x order" in err
    assert not out.exists()


# ------------------------------------------------------------------------------------------------
# class names (what `deepict pick` writes), RELION 5 pixel columns, Dynamo pixel size
# ------------------------------------------------------------------------------------------------

def _named_picks():
    """Picks of two tomograms whose class column holds names, as `deepict pick` writes them."""
    picks = _picks()
    named = []
    for (tomogram, table), names in zip(picks, (["ribosome", "fas"], ["ribosome"])):
        classes = np.array([names[i % len(names)] for i in range(len(table))], dtype=object)
        named.append(PickedTomogram(tomogram, CoordinateTable(table.xyz, {**table.columns, "class": classes},
                                                              tomogram.voxel_size)))
    return named


@pytest.mark.parametrize("fmt", export.FORMATS)
def test_class_names_are_numbered_in_sorted_order_and_mapped_beside_the_export(tmp_path, fmt):
    picks = _named_picks()
    out = _out(tmp_path, fmt)
    files = export.export_coordinates(fmt, out, picks)
    map_path = export.class_map_path(out)
    back = export.read_exported(fmt, out, [p.tomogram for p in picks])
    if fmt == "warp":  # no class in Warp files, so no map
        assert not map_path.exists() and map_path not in files
        return
    assert map_path in files and map_path.name == {"relion4": "particles.star.classes.csv",
                                                    "relion5": "particles5.star.classes.csv",
                                                    "motl": "motl.classes.csv",
                                                    "dynamo": "particles.tbl.classes.csv"}[fmt]
    assert map_path.read_text() == "number,name\n1,fas\n2,ribosome\n"
    assert export.read_class_map(map_path) == {"fas": 1, "ribosome": 2}
    for (_, original), table in zip(picks, back):
        assert [{1: "fas", 2: "ribosome"}[c] for c in table.columns["class"]] == list(original.columns["class"])


def test_a_numbered_export_removes_the_stale_class_map_of_a_named_one(tmp_path):
    out = tmp_path / "particles.star"
    export.write_relion4(out, _named_picks())
    assert export.class_map_path(out).exists()
    export.write_relion4(out, _picks())
    assert not export.class_map_path(out).exists()


def test_names_in_one_tomogram_and_numbers_in_another_are_refused(tmp_path):
    named, numbered = _named_picks()[0], _picks()[1]
    with pytest.raises(ParameterError, match="classes of TS_01 are names but TS_02 have numbered classes or none"):
        export.write_relion4(tmp_path / "p.star", [named, numbered])


@pytest.mark.parametrize("fmt", ["relion4", "relion5", "dynamo", "motl"])
def test_picks_with_class_names_beside_a_table_without_classes_are_refused_in_one_line(tmp_path, capsys, fmt):
    """deepict pick's output exported with plain x,y,z (ground truth, template matching): a KeyError traceback."""
    picks, tomogram, _ = _pick_csv(tmp_path)
    plain = tmp_path / "plain.csv"
    write_coordinates(plain, CoordinateTable(np.array([[5.0, 6, 7]]), {}, 13.48))
    out = _out(tmp_path / "out", fmt)
    assert main(["export", "--coords", str(picks), str(plain), "--tomogram", str(tomogram), str(tomogram),
                 "--tomo-name", "TS_01", "TS_02", "--format", fmt, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "TS_02 have numbered classes or none" in err
    assert not out.exists()


def test_relion5_also_writes_relion4_pixel_coordinates_for_scipion(tmp_path):
    picks = _picks()
    export.write_relion4(tmp_path / "p4.star", picks, output_pixel_size=3.37)
    export.write_relion5(tmp_path / "p5.star", picks, output_pixel_size=3.37)
    rows4 = Table(fileName=str(tmp_path / "p4.star"), tableName="particles")
    rows5 = Table(fileName=str(tmp_path / "p5.star"), tableName="particles")
    assert rows5.getColumnNames() == export.RELION5_COLUMNS
    for r4, r5 in zip(rows4, rows5):
        assert (r5.rlnCoordinateX, r5.rlnCoordinateY, r5.rlnCoordinateZ) == \
               (r4.rlnCoordinateX, r4.rlnCoordinateY, r4.rlnCoordinateZ)
        assert r5.rlnCoordinateX != 0


@pytest.mark.parametrize("fmt", ["relion4", "relion5"])
@pytest.mark.parametrize("output_pixel_size", [None, 3.37])
def test_relion_files_carry_their_coordinates_pixel_size(tmp_path, fmt, output_pixel_size):
    """reliontomo's import takes the coordinates' sampling rate from ``rlnDetectorPixelSize`` when its form's
    field is empty (the default), else the tomograms': without the column a file at 3.37 Å lands 4x off."""
    picks = _picks()
    out = _out(tmp_path, fmt)
    export.export_coordinates(fmt, out, picks, output_pixel_size=output_pixel_size)
    rows = Table(fileName=str(out), tableName="particles")
    assert {row.rlnDetectorPixelSize for row in rows} == {output_pixel_size or 13.48}
    # read back without being told the output pixel size: the file says it
    back = export.read_exported(fmt, out, [p.tomogram for p in picks])
    for (_, original), table in zip(picks, back):
        assert np.abs(table.xyz - original.xyz).max() < TOLERANCE


def test_relion4_without_a_pixel_size_column_is_in_the_tomograms_voxels(tmp_path):
    """A file from elsewhere (no ``rlnDetectorPixelSize``) is read in the tomograms' voxels, or at the size given."""
    picks = _picks()
    rows = export.relion4_rows(picks, output_pixel_size=3.37)
    assert export.RELION4_COLUMNS[-1] == "rlnDetectorPixelSize"
    (tmp_path / "other.star").write_text(
        star.star_text("particles", export.RELION4_COLUMNS[:-1], [row[:-1] for row in rows]))
    tomograms = [p.tomogram for p in picks]
    as_given = export.read_relion4(tmp_path / "other.star", tomograms, output_pixel_size=3.37)
    as_voxels = export.read_relion4(tmp_path / "other.star", tomograms)
    for (_, original), given, voxels in zip(picks, as_given, as_voxels):
        assert np.abs(given.xyz - original.xyz).max() < TOLERANCE
        assert voxels.xyz == pytest.approx(original.xyz * 13.48 / 3.37, abs=TOLERANCE)


@pytest.mark.parametrize("fmt", export.FORMATS + (COPICK_FORMAT,))
def test_every_format_prints_the_same_summary(tmp_path, capsys, fmt):
    """copick's summary had a 'config' key and lacked output_pixel_size and classes: a script reading the
    summaries of several formats broke on one of them."""
    picks, tomogram, _ = _pick_csv(tmp_path)
    out = tmp_path / "project" if fmt == COPICK_FORMAT else _out(tmp_path / "out", fmt)
    assert main(["export", "--coords", str(picks), "--tomogram", str(tomogram), "--format", fmt,
                 "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert list(summary) == ["format", "files", "particles", "tomograms", "output_pixel_size", "classes"]
    assert (summary["format"], summary["particles"], summary["tomograms"]) == (fmt, 6, 1)
    assert summary["files"] and all(Path(f).is_file() for f in summary["files"])  # every file written
    if fmt == COPICK_FORMAT:
        assert summary["files"][0] == str(out / "copick_config.json") and summary["classes"] is None


def _pick_csv(tmp_path, name="TS_01", repeat=1):
    """A picks CSV as `deepict pick` writes it (class names), and its tomogram."""
    tomogram = tmp_path / f"{name}.mrc"
    write_volume(tomogram, np.zeros((20, 30, 40), np.int8), 13.48)
    xyz = np.array([[1.25, 2.5, 3.0], [10.5, 20.25, 5.0], [30.0, 4.0, 18.5], [5.0, 5.0, 5.0], [6.0, 7.0, 8.0],
                    [39.0, 29.0, 19.0]])
    columns = {"score": np.linspace(0.5, 0.9, 6), "size": np.arange(6) + 10.0,
               "class": np.array(["ribosome"] * 6, dtype=object)}
    picks = tmp_path / f"{name}_picks.csv"
    write_coordinates(picks, CoordinateTable(np.repeat(xyz, repeat, axis=0),
                                             {k: np.repeat(v, repeat) for k, v in columns.items()}, 13.48))
    return picks, tomogram, xyz


@pytest.mark.parametrize("fmt", export.FORMATS)
def test_cli_exports_picks_with_class_names(tmp_path, capsys, fmt):
    picks, tomogram, xyz = _pick_csv(tmp_path)
    out = _out(tmp_path / "out", fmt)
    assert main(["export", "--coords", str(picks), "--tomogram", str(tomogram), "--format", fmt,
                 "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["classes"] == (None if fmt == "warp" else {"ribosome": 1})
    if fmt != "warp":
        assert str(export.class_map_path(out)) in summary["files"]
    back, = export.read_exported(fmt, out, [TomogramInfo.from_volume(tomogram)])
    assert np.abs(back.xyz - xyz).max() < TOLERANCE


def test_cli_counts_a_repeated_row_once(tmp_path, capsys):
    picks, tomogram, xyz = _pick_csv(tmp_path, repeat=2)  # every particle twice: 12 rows
    out = tmp_path / "p.star"
    assert main(["export", "--coords", str(picks), "--tomogram", str(tomogram), "--format", "relion4",
                 "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["particles"] == 6
    assert "repeated row" in captured.err
    assert len(Table(fileName=str(out), tableName="particles")) == 6


def test_cli_refuses_dynamo_at_another_pixel_size(tmp_path, capsys):
    picks, tomogram, _ = _pick_csv(tmp_path)
    assert main(["export", "--coords", str(picks), "--tomogram", str(tomogram), "--format", "dynamo",
                 "--out", str(tmp_path / "p.tbl"), "--output-pixel-size", "3.37"]) == 2
    err = capsys.readouterr().err
    assert "TS_01.mrc (13.48 Å/voxel)" in err and "without an output pixel size" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "p.tbl").exists() and not (tmp_path / "p.doc").exists()


# ------------------------------------------------------------------------------------------------
# outputs that are folders, and all-or-nothing replacement of an earlier export
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt, folder", [("relion4", "p.star"), ("relion5", "p.star"), ("dynamo", "p.doc"),
                                         ("dynamo", "p.tbl.classes.csv"), ("warp", "warp/TS_01.star"),
                                         ("motl", "motl/TS_01.csv")])
def test_cli_output_that_is_a_folder_is_one_clear_line(tmp_path, capsys, fmt, folder):
    picks, tomogram, _ = _pick_csv(tmp_path)
    (tmp_path / folder).mkdir(parents=True)
    out = {"relion4": "p.star", "relion5": "p.star", "dynamo": "p.tbl", "warp": "warp", "motl": "motl"}[fmt]
    code = main(["export", "--coords", str(picks), "--tomogram", str(tomogram), "--format", fmt,
                 "--out", str(tmp_path / out)])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert str(tmp_path / folder) in err or f"{folder.split('/')[1]}/" in err
    assert (tmp_path / folder).is_dir() and not list((tmp_path / folder).iterdir())


def test_folder_export_refuses_to_replace_a_folder_of_other_files(tmp_path):
    (tmp_path / "warp").mkdir()
    (tmp_path / "warp" / "notes.txt").write_text("mine")
    with pytest.raises(ParameterError, match="notes.txt, which is not part of a Warp export"):
        export.write_warp(tmp_path / "warp", _picks())
    assert (tmp_path / "warp" / "notes.txt").read_text() == "mine"


def test_warp_export_replaces_an_earlier_one_instead_of_mixing(tmp_path):
    picks = _picks()
    export.write_warp(tmp_path / "warp", picks)
    export.write_warp(tmp_path / "warp", picks[1:])
    assert sorted(p.name for p in (tmp_path / "warp").iterdir()) == ["TS_02.star"]


def _failing_rename(monkeypatch, fails_on):
    """os.rename in the export's staging failing once: the first move of the new export onto the path named ``fails_on``."""
    real = os.rename
    failed = []

    def rename(source, destination):
        if Path(destination).name == fails_on and not failed:
            failed.append(source)
            raise OSError("simulated failure")
        return real(source, destination)

    monkeypatch.setattr(staging.os, "rename", rename)


def test_failed_warp_swap_keeps_the_earlier_export_whole(tmp_path, monkeypatch):
    picks = _picks()
    folder = tmp_path / "warp"
    export.write_warp(folder, picks)
    before = {p.name: p.read_text() for p in folder.iterdir()}
    _failing_rename(monkeypatch, "warp")  # setting the old folder aside works, moving the new one in fails
    with pytest.raises(OSError, match="simulated"):
        export.write_warp(folder, _picks(seed=3)[:1])
    assert {p.name: p.read_text() for p in folder.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["warp"]  # no scratch folder left


def test_failed_dynamo_swap_keeps_the_earlier_pair(tmp_path, monkeypatch):
    tbl = tmp_path / "p.tbl"
    export.write_dynamo(tbl, _picks())
    before = {p.name: p.read_text() for p in tmp_path.iterdir()}
    _failing_rename(monkeypatch, "p.doc")  # the new .tbl is already in place when the .doc fails
    with pytest.raises(OSError, match="simulated"):
        export.write_dynamo(tbl, _named_picks())
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == before


def test_exports_respect_the_umask(tmp_path):
    previous = os.umask(0o027)
    try:
        export.write_motl(tmp_path / "motl", _named_picks())
        export.write_relion5(tmp_path / "p.star", _picks())
    finally:
        os.umask(previous)
    assert (tmp_path / "motl").stat().st_mode & 0o777 == 0o750
    for path in [tmp_path / "p.star", tmp_path / "motl.classes.csv", *(tmp_path / "motl").iterdir()]:
        assert path.stat().st_mode & 0o777 == 0o640, path


def test_exports_of_one_name_in_two_formats_keep_a_class_map_each(tmp_path):
    """x.star and x.tbl shared x.classes.csv: the second export's map replaced the first's, which then named the
    wrong classes."""
    named = _named_picks()
    export.write_relion5(tmp_path / "x.star", named)
    first = export.read_class_map(export.class_map_path(tmp_path / "x.star"))
    export.write_dynamo(tmp_path / "x.tbl", [named[1]])  # ribosomes only: ribosome is 1 there, 2 in x.star
    assert export.read_class_map(export.class_map_path(tmp_path / "x.tbl")) != first
    assert export.class_map_path(tmp_path / "x.star") != export.class_map_path(tmp_path / "x.tbl")
    assert export.read_class_map(export.class_map_path(tmp_path / "x.star")) == first


def test_cli_warns_of_a_tomogram_without_picks(tmp_path, capsys):
    """An empty picks file (a pick that found nothing) exports without its particles: said, not silent."""
    picks, tomogram, _ = _pick_csv(tmp_path)
    empty = tmp_path / "empty_picks.csv"
    write_coordinates(empty, CoordinateTable(np.zeros((0, 3)), {}, 13.48))
    assert main(["export", "--coords", str(picks), str(empty), "--tomogram", str(tomogram), str(tomogram),
                 "--tomo-name", "TS_01", "TS_02", "--format", "relion4", "--out", str(tmp_path / "p.star")]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["particles"] == 6  # stdout stays the JSON summary
    warnings = [line for line in captured.err.splitlines() if line.startswith("warning: ")]
    assert warnings == [f"warning: {empty} holds no coordinates: the export has none of {tomogram.name} "
                        "(an empty pick: see its log, or pick at a lower --threshold)"]
