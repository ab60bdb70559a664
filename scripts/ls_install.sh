#!/usr/bin/env bash
# Install the Label Studio server into its own virtual environment (default: .ls-venv/ in the repo).
# The server pins Django and ~1 GB of packages, so it never goes into the project's .venv.
# Idempotent: an existing venv with the right version is kept. Used by CI before the tests.
#   scripts/ls_install.sh [VENV_DIR]        (env: LS_VERSION, PYTHON)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.ls-venv}"
LS_VERSION="${LS_VERSION:-1.23.2}"
PYTHON="${PYTHON:-python3}"
export PIP_DISABLE_PIP_VERSION_CHECK=1

if [ -x "$VENV/bin/label-studio" ] && "$VENV/bin/python" - "$LS_VERSION" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(0 if version("label-studio") == sys.argv[1] else 1)
PY
then
    echo "label-studio $LS_VERSION already installed in $VENV"
    exit 0
fi

start=$(date +%s)
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install -q "label-studio==$LS_VERSION"
# (not `label-studio --version`: it migrates a database in ~/.local/share and checks PyPI)
"$VENV/bin/python" -c "from importlib.metadata import version; assert version('label-studio') == '$LS_VERSION'"
test -x "$VENV/bin/label-studio"
echo "label-studio $LS_VERSION installed in $VENV in $(( $(date +%s) - start )) s"
