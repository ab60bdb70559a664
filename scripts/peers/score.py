"""Score peer predictions with the project's scorer, per fold and pooled (strict entity P/R/F).

    python scripts/peers/score.py FOLDS.json OUT/PEER annotations [--out REPORT.md]

OUT/PEER/<fold>/predictions.jsonl holds one {"doc_id", "entities": [{"start", "end", "label"}]} per test document.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pipeline.core.annotations import AnnotatedDoc, Span, load_gold_dir
from pipeline.core.files import write_atomic
from pipeline.core.metrics import PRF
from pipeline.core.schema import load_schema
from pipeline.evaluation.scoring import score_entities


def read_predictions(path: Path, gold: dict[str, AnnotatedDoc]) -> list[AnnotatedDoc]:
    docs = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        record = json.loads(line)
        if record["doc_id"] not in gold:
            raise SystemExit(f"{path}: line {i}: doc_id {record['doc_id']!r} is not in the gold")
        text = gold[record["doc_id"]].text
        spans = tuple(
            Span(f"p{j}", e["start"], e["end"], e["label"], text[e["start"] : e["end"]])
            for j, e in enumerate(record["entities"])
        )
        docs.append(AnnotatedDoc(record["doc_id"], text, spans))
    return docs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folds", help="folds.json written by planie cv")
    ap.add_argument("predictions", help="OUT/PEER folder with one sub-folder per fold")
    ap.add_argument("annotations", help="gold exports folder")
    ap.add_argument("--schema", default="configs/schema.yaml")
    ap.add_argument("--out", help="markdown report to write")
    args = ap.parse_args()
    labels = list(load_schema(args.schema).entity_labels)
    gold = {d.doc_id: d for d in load_gold_dir([args.annotations])}
    pooled = {lab: PRF(0, 0, 0) for lab in [*labels, "micro"]}
    rows = ["| fold | " + " | ".join(labels) + " | micro |", "|---" * (len(labels) + 2) + "|"]
    for fold in json.loads(Path(args.folds).read_text(encoding="utf-8"))["folds"]:
        pred_file = Path(args.predictions) / fold["name"] / "predictions.jsonl"
        if not pred_file.exists():
            rows.append(f"| {fold['name']} | " + " | ".join("-" for _ in pooled) + " |")
            continue
        scores = score_entities([gold[d] for d in fold["test"]], read_predictions(pred_file, gold), labels)
        rows.append(f"| {fold['name']} | " + " | ".join(f"{scores[k].f1:.3f}" for k in pooled) + " |")
        pooled = {k: PRF(v.tp + scores[k].tp, v.fp + scores[k].fp, v.fn + scores[k].fn) for k, v in pooled.items()}
    rows.append("| **pooled** | " + " | ".join(f"**{v.f1:.3f}**" for v in pooled.values()) + " |")
    micro = pooled["micro"]
    text = (
        f"# {Path(args.predictions).name}: strict entity F1 per fold (folds: `{args.folds}`)\n\n"
        + "\n".join(rows)
        + f"\n\npooled micro P {micro.precision:.3f} R {micro.recall:.3f} F1 {micro.f1:.3f}\n"
    )
    if args.out:
        write_atomic(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
