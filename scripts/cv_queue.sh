#!/usr/bin/env bash
# Run many `planie cv` folds with W single-thread workers (on 2 cores, two one-thread processes train
# faster than one two-thread process, and a busy core does not stall them).
#   scripts/cv_queue.sh QUEUE_FILE WORKERS
# QUEUE_FILE: one job per line, the arguments of `planie cv` for one fold, e.g.
#   --group province --folds 5 --epochs 10 --out runs/cv-places --config configs/ablations/places.yaml --only fold3
# Workers take lines from the top (under a lock) until the file is empty; each job's log is
# QUEUE_FILE.logs/N.log. Afterwards every OUT folder gets its summary (cv.json, cv.md) from one more
# `planie cv` call without --only (every fold is done, so it only scores nothing and summarises).
set -euo pipefail
QUEUE="$1" WORKERS="${2:-2}"
PLANIE="${PLANIE:-.venv/bin/planie}"
mkdir -p "$QUEUE.logs"
cp "$QUEUE" "$QUEUE.all"

next_job() {
    flock "$QUEUE.lock" bash -c 'head -n 1 "$0"; sed -i 1d "$0"' "$QUEUE"
}

worker() {
    local n=0 job
    while job="$(next_job)" && [ -n "$job" ]; do
        n=$((n + 1))
        # shellcheck disable=SC2086
        OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 "$PLANIE" cv $job >"$QUEUE.logs/w$1-$n.log" 2>&1 || echo "failed: $job" >&2
    done
}

for w in $(seq "$WORKERS"); do worker "$w" & done
wait
# one summary per output folder: the job line without its --only FOLD
sed -E 's/ --only [^ ]+//' "$QUEUE.all" | sort -u | while read -r job; do
    # shellcheck disable=SC2086
    "$PLANIE" cv $job >>"$QUEUE.logs/summaries.log" 2>&1 || echo "summary failed: $job" >&2
done
