#!/usr/bin/env bash
# Install a peer NER system (if needed) and run it on every fold of a folds file.
#   scripts/peers/run.sh PEER FOLDS ANNOTATIONS OUT [peer options...]
#     PEER         crf | spacy | hanlp | plain
#     FOLDS        {"folds": [{"name": "fold1", "train": [doc_id...], "test": [doc_id...]}, ...]}
#     ANNOTATIONS  folder of gold Label Studio exports (*.json)
#     OUT          writes OUT/PEER/<fold>/predictions.jsonl and OUT/PEER/<fold>/info.json
# Peer options (budgets, threads, --only FOLD...): scripts/peers/run.sh PEER --help
# Relative paths are taken from the current directory.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"

usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; }

PEER="${1:-}"
case "$PEER" in
    crf|spacy|hanlp|plain) ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
esac
shift
bash "$HERE/install.sh" "$PEER" >&2
PY="$(bash "$HERE/install.sh" --which "$PEER")"
case "$PY" in /*) ;; *) PY="$REPO/$PY" ;; esac

if [ "${1:-}" = -h ] || [ "${1:-}" = --help ]; then
    exec "$PY" "$HERE/peer_$PEER.py" --help
fi
[ $# -ge 3 ] || { usage >&2; exit 2; }
FOLDS="$1" ANNOTATIONS="$2" OUT="$3"
shift 3
exec "$PY" "$HERE/peer_$PEER.py" --folds "$FOLDS" --annotations "$ANNOTATIONS" --out "$OUT" "$@"
