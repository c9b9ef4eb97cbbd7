#!/usr/bin/env bash
# The test suite: the engine's tests (engine/tests) and the plugin's protocol tests in real headless Scipion projects.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup.sh
# Given test files or folders first (bash scripts/test.sh deepict_scipion/tests/test_readme.py -x), it runs those;
# otherwise the whole suite with any pytest options given. The queue tests need a running SLURM:
# scripts/test-cluster.sh runs them.
if [ $# -gt 0 ] && [ -e "${1%%::*}" ]; then
    exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
fi
exec .venv/bin/python -m pytest -q -p no:cacheprovider engine/tests deepict_scipion/tests \
    --ignore=deepict_scipion/tests/cluster "$@"
