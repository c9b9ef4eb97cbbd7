"""The main job, shortened: deepict-demo builds and runs a whole Scipion project and reports F1.

It runs the console script ``deepict-demo``, the entry point that ``scripts/demo.sh`` runs
(test_readme checks that the two stay the same).
"""

import json
import os
import re
import signal
import subprocess
import sys

import pyworkflow as pw
from pyworkflow.project import Project

from deepict_scipion.demo import PROJECT
from deepict_scipion.headless import TOMOGRAPHY_VIEW, project_folder

DEMO = os.path.join(os.path.dirname(sys.executable), "deepict-demo")
#: The protocols of the demo project in the order they run, as the project's graph names them.
LABELS = ["import training tomograms", "import ribosome annotations", "train ribosome network",
          "import new tomogram", "pick ribosomes"]
#: The shortened demo (one training tomogram, 50 batches, seed 0) reaches F1 of about 0.7 on the held-out
#: tomogram; a network that learned nothing, or picks in the wrong frame, scores 0.
F1_FLOOR = 0.5


def run_demo(*args, home, cwd):
    environment = dict(os.environ, HOME=str(home))
    return subprocess.run([DEMO, *args], capture_output=True, text=True, timeout=1200, env=environment, cwd=cwd)


def assert_no_scipion_files(home):
    """Scipion wrote nothing into the home folder (matplotlib may cache its fonts there)."""
    written = [str(path.relative_to(home)) for path in home.rglob("*")]
    assert not [path for path in written if "scipion" in path.lower()], written


def test_demo_builds_a_project_and_reports_f1(tmp_path):
    home, workdir = tmp_path / "home", tmp_path / "demo"
    home.mkdir()
    result = run_demo("--workdir", str(workdir), "--train-tomograms", "1", "--epochs", "1",
                      "--iterations-per-epoch", "50", home=home, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads(re.search(r"^\{.*?^\}", result.stdout, re.S | re.M).group(0))
    assert F1_FLOOR <= summary["f1"] <= 1.0, summary
    assert summary["true_particles"] > 0
    assert "F1 =" in result.stdout
    # The training's progress reaches the terminal while it runs, under the protocol's name.
    assert re.search(r"^  \[train ribosome network\] .*\bepoch 1/1\b", result.stdout, re.M), result.stdout[-3000:]
    assert re.search(r"^  \[pick ribosomes\] ", result.stdout, re.M)
    # The project's graph tells the two tomogram imports apart.
    path = project_folder(workdir, PROJECT)
    project = Project(pw.Config.getDomain(), path)
    project.load(chdir=False)
    assert [run.getRunName() for run in project.getRuns()] == LABELS
    # `deepict-demo --gui` opens it where the DeePiCt protocols are, not in the single-particle view.
    assert project.getProtocolView() == TOMOGRAPHY_VIEW
    project.closeMapper()
    # Everything lies in the work folder: no ~/ScipionUserData, no stray file in the current folder.
    assert_no_scipion_files(home)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo", "home"]


def test_gui_without_a_project_names_workdir_and_creates_nothing(tmp_path):
    home, empty = tmp_path / "home", tmp_path / "empty"
    home.mkdir()
    empty.mkdir()
    for args in ([], ["--workdir", str(empty)]):  # the default work folder of the current folder, then a given one
        result = run_demo("--gui", *args, home=home, cwd=empty)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "--workdir" in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert not list(empty.iterdir())
    assert_no_scipion_files(home)


def test_gui_without_a_display_says_so_in_one_line(tmp_path):
    home, workdir = tmp_path / "home", tmp_path / "demo"
    home.mkdir()
    sqlite = os.path.join(project_folder(str(workdir), PROJECT), "project.sqlite")
    os.makedirs(os.path.dirname(sqlite))
    open(sqlite, "w").close()  # the project of an earlier run, as far as --gui checks
    environment = {key: value for key, value in os.environ.items() if key != "DISPLAY"}
    result = subprocess.run([DEMO, "--gui", "--workdir", str(workdir)], capture_output=True, text=True, timeout=120,
                            env=dict(environment, HOME=str(home)), cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "DISPLAY" in result.stderr and "xvfb-run" in result.stderr


def test_ctrl_c_ends_the_demo_with_one_line(tmp_path):
    home, workdir = tmp_path / "home", tmp_path / "demo"
    home.mkdir()
    # In a session of its own, as a terminal's Ctrl-C reaches the demo and its child processes (the group).
    child = subprocess.Popen([DEMO, "--workdir", str(workdir), "--train-tomograms", "1", "--epochs", "1",
                              "--iterations-per-epoch", "50"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=dict(os.environ, HOME=str(home)), cwd=tmp_path, start_new_session=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    for line in child.stdout:  # a protocol's log line: the child process runs a protocol
        if line.startswith("  ["):
            break
    os.killpg(child.pid, signal.SIGINT)
    _, err = child.communicate(timeout=300)
    assert child.returncode == 128 + signal.SIGINT, err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("deepict-demo: interrupted"), err
