"""The rules linker on gold entities: all gold documents, the 64 pool documents and the 12 older ones,
strict relation P/R/F and triples. The value_of and deadline_of rules were written on the 12 older
documents only; the responsible_for rules for attribute lines, numbered items under a group heading and
task-table rows were added after reading the linker's misses on the pool, so no part is unseen any more.

    python scripts/relations_given_gold.py --out scripts/results/cv-province/relations-given-gold.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.core.annotations import load_gold_dir
from pipeline.core.files import write_atomic
from pipeline.evaluation.relation_reports import linked, relation_scores, rules_linker


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--annotations", default="annotations")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    gold = load_gold_dir([args.annotations])
    parts = {
        "all gold documents": gold,
        "pool documents (64; responsible_for rules revised on them)": [d for d in gold if d.meta.get("pool_file")],
        "older documents (12; all rules written on them)": [d for d in gold if not d.meta.get("pool_file")],
    }
    lines = [
        "# The rules linker given gold entities",
        "",
        "Strict relation scores (head, tail and label exact) with deadline inheritance, and exact target",
        "triples, when the linker gets the gold entities. Relations end to end (predicted entities) are in",
        "the grouped-CV tables.",
        "",
        "| documents | n | value_of | deadline_of | responsible_for | micro P | micro R | micro F1 | triples F1 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, docs in parts.items():
        m = relation_scores(docs, linked(docs, rules_linker(True)))
        rel = m["relations"]
        cells = [f"{rel[k]['f1']:.3f} ({rel[k]['support']})" for k in ("value_of", "deadline_of", "responsible_for")]
        micro = rel["micro"]
        cells += [f"{micro[k]:.3f}" for k in ("precision", "recall", "f1")] + [f"{m['targets']['f1']:.3f}"]
        lines.append(f"| {name} | {len(docs)} | " + " | ".join(cells) + " |")
    command = f"python scripts/relations_given_gold.py --out {args.out}"
    write_atomic(Path(args.out), "\n".join(lines) + f"\n\nCommand: `{command}`\n")
    print(args.out)


if __name__ == "__main__":
    main()
