"""Job files (deepict.jobs): every step's parameters declared once, written and read back, run with --job."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import types
import typing
from dataclasses import MISSING

import pytest

from deepict import jobs
from deepict.cli.main import build_parser, main
from deepict.cli.options import job_from_options
from deepict.filaments.options import FilamentOptions
from deepict.parameters import HELP, choices_of, default_of, field_at, option_help, parameter_paths
from tiny_world import make_tiny_world, run

#: A value of every step's required parameters.
REQUIRED = {
    "train3d": {"tomograms": ["a.mrc", "b.mrc"], "coords": [["a.csv", "b.csv"]], "out": "m.pt"},
    "pick": {"model": "m.pt", "tomogram": "t.mrc", "out": "p.csv"},
    "segment3d": {"model": "m.pt", "tomogram": "t.mrc", "out": "s.mrc"},
    "import-model": {"checkpoint": "r.pth", "out": "r.pt"},
    "train2d": {"tomograms": ["a.mrc"], "masks": ["a_mask.mrc"], "out": "c.pt"},
    "segment2d": {"model": "c.pt", "tomogram": "t.mrc", "out": "c.mrc"},
    "spectrum": {"tomogram": "t.mrc", "out": "s.tsv"},
    "equalize": {"tomogram": "t.mrc", "reference": "r.tsv", "out": "e.mrc"},
    "evaluate": {},
    "export": {"coords": ["p.csv"], "tomogram": ["t.mrc"], "format": "relion4", "out": "p.star"},
    "model-info": {"model": "m.pt"},
    "ensemble": {"models": ["a.pt", "b.pt"], "out": "e.pt"},
    "filter-context": {"coords": "p.csv", "context": "c.mrc", "out": "k.csv"},
    "import-picks": {"copick": "copick_config.json", "run": ["TS_01"], "object": "ribosome", "user_id": "u",
                     "session_id": "0", "voxel_size": 13.48, "out": "p.csv"},
    "filaments": {"mask": "m.mrc", "out": "f.csv", "tracing": FilamentOptions(spacing_angstrom=40.0)},
    "import-star": {"star": "particles.star", "tomogram": ["t.mrc"], "out": "picks"},
}


def _subcommand_parsers() -> dict:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _write(path, content) -> str:
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def test_every_subcommand_has_a_job_class():
    assert set(_subcommand_parsers()) == set(jobs.JOB_CLASSES)


@pytest.mark.parametrize("step", sorted(jobs.JOB_CLASSES))
def test_every_parameter_has_help(step):
    job_class = jobs.JOB_CLASSES[step]
    missing = [path for path in parameter_paths(job_class) if not _help(job_class, path).strip()]
    assert missing == []


def _help(job_class, path) -> str:
    return field_at(job_class, path).metadata.get(HELP) or ""


def test_the_steps_with_a_device_are_the_jobs_with_a_device():
    with_option = {name for name, parser in _subcommand_parsers().items()
                   if any("--device" in action.option_strings for action in parser._actions)}
    assert with_option == {step for step, job_class in jobs.JOB_CLASSES.items() if jobs.runs_network(job_class)}
    assert with_option == {"train3d", "train2d", "pick", "segment3d", "segment2d", "ensemble"}


@pytest.mark.parametrize("step", sorted(jobs.JOB_CLASSES))
def test_option_defaults_and_help_are_the_jobs(step):
    """Each option's default and help come from its job parameter (declared once)."""
    job_class = jobs.JOB_CLASSES[step]
    parser = _subcommand_parsers()[step]
    checked = 0
    for action in parser._actions:
        if action.dest not in parameter_paths(job_class) or isinstance(action, argparse._StoreFalseAction):
            continue  # not a job parameter, or a --no-... flag (it says the opposite of its parameter)
        default = default_of(job_class, action.dest)
        if default is not MISSING and action.default is not None:
            assert action.default == default, action.dest
        assert action.help == _help(job_class, action.dest)
        checked += 1
    assert checked


@pytest.mark.parametrize("step", sorted(jobs.JOB_CLASSES))
def test_defaults_round_trip_through_a_job_file(step, tmp_path):
    job = jobs.JOB_CLASSES[step](**REQUIRED[step])
    path = jobs.write_job(job, tmp_path / f"{step}.json")
    assert jobs.read_job(path) == job
    assert jobs.read_job(path, type(job)) == job
    data = json.loads((tmp_path / f"{step}.json").read_text())
    assert data["step"] == step and data["format_version"] == jobs.FORMAT_VERSION


