"""A step run with ``--job X.json`` keeps its warnings in ``X.warnings.json`` (deepict.job_warnings), where the
Scipion protocols read them for their summaries: every warning line, from either stream, however the step ends;
without ``--job`` nothing is written beside the user's files."""

from __future__ import annotations

import json
import sys

import pytest

from deepict import jobs
from deepict.job_warnings import (forget_warnings, read_warnings, recording_warnings, warnings_in_folder,
                                  warnings_path)
from deepict.infer.options import InferenceOptions
from tiny_world import constant_model, noise_tomogram, run


def test_warning_lines_of_both_streams_are_kept_and_everything_passes_through(tmp_path, capsys):
    job = tmp_path / "pick_t1.json"
    with recording_warnings(job):
        print("epoch 1/2 ...")
        print("warning: the spectrum of t1.mrc differs", flush=True)
        sys.stderr.write("warning: t1.csv: 2 repeated row(s)")  # the last one, without its newline
    out, err = capsys.readouterr()
    assert out == "epoch 1/2 ...\nwarning: the spectrum of t1.mrc differs\n"
    assert err.startswith("warning: t1.csv: 2 repeated row(s)")
    assert warnings_path(job) == tmp_path / "pick_t1.warnings.json"
    assert read_warnings(job) == ["the spectrum of t1.mrc differs", "t1.csv: 2 repeated row(s)"]
    assert warnings_in_folder(tmp_path) == {"pick_t1": read_warnings(job)}
    forget_warnings(job)
    assert not warnings_path(job).exists() and read_warnings(job) == [] and warnings_in_folder(tmp_path) == {}


def test_a_failing_step_keeps_its_warnings_and_a_quiet_one_records_none(tmp_path):
    with pytest.raises(RuntimeError), recording_warnings(tmp_path / "a.json"):
        print("warning: before the failure")
        raise RuntimeError("step failed")
    assert read_warnings(tmp_path / "a.json") == ["before the failure"]
    with recording_warnings(tmp_path / "b.json"):
        print("no warning here")
    assert json.loads(warnings_path(tmp_path / "b.json").read_text()) == []
    assert warnings_in_folder(tmp_path) == {"a": ["before the failure"]}


def test_a_missing_job_folder_is_not_created(tmp_path):
    with recording_warnings(tmp_path / "absent" / "job.json"):
        print("warning: nowhere to keep it")
    assert not (tmp_path / "absent").exists()


def test_deepict_with_a_job_file_records_the_steps_warnings(tmp_path, capsys, one_torch_thread):
    """The segmentation of a map above the threshold everywhere warns; run from a job file, the warning is
    also kept beside it; run with options, nothing is written beside the user's files."""
    model, tomogram = constant_model(tmp_path / "m.pt", 0.45), noise_tomogram(tmp_path / "t.mrc")
    job = jobs.Segment3DJob(model=str(model), tomogram=str(tomogram), out=str(tmp_path / "mask.mrc"),
                            postprocess=jobs.PostprocessOptions(threshold=0.4),
                            inference=InferenceOptions(window=16, margin=4, device="cpu"))
    path = jobs.write_job(job, tmp_path / "segment3d_t.json")
    code, out, _ = run(capsys, "segment3d", "--job", path)
    assert code == 0 and "warning: at threshold 0.4 the segmentation covers 100 % of the tomogram" in out
    assert read_warnings(path) == [line[len("warning: "):] for line in out.splitlines()
                                   if line.startswith("warning: ")]
    assert len(read_warnings(path)) == 1
    before = sorted(p.name for p in tmp_path.iterdir())
    code, _, _ = run(capsys, "segment3d", "--model", model, "--tomogram", tomogram, "--out", tmp_path / "mask2.mrc",
                     "--threshold", "0.4", "--window", "16", "--margin", "4", "--device", "cpu")
    assert code == 0 and sorted(p.name for p in tmp_path.iterdir()) == sorted(before + ["mask2.mrc"])


def test_a_refused_job_file_leaves_no_warnings_file(tmp_path, capsys):
    """A job file that cannot be read ran nothing: nothing is written beside it, so the protocol shows no
    warnings of a run that never happened."""
    job = tmp_path / "segment3d_t.json"
    job.write_text('{"step": "segment3d", "model": ', encoding="utf-8")
    code, _, err = run(capsys, "segment3d", "--job", job)
    assert code == 2 and "segment3d_t.json" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["segment3d_t.json"]
