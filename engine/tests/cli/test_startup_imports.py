"""Start-up: ``deepict --help`` and every subcommand's ``--help`` import no torch, scipy or Scipion.

Building the parser happens on every ``deepict`` call; the step's heavy modules are imported by its
handler only. Checked in a fresh interpreter (this test process has imported everything already).
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "scipy", "pyworkflow", "skimage")

SCRIPT = """
import contextlib, io, json, sys
from deepict.cli.main import build_parser
parser = build_parser()
commands = sorted(parser._subparsers._group_actions[0].choices)
for argv in [["--help"]] + [[command, "--help"] for command in commands]:
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            parser.parse_args(argv)
        except SystemExit:
            pass
print(json.dumps({"commands": commands, "heavy": [name for name in %r if name in sys.modules]}))
""" % (HEAVY,)


def test_every_help_builds_without_heavy_imports():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"pick", "train3d", "train2d", "segment2d", "segment3d", "export", "evaluate"} <= set(result["commands"])
    assert result["heavy"] == [], f"building the parser imported {result['heavy']}"


def test_the_help_of_a_network_step_runs_as_a_command():
    done = subprocess.run([sys.executable, "-m", "deepict", "segment2d", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and "--precision {auto,fp32,bf16,fp16}" in done.stdout