@pytest.mark.parametrize("step", sorted(jobs.JOB_CLASSES))
def test_every_parameter_round_trips_through_a_job_file(step, tmp_path):
    """Every parameter set away from its default comes back from the file, with its type."""
    job_class = jobs.JOB_CLASSES[step]
    job = job_class(**REQUIRED[step])
    for path in parameter_paths(job_class):
        *groups, name = path.split(".")
        owner = job
        for group in groups:
            owner = getattr(owner, group)
        setattr(owner, name, _other_value(job_class, path, getattr(owner, name)))
    written = jobs.write_job(job, tmp_path / "job.json")
    assert jobs.read_job(written) == job


def _other_value(job_class, path, value):
    """A value of the parameter's type other than ``value``."""
    choices = choices_of(job_class, path)
    if choices:
        return choices[-1] if value != choices[-1] else choices[0]
    *groups, name = path.split(".")
    owner = job_class
    for group in groups:
        owner = typing.get_type_hints(owner)[group]
    kind = typing.get_type_hints(owner)[name]
    if typing.get_origin(kind) is types.UnionType:
        kind = typing.get_args(kind)[0]
    return _sample(kind, value)


def _sample(kind, value):
    if kind is bool:
        return not value
    if kind is int:
        return (value or 0) + 3
    if kind is float:
        return (value or 0.0) + 0.25
    if kind is str:
        return f"{value}-other"
    item = typing.get_args(kind)[0] if typing.get_args(kind) else str
    return [_sample(item, None), _sample(item, None)]


def test_written_job_file_gets_the_permissions_of_a_new_file(tmp_path):
    previous = os.umask(0o027)
    try:
        path = jobs.write_job(jobs.ModelInfoJob(model="m.pt"), tmp_path / "job.json")
    finally:
        os.umask(previous)
    assert os.stat(path).st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["job.json"]


def test_options_give_the_job_they_describe():
    args = build_parser().parse_args(["train3d", "--tomograms", "a.mrc", "b.mrc", "--coords", "a.csv", "b.csv",
                                      "--class-name", "ribo", "--radius", "8", "--out", "m.pt", "--epochs", "3",
                                      "--no-batch-norm", "--device", "cpu", "--threads", "2"])
    job = job_from_options(jobs.Train3DJob, args)
    expected = jobs.Train3DJob(tomograms=["a.mrc", "b.mrc"], coords=[["a.csv", "b.csv"]], radius=[8.0], out="m.pt",
                               threads=2)
    expected.training.classes, expected.training.epochs, expected.training.batch_norm = ["ribo"], 3, False
    jobs.set_device(expected, "cpu")
    assert job == expected


def test_set_device_refuses_a_step_without_network():
    with pytest.raises(ValueError, match="no network"):
        jobs.set_device(jobs.ModelInfoJob(model="m.pt"), "cpu")


def test_form_help_fills_in_the_default():
    assert option_help(jobs.Train3DJob, "training.iterations_per_epoch").startswith(
        "optimiser steps per epoch (default 25)")
    assert option_help(jobs.EqualizeJob, "lowpass_width").startswith("10–90% transition width")
    assert default_of(jobs.PickJob, "inference.window") == 128
    assert default_of(jobs.PickJob, "model") is MISSING
    assert option_help(jobs.Train3DJob, "epochs") == option_help(jobs.Train3DJob, "training.epochs")
    with pytest.raises(KeyError, match="no parameter 'epoch'"):
        default_of(jobs.Train3DJob, "epoch")


# --------------------------------------------------------------------------------------------
# Bad job files: one line naming the file and the fix, exit 2
# --------------------------------------------------------------------------------------------

PICK = {"step": "pick", "format_version": 1, "model": "m.pt", "tomogram": "t.mrc", "out": "p.csv"}


