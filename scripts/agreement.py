"""Inter-annotator agreement: score a second, independent pass against the first with the project's scorer.

    python scripts/agreement.py annotations/pool_015.json annotations/agreement/pool_015.second.json [...pairs]

Prints one markdown table per pair (first pass = gold, second pass = prediction; strict spans and relations).
"""

from __future__ import annotations

import argparse

from pipeline.core.annotations import load_gold
from pipeline.core.schema import load_schema
from pipeline.evaluation.scoring import score_entities, score_relations


def agreement_table(first: str, second: str, entity_labels: list[str], relation_labels: list[str]) -> str:
    gold, pred = load_gold(first), load_gold(second)
    rows = [f"### {gold[0].doc_id}", "", "| label | both | only 1st | only 2nd | strict F1 |", "|---|---|---|---|---|"]
    sections = [
        (score_entities(gold, pred, entity_labels), entity_labels, "micro"),
        (score_relations(gold, pred, relation_labels), relation_labels, "relations micro"),
    ]
    for scores, labels, micro_name in sections:
        for label in [*labels, "micro"]:
            s = scores[label]
            if s.tp + s.fp + s.fn:
                name = micro_name if label == "micro" else label
                rows.append(f"| {name} | {s.tp} | {s.fn} | {s.fp} | {s.f1:.3f} |")
    return "\n".join(rows) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pairs", nargs="+", help="first-pass export, second-pass export, … (in pairs)")
    ap.add_argument("--schema", default="configs/schema.yaml")
    args = ap.parse_args()
    if len(args.pairs) % 2:
        ap.error("give the exports in pairs: FIRST SECOND [FIRST SECOND ...]")
    schema = load_schema(args.schema)
    for first, second in zip(args.pairs[::2], args.pairs[1::2], strict=True):
        print(agreement_table(first, second, list(schema.entity_labels), list(schema.relation_labels)))


if __name__ == "__main__":
    main()
