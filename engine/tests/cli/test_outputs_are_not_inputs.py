"""An output that names one of the run's inputs is refused before any work, and the input stays as it was.

A user who reuses a name (``--out`` = the tomogram, ``--probability-map`` = the context mask, ``--json`` =
the picks) lost the input to the result, with exit 0, in every command but ``equalize`` and
``filter-context``: now every command refuses it in one line, exit 2.
"""

from __future__ import annotations

import hashlib
import shutil

import pytest

from tiny_world import make_tiny_world, run


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    world = make_tiny_world(tmp_path_factory.mktemp("outputs_are_not_inputs"))
    assert run_quiet(["pick", "--model", world.model, "--tomogram", world.tomo, "--out", world.folder / "picks.csv",
                      "--threshold", "0.5", "--min-size", "1", "--device", "cpu"]) == 0
    shutil.copy(world.tomo, world.folder / "mask.mrc")  # stands in for a context mask of the tomogram's shape
    return world


def run_quiet(argv):
    from deepict.cli.main import main
    return main([str(a) for a in argv])


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


CASES = {
    "pick --out the tomogram": lambda w: (["pick", "--model", w.model, "--tomogram", w.tomo, "--out", w.tomo],
                                          w.tomo, "--out", "--tomogram"),
    "pick --probability-map the context mask": lambda w: (
        ["pick", "--model", w.model, "--tomogram", w.tomo, "--out", w.folder / "p2.csv", "--context",
         w.folder / "mask.mrc", "--probability-map", w.folder / "mask.mrc"], w.folder / "mask.mrc",
        "--probability-map", "--context"),
    "segment3d --out the tomogram": lambda w: (["segment3d", "--model", w.model, "--tomogram", w.tomo, "--out", w.tomo],
                                               w.tomo, "--out", "--tomogram"),
    "train3d --out a training tomogram": lambda w: (
        ["train3d", "--tomograms", w.tomo, "--coords", w.coords, "--radius", "4", "--out", w.tomo],
        w.tomo, "--out", "--tomograms"),
    "export --out the picks": lambda w: (
        ["export", "--coords", w.folder / "picks.csv", "--tomogram", w.tomo, "--format", "motl",
         "--out", w.folder / "picks.csv"], w.folder / "picks.csv", "--out", "--coords"),
    "evaluate --json the picks": lambda w: (
        ["evaluate", "--pred", w.folder / "picks.csv", "--gt", w.coords, "--json", w.folder / "picks.csv"],
        w.folder / "picks.csv", "--json", "--pred"),
    "equalize --out the tomogram": lambda w: (
        ["equalize", "--tomogram", w.tomo, "--reference", w.folder / "mask.mrc", "--out", w.tomo],
        w.tomo, "--out", "--tomogram"),
    "model-info --json the model": lambda w: (["model-info", "--model", w.model, "--json", w.model],
                                              w.model, "--json", "--model"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_an_output_naming_an_input_is_refused_and_the_input_kept(case, world, capsys):
    argv, victim, output_option, input_option = CASES[case](world)
    before = digest(victim)
    code, _, err = run(capsys, *argv)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert f"{output_option} " in lines[0] and f"is also an input of this run ({input_option} " in lines[0], lines[0]
    assert "write the output to a new file" in lines[0]
    assert digest(victim) == before
