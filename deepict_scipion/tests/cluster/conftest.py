"""The queue tests need a running SLURM (``scripts/slurm-up.sh``; ``scripts/test-cluster.sh`` starts it) and
use the hosts.conf block of the README as written: both are checked here, before any test runs, and a
missing scheduler or block fails the run with the reason instead of skipping it.

The parent conftest has already prepared a private Scipion environment; pyworkflow reads hosts.conf when
a project is made, so rewriting the file here (still before any test module imports pyworkflow) is enough.
"""

import os
import re
import subprocess
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[3]
#: The comment right above the README's hosts.conf block (its ```ini fence follows it).
HOSTS_MARKER = "<!-- deepict hosts.conf for SLURM"


def readme_hosts_conf(markdown):
    """The ```ini block that follows the marker comment in ``markdown`` (the README's text), or None."""
    match = re.search(re.escape(HOSTS_MARKER) + r".*?-->\s*```ini\n(.*?)```", markdown, re.DOTALL)
    return match.group(1) if match else None


def _slurm_problem():
    """Why SLURM cannot run the tests here, or None when its node takes jobs."""
    try:
        result = subprocess.run(["sinfo", "-h", "-o", "%P %T"], capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        return "sinfo not found: SLURM is not installed (run: sudo bash scripts/slurm-up.sh)"
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 30 s: is slurmctld running? (sudo bash scripts/slurm-up.sh)"
    if result.returncode != 0:
        return f"sinfo failed ({result.stderr.strip()}): start SLURM with sudo bash scripts/slurm-up.sh"
    states = dict(line.split() for line in result.stdout.splitlines() if line.strip())
    if "cpu*" not in states or "gpu" not in states:
        return f"SLURM has no partitions cpu (default) and gpu ({states}): run sudo bash scripts/slurm-up.sh"
    if states["cpu*"] not in ("idle", "mixed", "allocated", "completing"):
        return f"the SLURM node is {states['cpu*']}: see /var/log/slurm/slurmd.log, rerun scripts/slurm-up.sh"
    return None


README = Path(os.environ.get("DEEPICT_CLUSTER_README") or REPOSITORY / "README.md")
HOSTS_CONF = readme_hosts_conf(README.read_text()) if README.is_file() else None
if HOSTS_CONF is None:
    raise pytest.UsageError(f"{README} has no hosts.conf block for SLURM after '{HOSTS_MARKER} ... -->': the "
                            "queue tests run with the README's block as written")
PROBLEM = _slurm_problem()
if PROBLEM:
    raise pytest.UsageError(f"the queue tests need a running SLURM: {PROBLEM}")
with open(os.environ["SCIPION_HOSTS"], "w") as handle:
    handle.write(HOSTS_CONF)
