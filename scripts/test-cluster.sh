#!/usr/bin/env bash
# The queue tests: DeePiCt's protocols through Scipion's queue to a real SLURM (deepict_scipion/tests/cluster),
# with the README's hosts.conf block as written. Starts the local single-node SLURM first when it is not
# running (scripts/slurm-up.sh, as root); where the scheduler cannot start, the run fails with the reason.
# Extra arguments go to pytest (e.g. -k pick).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup.sh
if ! sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated|completing)'; then
    if [ "$(id -u)" = 0 ]; then
        bash scripts/slurm-up.sh || { echo "test-cluster: error: SLURM could not start (above): no queue tests ran" >&2; exit 1; }
    elif command -v sudo >/dev/null; then
        sudo bash scripts/slurm-up.sh || { echo "test-cluster: error: SLURM could not start (above): no queue tests ran" >&2; exit 1; }
    else
        echo "test-cluster: error: SLURM is not running and this is not root: run 'bash scripts/slurm-up.sh' as root" >&2
        exit 1
    fi
fi
# -rs lists skipped tests in the summary (there should be none: the conftest fails instead of skipping).
exec .venv/bin/python -m pytest -q -rs -p no:cacheprovider deepict_scipion/tests/cluster "$@"
