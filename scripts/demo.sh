#!/usr/bin/env bash
# The main job: build a Scipion project on synthetic data, train, pick and report F1.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup.sh
exec .venv/bin/deepict-demo "$@"
