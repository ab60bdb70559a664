"""The rules linker on gold entities: all gold documents, the 64 pool documents (never read while the
rules were written) and the 12 older ones (read while writing them), strict relation P/R/F and triples.

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
        "pool documents (not read by the rules' author)": [d for d in gold if d.meta.get("pool_file")],
        "older documents (read while writing the rules)": [d for d in gold if not d.meta.get("pool_file")],
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
