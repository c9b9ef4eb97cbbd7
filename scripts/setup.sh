#!/usr/bin/env bash
# Create .venv with torch (CPU build, installed first so nothing pulls a CUDA build), the Scipion
# packages, the engine and this plugin (editable, so Scipion discovers it through its entry point).
# Versions come from constraints.txt (what the test suite passed with); to move to newer releases:
#   UPGRADE=1 bash scripts/setup.sh && bash scripts/test.sh && .venv/bin/pip freeze --exclude-editable > constraints.txt
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
pins=(-c constraints.txt)
[ "${UPGRADE:-0}" = 1 ] && pins=(--upgrade)
step() { printf '[setup %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
# pip prints one line per package it collects or installs; hide only its noise about unused local indexes.
pip_install() { .venv/bin/python -m pip install --progress-bar off "$@" 2>&1 | grep -v -e "is ignored" -e "^  Using cached" -e "already satisfied" || true; }
[ -x .venv/bin/python ] || { step "creating .venv"; "$PYTHON" -m venv .venv; }
step "1/3 torch 2.13 (CPU build)"
pip_install "torch==2.13.0"
step "2/3 Scipion (pyworkflow, pwem, tomo, reliontomo, app), mrcfile, emtable, pytest"
# setuptools below 81, which still has pkg_resources: Scipion's packages read their versions with it (without, the
# GUI prints "No module named 'pkg_resources'" for each at every start).
pip_install "${pins[@]}" scipion-pyworkflow scipion-em scipion-em-tomo scipion-em-reliontomo scipion-app \
    mrcfile emtable pytest "setuptools<81"
step "3/3 the engine (engine/, package deepict) and the plugin (deepict_scipion), both editable"
pip_install --no-deps -e ./engine -e .
.venv/bin/python -c "import torch, pyworkflow, pwem, tomo, reliontomo, deepict.cli.main, deepict_scipion; print('environment ready: torch', torch.__version__)"
