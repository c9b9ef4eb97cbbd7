"""The main job, shortened: deepict-demo builds and runs a whole Scipion project and reports F1."""

import json
import re
import subprocess
import sys


def test_demo_builds_a_project_and_reports_f1(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "deepict_scipion.demo", "--workdir", str(tmp_path), "--train-tomograms", "1",
         "--epochs", "1", "--iterations-per-epoch", "2"], capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads(re.search(r"^\{.*?^\}", result.stdout, re.S | re.M).group(0))
    assert 0.0 <= summary["f1"] <= 1.0
    assert summary["true_particles"] > 0
    assert (tmp_path / "userdata" / "projects" / "deepict_demo" / "project.sqlite").exists()
    assert "F1 =" in result.stdout