@pytest.mark.parametrize("content, says", [
    ("{not json", "is not valid JSON"),
    ("[1, 2]", "does not hold a job"),
    ({**PICK, "windw": 3}, "unknown parameter 'windw'"),
    ({**PICK, "inference": {"windw": 3}}, "unknown parameter 'inference.windw'"),
    ({**PICK, "threshold": 0.4}, "unknown parameter 'threshold' for 'deepict pick'. Its place is 'postprocess.threshold'"),
    ({**PICK, "inference": {"threshold": 0.4}}, "Its place is 'postprocess.threshold': move it there"),
    ({k: v for k, v in PICK.items() if k != "model"}, "lacks the required parameter 'model'"),
    ({**PICK, "inference": {"window": "64"}}, "'inference.window' the value \"64\", which is not a whole number"),
    ({**PICK, "inference": {"window": 6.5}}, "which is not a whole number"),
    ({**PICK, "postprocess": {"border": [1, "2"]}}, "'postprocess.border[1]'"),
    ({**PICK, "inference": 5}, "which is not an object of parameters"),
    ({**PICK, "inference": {"ignore_voxel_size": 1}}, "which is not true or false"),
    ({**PICK, "inference": {"equalize": "sometimes"}}, "Give one of: auto, on, off"),
    ({**PICK, "step": "train3d"}, "is a job of 'deepict train3d', not of 'deepict pick'"),
    ({**PICK, "step": "dance"}, "names no step of deepict"),
    ({**PICK, "format_version": 99}, "has job format version 99"),
    ({k: v for k, v in PICK.items() if k != "format_version"}, "has job format version null"),
], ids=["syntax", "not-object", "unknown", "unknown-nested", "misplaced", "misplaced-nested", "missing", "text-for-int", "float-for-int",
        "list-item", "group-not-object", "int-for-bool", "choice", "other-step", "no-step", "new-version",
        "no-version"])
def test_bad_job_file_is_one_line_naming_the_file(content, says, tmp_path, capsys):
    path = _write(tmp_path / "job.json", content)
    code, out, err = run(capsys, "pick", "--job", path)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith(f"deepict pick: error: {path}: ")
    assert says in err


def test_empty_list_of_required_files_is_refused(tmp_path, capsys):
    path = _write(tmp_path / "job.json", {"step": "train3d", "format_version": 1, "tomograms": [], "coords": [[]],
                                          "out": "m.pt"})
    code, _, err = run(capsys, "train3d", "--job", path)
    assert code == 2 and f"{path}: gives 'tomograms' an empty list" in err


def test_missing_job_file_is_named(tmp_path, capsys):
    code, _, err = run(capsys, "pick", "--job", tmp_path / "absent.json")
    assert code == 2 and f"{tmp_path / 'absent.json'}: job file not found" in err


def test_job_and_options_together_are_refused(tmp_path, capsys):
    path = jobs.write_job(jobs.PickJob(**REQUIRED["pick"]), tmp_path / "job.json")
    with pytest.raises(SystemExit) as stop:
        main(["pick", "--job", str(path), "--window", "64"])
    err = capsys.readouterr().err
    assert stop.value.code == 2
    assert err.strip() == ("deepict pick: error: --job FILE holds every parameter of the step: give either --job or "
                           "options, not both (see 'deepict pick --help')")


def test_without_job_the_required_options_are_asked_for(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["pick", "--model", "m.pt"])
    assert stop.value.code == 2
    assert "the following arguments are required: --tomogram, --out" in capsys.readouterr().err


def test_job_module_imports_no_torch():
    code = "import sys; sys.modules['torch'] = None; import deepict.jobs, deepict.parameters"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# --------------------------------------------------------------------------------------------
# Running a job file
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_tiny_world(tmp_path_factory.mktemp("jobs"))


def test_pick_job_gives_the_picks_of_the_options(world, tmp_path, capsys, one_torch_thread):
    options = ["--model", world.model, "--tomogram", world.tomo, "--window", "16", "--margin", "4",
               "--batch-size", "4", "--device", "cpu", "--threshold", "0.3"]
    code, out, err = run(capsys, "pick", *options, "--out", tmp_path / "by_options.csv")
    assert code == 0, err
    assert " particle(s) picked in " in out and "particle particle" not in out  # the class name is "particle"
    job = jobs.PickJob(model=str(world.model), tomogram=str(world.tomo), out=str(tmp_path / "by_job.csv"),
                       postprocess=jobs.PostprocessOptions(threshold=0.3),
                       inference=jobs.InferenceOptions(window=16, margin=4, batch_size=4, device="cpu"))
    path = jobs.write_job(job, tmp_path / "pick.json")
    code, _, err = run(capsys, "pick", "--job", path)
    assert code == 0, err
    assert (tmp_path / "by_job.csv").read_text() == (tmp_path / "by_options.csv").read_text()


def test_model_info_job_prints_what_the_options_print(world, tmp_path, capsys):
    code, by_options, _ = run(capsys, "model-info", "--model", world.model)
    path = jobs.write_job(jobs.ModelInfoJob(model=str(world.model)), tmp_path / "info.json")
    code_job, by_job, _ = run(capsys, "model-info", "--job", path)
    assert code == code_job == 0 and by_job == by_options
