"""Fault matrix of the ``deepict`` command line (issues 9 and 15): mistakes of a user, signals, pipes, disks.

Every case runs a real command (``cli.main``, or a ``deepict`` child process where a signal, a pipe
or a resource limit is needed) on small generated files. A refusal must exit with status 2 and print
exactly one line naming the file or option and the fix, with no traceback, before any work; no output
may appear, an earlier result must survive, and no temporary or lock file may be left. Cases are
grouped by category: ``crash`` (was a traceback), ``silent`` (was a wrong result without a word),
``unclear`` (was a misleading or many-line message), ``rough`` (issue 9's rough edges), ``passes``
(already right: guards against regressions).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deepict import __version__
from deepict import io
from deepict.io import outputs
from deepict.cli.main import build_parser, main
from deepict.io import read_coordinates
from deepict.nn.model_files import COMPLETE, read_model_info
from deepict.train.state import state_path
from tiny_world import TINY_TRAINING, make_tiny_world, run

pytestmark = pytest.mark.usefixtures("one_torch_thread")

INFERENCE = ["--window", "32", "--margin", "4", "--batch-size", "4", "--device", "cpu"]
EARLIER_RESULT = b"the result of an earlier run\n"
DEEPICT = [sys.executable, "-m", "deepict.cli.main"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_tiny_world(tmp_path_factory.mktemp("world"))


def litter(folder) -> list:
    """Temporary files, scratch folders and lock files left anywhere under ``folder``."""
    return sorted(str(p) for p in Path(folder).rglob(".*") if p.name.endswith(io.TEMPORARY_SUFFIX)
                  or p.name.startswith(io.SCRATCH_PREFIX) or p.name.endswith(outputs.LOCK_SUFFIX))


def assert_one_line(code, err, words, folder=None):
    """Exit 2, exactly one stderr line holding every word (file and fix), no traceback, no litter."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for word in words:
        assert str(word) in lines[0], (word, lines[0])
    if folder is not None:
        assert litter(folder) == []


def pick_argv(world, out, *extra):
    return ["pick", "--model", world.model, "--tomogram", world.tomo, "--out", out, *INFERENCE, *extra]


def train3d_argv(world, out, *extra):
    return ["train3d", "--tomograms", world.tomo, "--coords", world.coords, "--out", out, *TINY_TRAINING, *extra]


def segment3d_argv(world, out, *extra):
    return ["segment3d", "--model", world.model, "--tomogram", world.tomo, "--out", out, *INFERENCE, *extra]


def export_argv(world, out, fmt="relion4"):
    return ["export", "--coords", world.coords, "--tomogram", world.tomo, "--format", fmt, "--out", out]


# --------------------------------------------------------------------------------------------
# crash: output paths that cannot be written (were IsADirectoryError / FileExistsError / OSError)
# --------------------------------------------------------------------------------------------

FOLDER_OUTPUTS = {
    "pick --out": lambda w, p: pick_argv(w, p),
    "pick --probability-map": lambda w, p: pick_argv(w, p.parent / "picks.csv", "--probability-map", p),
    "segment3d --out": lambda w, p: segment3d_argv(w, p),
    "train3d --out": lambda w, p: train3d_argv(w, p),
    "model-info --json": lambda w, p: ["model-info", "--model", w.model, "--json", p],
    "ensemble --out": lambda w, p: ["ensemble", "--models", w.model, w.model, "--out", p],
    "evaluate --json": lambda w, p: ["evaluate", "--pred", w.coords, "--gt", w.coords, "--json", p],
    "evaluate --curve": lambda w, p: ["evaluate", "--pred", w.coords, "--gt", w.coords, "--curve", p],
    "spectrum --out": lambda w, p: ["spectrum", "--tomogram", w.tomo, "--out", p],
}


@pytest.mark.parametrize("case", sorted(FOLDER_OUTPUTS))
def test_crash_output_is_a_folder(case, world, tmp_path, capsys):
    target = tmp_path / "existing_folder"
    target.mkdir()
    code, out, err = run(capsys, *FOLDER_OUTPUTS[case](world, target))
    assert_one_line(code, err, [target, "is a folder", "give a file name"], tmp_path)
    assert list(target.iterdir()) == []


