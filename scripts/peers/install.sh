#!/usr/bin/env bash
# Install one peer NER system into its own virtual environment: .peers/<peer>/ in the repo root.
# Idempotent: a venv whose recorded requirements hash matches scripts/peers/requirements/<peer>.txt
# is kept as it is. Nothing is downloaded later at run time.
#   scripts/peers/install.sh PEER            install (crf | spacy | hanlp | plain)
#   scripts/peers/install.sh --which PEER    print the Python interpreter that runs PEER
# The `plain` peer runs in the project's .venv when that already has torch 2.13, transformers 5 and
# accelerate; otherwise it gets .peers/plain/ like the others.     (env: PYTHON, PEERS_DIR)
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON="${PYTHON:-python3}"
PEERS_DIR="${PEERS_DIR:-.peers}"
export PIP_DISABLE_PIP_VERSION_CHECK=1

usage() { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; }

project_venv_fits() {
    [ -x .venv/bin/python ] && .venv/bin/python - <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
import accelerate, torch  # noqa: F401
sys.exit(0 if int(version("transformers").split(".")[0]) == 5 and version("torch").startswith("2.13.") else 1)
PY
}

import_check() {
    case "$1" in
        crf) echo sklearn_crfsuite ;;
        spacy) echo spacy.lang.zh ;;
        hanlp) echo hanlp.components.ner.transformer_ner ;;
        plain) echo transformers, accelerate ;;
    esac
}

which_python() {
    local peer="$1"
    if [ "$peer" = plain ] && [ ! -x "$PEERS_DIR/plain/bin/python" ] && project_venv_fits; then
        echo ".venv/bin/python"
    else
        echo "$PEERS_DIR/$peer/bin/python"
    fi
}

install_peer() {
    local peer="$1" req="scripts/peers/requirements/$1.txt" venv="$PEERS_DIR/$1"
    [ -f "$req" ] || { echo "unknown peer '$peer' (no $req)" >&2; exit 2; }
    if [ "$peer" = plain ] && [ "$(which_python plain)" = ".venv/bin/python" ]; then
        echo "plain: runs in the project's .venv (torch 2.13, transformers 5, accelerate present)"
        return 0
    fi
    local want
    want=$(sha256sum "$req" | cut -d' ' -f1)
    if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" = "$want" ]; then
        echo "$peer: already installed in $venv ($(du -sh "$venv" | cut -f1))"
        return 0
    fi
    local start
    start=$(date +%s)
    rm -rf "$venv"
    "$PYTHON" -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip wheel
    "$venv/bin/pip" install -q -r "$req"
    "$venv/bin/python" -c "import $(import_check "$peer")"  # fails the install, not the first fold
    "$venv/bin/pip" freeze > "$venv/.freeze.txt"
    echo "$want" > "$venv/.requirements.sha256"
    echo "$peer: installed in $venv in $(( $(date +%s) - start )) s ($(du -sh "$venv" | cut -f1))"
}

case "${1:-}" in
    -h|--help|"") usage; [ -n "${1:-}" ] ;;
    --which) [ -n "${2:-}" ] || { usage; exit 2; }; which_python "$2" ;;
    *) install_peer "$1" ;;
esac
