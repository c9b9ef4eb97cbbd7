#!/usr/bin/env bash
# The test suite: engine unit tests and protocol tests in real headless Scipion projects.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup.sh
exec .venv/bin/python -m pytest -q -p no:cacheprovider deepict_scipion/tests "$@"