@pytest.mark.parametrize("case", sorted(FOLDER_OUTPUTS))
def test_crash_output_folder_is_a_file(case, world, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_bytes(EARLIER_RESULT)
    code, out, err = run(capsys, *FOLDER_OUTPUTS[case](world, blocker / "sub" / "result.out"))
    assert_one_line(code, err, [blocker, "is a file, not a folder"], tmp_path)
    assert blocker.read_bytes() == EARLIER_RESULT


@pytest.mark.parametrize("case", ["pick --out", "train3d --out", "spectrum --out"])
def test_crash_output_folder_not_writable(case, world, capsys):
    # /sys refuses new files even to root (a chmod 0555 folder does not stop root, who runs CI).
    if not Path("/sys").is_dir() or os.access("/sys", os.W_OK) and _can_create_in("/sys"):
        pytest.skip("needs a folder this user cannot write in")
    code, out, err = run(capsys, *FOLDER_OUTPUTS[case](world, Path("/sys/deepict_result")))
    assert_one_line(code, err, ["/sys", "cannot write in", "choose a folder you may write to"])


def _can_create_in(folder) -> bool:
    try:
        with open(Path(folder) / ".deepict_probe", "x"):
            pass
    except OSError:
        return False
    os.unlink(Path(folder) / ".deepict_probe")
    return True


@pytest.mark.parametrize("case", ["pick --out", "train3d --out", "export --out"])
def test_crash_disk_full_is_refused_before_the_work(case, world, tmp_path, capsys, monkeypatch):
    # The real free space of the test disk, measured against a threshold above it: a disk 'full' for this run.
    monkeypatch.setattr(outputs, "MIN_FREE_BYTES", shutil.disk_usage(tmp_path).total + 1)
    argv = export_argv(world, tmp_path / "p.star") if case == "export --out" else \
        FOLDER_OUTPUTS[case](world, tmp_path / "result.out")
    code, out, err = run(capsys, *argv)
    assert_one_line(code, err, [tmp_path, "is full", "free some space"], tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == []


def test_crash_export_into_a_folder_under_a_file(world, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_bytes(EARLIER_RESULT)
    code, out, err = run(capsys, *export_argv(world, blocker / "particles.star"))
    assert_one_line(code, err, [blocker, "is a file, not a folder"], tmp_path)


def _limit_file_size(limit: int):
    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of killing the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return limit_file_size


@pytest.mark.parametrize("command", ["equalize", "train3d"])
def test_crash_write_error_during_the_work_is_one_line(command, world, tmp_path):
    """A write that fails mid-run (a file-size limit, as a full disk would) is one line, exit 2, no litter.

    train3d used to end in torch's 'RuntimeError: [enforce fail at inline_container.cc]' traceback.
    """
    out = tmp_path / ("equalized.mrc" if command == "equalize" else "model.pt")
    argv = ["equalize", "--tomogram", world.tomo, "--reference", world.tomo, "--out", out] \
        if command == "equalize" else train3d_argv(world, out, "--initial-features", "8")
    result = subprocess.run(DEEPICT + [str(a) for a in argv], capture_output=True, text=True,
                            preexec_fn=_limit_file_size(8192), timeout=300)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert_one_line(result.returncode, lines[-1], [out.name, "writing failed" if command == "train3d"
                                                   else "File too large"], tmp_path)
    assert "Traceback" not in result.stderr and not out.exists()


# --------------------------------------------------------------------------------------------
# crash: bad numbers and signals
# --------------------------------------------------------------------------------------------

BAD_PARAMETERS = {
    "train3d --learning-rate -1": (lambda w, p: train3d_argv(w, p, "--learning-rate", "-1"), "learning rate"),
    "train3d --learning-rate nan": (lambda w, p: train3d_argv(w, p, "--learning-rate", "nan"), "learning rate"),
    "train3d --decoder-dropout 1": (lambda w, p: train3d_argv(w, p, "--decoder-dropout", "1"), "decoder dropout"),
    "train3d --coarser-sampling 9": (lambda w, p: train3d_argv(w, p, "--coarser-sampling", "9"), "coarser-sampling"),
    "train2d --learning-rate -1": (lambda w, p: ["train2d", "--tomograms", w.tomo, "--masks", w.tomo, "--out", p,
                                                 "--learning-rate", "-1"], "learning rate"),
    "train2d --tile-size 100": (lambda w, p: ["train2d", "--tomograms", w.tomo, "--masks", w.tomo, "--out", p,
                                              "--tile-size", "100"], "multiple of 16"),
    "pick --threshold 1.5": (lambda w, p: pick_argv(w, p, "--threshold", "1.5"), "threshold"),
    "pick --threshold -1": (lambda w, p: pick_argv(w, p, "--threshold", "-1"), "threshold"),
    "segment3d --threshold 1.5": (lambda w, p: segment3d_argv(w, p, "--threshold", "1.5"), "threshold"),
    "pick --min-size > --max-size": (lambda w, p: pick_argv(w, p, "--min-size", "50", "--max-size", "10"),
                                     "maximum cluster size"),
    "pick --min-distance -2": (lambda w, p: pick_argv(w, p, "--min-distance", "-2"), "--min-distance"),
    "segment2d --threshold 2": (lambda w, p: ["segment2d", "--model", w.model, "--tomogram", w.tomo, "--out", p,
                                              "--threshold", "2"], "--threshold"),
}


@pytest.mark.parametrize("case", sorted(BAD_PARAMETERS))
def test_crash_bad_parameter_refused_before_any_work(case, world, tmp_path, capsys):
    build, words = BAD_PARAMETERS[case]
    out = tmp_path / "result.out"
    started = time.monotonic()
    code, _, err = run(capsys, *build(world, out))
    assert_one_line(code, err, [words], tmp_path)
    assert not out.exists() and time.monotonic() - started < 10


def _start(argv, folder, **kwargs):
    # SIGINT is ignored in background jobs (as CI may run): restore its default so that Ctrl-C is simulated.
    return subprocess.Popen(DEEPICT + [str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=folder, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
                            **kwargs)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_crash_interrupted_training_is_one_line_and_cleans_up(signum, world, tmp_path):
    out = tmp_path / "model.pt"
    argv = train3d_argv(world, out)
    argv[argv.index("--epochs") + 1] = "100000"
    child = _start(argv, tmp_path)
    deadline = time.monotonic() + 120
    while not outputs.lock_path(out).exists() and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.2)
    time.sleep(2)  # into the training loop
    child.send_signal(signum)
    _, err = child.communicate(timeout=120)
    # 128 + signal, as a shell reports a process killed by it; CPython 3.11 now and then ends a run whose
    # Ctrl-C it saw in C code by re-raising SIGINT at exit (-2 here), which a shell also shows as 130.
    assert child.returncode in (128 + signum, -signum), err
    # Progress lines may come first; the run must end in one line saying what stopped it.
    assert "Traceback" not in err and signal.Signals(signum).name in err.strip().splitlines()[-1], err
    assert litter(tmp_path) == []
    # Interrupted before its first epoch ended, the run leaves no model and says nothing was written; after it,
    # the best epoch so far, marked unfinished (pick and model-info say so), beside the state to resume from,
    # and the line says how to go on.
    if out.exists():
        from deepict.cli.model_info import describe
        assert read_model_info(out).training[COMPLETE] is False and state_path(out).exists()
        assert describe(out)["complete"] is False
        assert f"{out} holds the best epoch so far" in err and "--resume" in err, err
    else:
        assert "outputs not yet complete were not written" in err, err


def test_crash_a_new_training_into_a_finished_model_is_refused_and_keeps_it(world, tmp_path, capsys):
    """Training again into OUT without --resume used to overwrite the finished model from its first epoch on: a
    rerun stopped early left an unfinished model where the finished one was. It is refused before any work;
    --resume (here: every epoch done) still goes on, and a file that is no model is replaced as before."""
    out = tmp_path / "model.pt"
    shutil.copy(world.model, out)
    shutil.copy(world.state, state_path(out))
    before = out.read_bytes()
    code, _, err = run(capsys, *train3d_argv(world, out))
    assert_one_line(code, err, [str(out), "holds a finished model", "another --out", "--resume"], tmp_path)
    assert out.read_bytes() == before
    state_path(out).unlink()  # --resume without a state would start afresh: refused too
    code, _, err = run(capsys, *train3d_argv(world, out, "--resume"))
    assert_one_line(code, err, ["holds a finished model"], tmp_path)
    shutil.copy(world.state, state_path(out))
    code, out_text, err = run(capsys, *train3d_argv(world, out, "--resume"))
    assert code == 0 and "every epoch is done" in out_text + err
    out.write_bytes(EARLIER_RESULT)
    code, _, err = run(capsys, *train3d_argv(world, out))
    assert code == 0 and read_model_info(out).training[COMPLETE] is True


# --------------------------------------------------------------------------------------------
# silent: accepted, wrong result without a word
# --------------------------------------------------------------------------------------------

def test_crash_signal_inside_a_c_function_is_an_interruption(monkeypatch, capsys):
    """SIGTERM arriving while a C function runs surfaces as a SystemError caused by the handler's Interrupted:
    still the one-line interruption, not a traceback; any other SystemError is not swallowed."""
    from deepict.cli import main as cli_main
    from deepict.errors import Interrupted

    def stopped_inside_c(args):
        try:
            raise Interrupted(signal.SIGTERM)
        except Interrupted as exc:
            raise SystemError("<built-in function fspath> returned a result with an exception set") from exc

    def broken(args):
        raise SystemError("a real bug")

    for handler in (stopped_inside_c, broken):
        parser = argparse.ArgumentParser()
        parser.set_defaults(handler=handler, command="pick")
        monkeypatch.setattr(cli_main, "build_parser", lambda parser=parser: parser)
        if handler is broken:
            with pytest.raises(SystemError, match="a real bug"):
                main([])
        else:
            assert main([]) == 128 + signal.SIGTERM
            assert "deepict pick: interrupted by SIGTERM" in capsys.readouterr().err


def test_silent_negative_border_refused(world, tmp_path, capsys):
    code, _, err = run(capsys, *pick_argv(world, tmp_path / "p.csv", "--border", "-5"))
    assert_one_line(code, err, ["border", "negative"], tmp_path)


@pytest.mark.parametrize("command", ["train3d", "train2d", "pick"])
def test_silent_empty_class_name_refused(command, world, tmp_path, capsys):
    out = tmp_path / "result.out"
    argv = {"train3d": train3d_argv(world, out, "--class-name", ""),
            "train2d": ["train2d", "--tomograms", world.tomo, "--masks", world.tomo, "--out", out, "--class-name", " "],
            "pick": pick_argv(world, out, "--class-name", "")}[command]
    code, _, err = run(capsys, *argv)
    assert_one_line(code, err, ["class", "empty"], tmp_path)
    assert not out.exists()


@pytest.mark.parametrize("command", ["train3d", "train2d"])
@pytest.mark.parametrize("name, valid", [("large ribo", "large_ribo"), ("ribo/fas", "ribo_fas")])
def test_silent_class_name_that_breaks_file_names_refused(command, name, valid, world, tmp_path, capsys):
    """A space or '/' in a class name was stored in the model, then broke the files and copick objects it names."""
    out = tmp_path / "result.out"
    argv = {"train3d": train3d_argv(world, out, "--class-name", name),
            "train2d": ["train2d", "--tomograms", world.tomo, "--masks", world.tomo, "--out", out, "--class-name",
                        name]}[command]
    code, _, err = run(capsys, *argv)
    assert_one_line(code, err, [f"class name '{name}'", "letters, digits, '_', '-' and '.'", f"e.g. '{valid}'"],
                    tmp_path)
    assert not out.exists()


@pytest.mark.parametrize("case", ["pick --out", "train3d --out", "model-info --json"])
def test_silent_trailing_slash_is_a_folder_not_a_file(case, world, tmp_path, capsys):
    target = f"{tmp_path / 'newdir'}{os.sep}"
    code, _, err = run(capsys, *FOLDER_OUTPUTS[case](world, target))
    assert_one_line(code, err, [target, "is a folder"], tmp_path)
    assert not (tmp_path / "newdir").exists()


def test_silent_two_runs_to_the_same_output(world, tmp_path, capsys):
    out = tmp_path / "picks.csv"
    with outputs.claimed_outputs(("--out", out)):  # another run is writing it
        code, _, err = run(capsys, *pick_argv(world, out))
        assert_one_line(code, err, [out, "another deepict run is writing it"])
        assert not out.exists()
    assert run(capsys, *pick_argv(world, out))[0] == 0
    assert read_coordinates(out).xyz.shape[1] == 3 and litter(tmp_path) == []


def test_silent_same_file_for_two_outputs(world, tmp_path, capsys):
    out = tmp_path / "both.mrc"
    code, _, err = run(capsys, *segment3d_argv(world, out, "--probability-map", out))
    assert_one_line(code, err, ["--probability-map", "--out", out], tmp_path)


# --------------------------------------------------------------------------------------------
# unclear and rough edges (issue 9)
# --------------------------------------------------------------------------------------------

def test_unclear_usage_error_is_one_line(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["pick", "--model", "m.pt", "--tomogram", "t.mrc", "--out", "p.csv", "--window", "0"])
    err = capsys.readouterr().err
    assert stop.value.code == 2
    assert err.strip() == ("deepict pick: error: argument --window: must be at least 1, not 0 "
                           "(see 'deepict pick --help')")


def _subcommand_parsers():
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return [(parser.prog, parser)] + sorted(action.choices.items())


def test_rough_every_option_has_help():
    missing = [f"{name} {'/'.join(a.option_strings) or a.dest}" for name, sub in _subcommand_parsers()
               for a in sub._actions if not a.help]
    assert missing == []


def test_rough_version(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"deepict {__version__}"


@pytest.mark.parametrize("command", ["train2d", "segment2d", "train3d", "pick", "segment3d"])
def test_rough_every_torch_command_takes_threads(command):
    parsers = dict(_subcommand_parsers())
    assert any("--threads" in a.option_strings for a in parsers[command]._actions)


@pytest.mark.parametrize("form", [["--checkpoint", "ribo.pth"], ["ribo.pth"]], ids=["option", "positional"])
def test_rough_import_model_takes_checkpoint_option_and_old_positional(form):
    args = build_parser().parse_args(["import-model", *form, "--out", "ribo.pt"])
    assert (args.checkpoint or args.checkpoint_path) == "ribo.pth"


def test_rough_train3d_help_examples_keep_their_line_breaks(capsys):
    with pytest.raises(SystemExit):
        main(["train3d", "--help"])
    assert "--out ribo.pt \\\n" in capsys.readouterr().out


def test_rough_closed_pipe_ends_quietly(world, tmp_path):
    """``deepict evaluate ... | true``: the reader is gone before the JSON is written."""
    command = " ".join([*map(str, DEEPICT), "evaluate", "--pred", str(world.coords), "--gt", str(world.coords)])
    result = subprocess.run(["bash", "-c", f"{command} 2>{tmp_path / 'err'} | true; echo ${{PIPESTATUS[0]}}"],
                            capture_output=True, text=True, timeout=300)
    err = (tmp_path / "err").read_text()
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert int(result.stdout.split()[-1]) in (0, 128 + signal.SIGPIPE)


# --------------------------------------------------------------------------------------------
# passes: right already, kept right
# --------------------------------------------------------------------------------------------

def test_passes_pick_writes_picks_and_leaves_nothing_else(world, tmp_path, capsys):
    out, probability = tmp_path / "picks.csv", tmp_path / "probability.mrc"
    code, _, err = run(capsys, *pick_argv(world, out, "--probability-map", probability, "--threads", "1"))
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["picks.csv", "probability.mrc"]


def test_passes_model_info_json(world, tmp_path, capsys):
    code, out, _ = run(capsys, "model-info", "--model", world.model, "--json", tmp_path / "info.json")
    assert code == 0 and json.loads(out) == json.loads((tmp_path / "info.json").read_text())
    assert litter(tmp_path) == []


def test_passes_export_into_an_existing_folder_refused(world, tmp_path, capsys):
    target = tmp_path / "folder.star"
    target.mkdir()
    code, _, err = run(capsys, *export_argv(world, target))
    assert_one_line(code, err, [target], tmp_path)


def test_passes_warp_export_writes_a_folder(world, tmp_path, capsys):
    code, out, err = run(capsys, *export_argv(world, tmp_path / "warp", "warp"))
    assert code == 0, err
    assert (tmp_path / "warp").is_dir() and litter(tmp_path) == []


def test_passes_missing_tomogram_named(world, tmp_path, capsys):
    missing = tmp_path / "absent.mrc"
    code, _, err = run(capsys, "pick", "--model", world.model, "--tomogram", missing, "--out", tmp_path / "p.csv",
                       *INFERENCE)
    assert_one_line(code, err, [missing], tmp_path)
