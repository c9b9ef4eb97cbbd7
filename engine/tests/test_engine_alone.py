"""The engine stands alone: its command line runs where Scipion cannot be imported, and starts without torch.

A site may install the engine in an environment of its own (no Scipion there), and every ``deepict`` call
pays for what the package imports before it parses its arguments. Each check runs ``python -m deepict`` in a
fresh interpreter (this one has imported torch, and maybe Scipion) in which the forbidden packages are made
unimportable before anything else (``sys.modules[name] = None``) and every attempt to import them is recorded,
so that an engine module that imports Scipion, even inside ``try/except ImportError``, fails the test.
"""

import argparse
import json
import pkgutil
import subprocess
import sys
from importlib.metadata import entry_points

import deepict
from deepict.cli.main import build_parser
from tiny_world import noise_tomogram, untrained_model

#: Scipion and its plugins (the plugin of this repository among them): the engine imports none of them.
SCIPION = sorted({"pyworkflow", "pwem", "tomo", "deepict_scipion"}
                 | {entry.value.split(":")[0].split(".")[0] for entry in entry_points(group="pyworkflow.plugin")})

#: Runs ``python -m deepict`` once per argument list in argv[2] (a JSON list of lists), then imports the
#: modules of argv[3] (a JSON list), with the top-level packages of argv[1] unimportable; prints one JSON line:
#: exit codes, outputs, the modules that failed to import and the attempted imports.
ALONE = """
import builtins, contextlib, importlib, io, json, runpy, sys, traceback

blocked, argvs, modules = (json.loads(arg) for arg in sys.argv[1:4])  # before the runs replace sys.argv
blocked = set(blocked)
for name in blocked:
    sys.modules[name] = None
attempts = []
real_import = builtins.__import__

def recording_import(name, globals=None, locals=None, fromlist=(), level=0):
    if level == 0 and name.split(".")[0] in blocked:
        attempts.append(name)
    return real_import(name, globals, locals, fromlist, level)

builtins.__import__ = recording_import
runs = []
for argv in argvs:
    sys.argv = ["deepict"] + argv
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            runpy.run_module("deepict", run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
        except Exception:  # e.g. an engine module importing what is blocked
            code = "crash"
            traceback.print_exc()
    runs.append({"argv": argv, "code": code, "out": out.getvalue(), "err": err.getvalue()})
failed = {}
for module in modules:
    try:
        importlib.import_module(module)
    except Exception:
        failed[module] = traceback.format_exc(limit=-3)
loaded = sorted(m for m, module in sys.modules.items() if module is not None and m.split(".")[0] in blocked)
print(json.dumps({"runs": runs, "failed": failed, "attempts": sorted(set(attempts)), "loaded": loaded}))
"""


def run_alone(blocked, *argvs, modules=()):
    """Run ``deepict`` with each of ``argvs``, then import ``modules``, in one fresh interpreter where
    ``blocked`` cannot be imported."""
    result = subprocess.run([sys.executable, "-c", ALONE, json.dumps(sorted(blocked)), json.dumps(argvs),
                             json.dumps(sorted(modules))], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def subcommands():
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(action.choices)


def assert_succeeded(report):
    for run in report["runs"]:
        assert run["code"] == 0, f"deepict {' '.join(run['argv'])}: exit {run['code']}\n{run['err'][-3000:]}"


def test_subcommands_are_found():
    """The help checks below cover the real command set (an empty list would pass them vacuously)."""
    assert {"train3d", "pick", "segment3d", "train2d", "segment2d", "evaluate", "export", "equalize",
            "spectrum", "import-model", "model-info"} <= set(subcommands())


def test_help_of_every_command_runs_without_scipion_or_torch():
    """Starting ``deepict`` (importing it, building its parser, any --help) needs no Scipion and imports no
    torch: torch is imported by the steps that run a network, when they run."""
    report = run_alone(SCIPION + ["torch"], ["--help"], *[[command, "--help"] for command in subcommands()])
    assert_succeeded(report)
    assert all("usage: deepict" in run["out"] for run in report["runs"])
    assert not report["attempts"] and not report["loaded"], report


def engine_modules():
    """Every module of the engine, found by walking the installed package (not a list to keep up to date)."""
    return [info.name for info in pkgutil.walk_packages(deepict.__path__, prefix="deepict.")
            if info.name != "deepict.__main__"]  # running it is what the other tests do


def test_every_engine_module_imports_without_scipion():
    """Modules no command above loads (training, 2D, export) must not need Scipion either."""
    modules = engine_modules()
    assert {"deepict.train.train3d", "deepict.formats", "deepict.evaluate.metrics"} <= set(modules)
    report = run_alone(SCIPION, modules=modules)
    assert not report["failed"], "\n".join(f"{name}:\n{error}" for name, error in report["failed"].items())
    assert not report["attempts"] and not report["loaded"], report


def test_pick_runs_without_scipion(tmp_path):
    model = untrained_model(tmp_path / "model.pt")
    tomogram = noise_tomogram(tmp_path / "tomo.mrc")
    picks = tmp_path / "picks.csv"
    report = run_alone(SCIPION, ["pick", "--model", str(model), "--tomogram", str(tomogram), "--out", str(picks),
                                 "--window", "16", "--margin", "4", "--batch-size", "4", "--device", "cpu"])
    assert_succeeded(report)
    assert picks.is_file()
    assert not report["attempts"] and not report["loaded"], report


def test_a_step_that_needs_torch_says_so_in_an_environment_without_it(tmp_path):
    """The engine's environment of a Scipion installation may lack torch (an extra): pick printed a
    ModuleNotFoundError traceback and exited 1, and the protocol said only 'returned non-zero exit status 1'."""
    model = untrained_model(tmp_path / "model.pt")
    tomogram = noise_tomogram(tmp_path / "tomo.mrc")
    report = run_alone(SCIPION + ["torch"], ["pick", "--model", str(model), "--tomogram", str(tomogram),
                                             "--out", str(tmp_path / "picks.csv")])
    run, = report["runs"]
    assert run["code"] == 2 and "Traceback" not in run["err"], run["err"]
    assert "needs torch, which is not installed in" in run["err"] and "scipion3 installb deepict" in run["err"]
    assert not (tmp_path / "picks.csv").exists()
