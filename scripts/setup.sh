#!/usr/bin/env bash
# Create .venv with torch (CPU build, installed first so nothing pulls a CUDA build), the Scipion
# packages and this plugin (editable, so Scipion discovers it through its entry point).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q "torch==2.13.0" 2>&1 | grep -v "is ignored" || true
.venv/bin/python -m pip install -q scipion-pyworkflow scipion-em scipion-em-tomo mrcfile emtable pytest \
    2>&1 | grep -v "is ignored" || true
.venv/bin/python -m pip install -q --no-deps -e . 2>&1 | grep -v "is ignored" || true
.venv/bin/python -c "import torch, pyworkflow, pwem, tomo, deepict_scipion.core.cli; print('environment ready: torch', torch.__version__)"
