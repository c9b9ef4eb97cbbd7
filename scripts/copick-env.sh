#!/usr/bin/env bash
# A dedicated environment with the real `copick` library (it needs numpy >= 2, which Scipion's Python
# cannot have), used only by engine/tests/formats/test_copick.py to check that copick reads the picks
# we write and that we read the picks it writes. No torch. Does nothing when it is ready already.
# Versions: constraints-copick.txt (written by `pip freeze` the first time; UPGRADE=1 moves to newer releases).
set -euo pipefail
cd "$(dirname "$0")/.."
ENV_DIR=.venv-copick
CONSTRAINTS=constraints-copick.txt
PYTHON=${PYTHON:-python3}

if [ -z "${UPGRADE:-}" ] && [ -x "$ENV_DIR/bin/python" ] && "$ENV_DIR/bin/python" -c "import copick" 2>/dev/null; then
    echo "copick-env: $ENV_DIR ready (copick $("$ENV_DIR/bin/python" -c 'import copick; print(copick.__version__)'))"
    exit 0
fi
if [ ! -x "$ENV_DIR/bin/python" ]; then
    echo "copick-env: creating $ENV_DIR with $($PYTHON --version 2>&1)"
    "$PYTHON" -m venv "$ENV_DIR"
fi
echo "copick-env: upgrading pip"
"$ENV_DIR/bin/python" -m pip install --quiet --upgrade pip
if [ -z "${UPGRADE:-}" ] && [ -f "$CONSTRAINTS" ]; then
    echo "copick-env: installing copick at the versions in $CONSTRAINTS"
    "$ENV_DIR/bin/python" -m pip install --quiet -c "$CONSTRAINTS" copick
else
    echo "copick-env: installing the newest copick"
    "$ENV_DIR/bin/python" -m pip install --quiet --upgrade copick
    "$ENV_DIR/bin/python" -m pip freeze > "$CONSTRAINTS"
    echo "copick-env: versions written to $CONSTRAINTS"
fi
"$ENV_DIR/bin/python" -c "import copick, numpy; print(f'copick-env: ready: copick {copick.__version__}, numpy {numpy.__version__}')"
