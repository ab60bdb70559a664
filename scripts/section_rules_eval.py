"""Strict entity P/R/F of a trained model with and without the section-rules step, on gold documents.

The model runs twice through ``ModelExtractor(model_dir, section_rules=False/True)``; the report
also counts the predicted spans the step removed, per label and section kind, split into those the
gold has (true positives lost) and those it has not (false positives removed).

    nice -n 19 python scripts/section_rules_eval.py models/planie-ner annotations/pool_*.json \
        --out scripts/results/section-kinds/pool_shipped.md
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

from pipeline.core.annotations import AnnotatedDoc, load_gold
from pipeline.core.documents import Document
from pipeline.core.files import write_atomic
from pipeline.core.schema import load_schema
from pipeline.core.sections import SectionIndex
from pipeline.evaluation.scoring import score_entities, span_key
from pipeline.extractors.extract import ModelExtractor, extract_batches


def predict(model_dir: Path, docs: list[AnnotatedDoc], section_rules: bool) -> list[AnnotatedDoc]:
    extractor = ModelExtractor(model_dir, section_rules=section_rules)
    documents = [Document(d.doc_id, d.source, d.text, "utf-8") for d in docs]
    return [doc for batch in extract_batches(documents, extractor) for doc in batch]


def removed_spans(gold: list[AnnotatedDoc], before: list[AnnotatedDoc], after: list[AnnotatedDoc]) -> Counter:
    """(label, kind, 'true'|'false') → predicted spans present without the step and gone with it."""
    out: Counter = Counter()
    for g, b, a in zip(gold, before, after, strict=True):
        kept = {span_key(s) for s in a.spans}
        truth = {span_key(s) for s in g.spans}
        index = SectionIndex(g.text)
        for s in b.spans:
            if span_key(s) not in kept:
                out[s.label, index.kind_at(s.start), "true" if span_key(s) in truth else "false"] += 1
    return out


def prf_table(before: dict, after: dict, labels: list[str]) -> list[str]:
    rows = [
        "| label | P without | R without | F1 without | P with | R with | F1 with | ΔF1 | support |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label in [*labels, "micro"]:
        b, a = before[label], after[label]
        rows.append(
            f"| {label} | {b.precision:.3f} | {b.recall:.3f} | {b.f1:.3f} | {a.precision:.3f} | {a.recall:.3f} "
            f"| {a.f1:.3f} | {a.f1 - b.f1:+.3f} | {b.support} |"
        )
    return rows


def removed_table(removed: Counter) -> list[str]:
    keys = sorted({(label, kind) for label, kind, _ in removed})
    rows = ["| label | section kind | false positives removed | true positives lost |", "|---|---|---|---|"]
    rows += [f"| {lab} | {kind} | {removed[lab, kind, 'false']} | {removed[lab, kind, 'true']} |" for lab, kind in keys]
    return rows


def shown_files(paths: list[Path]) -> str:
    """The gold files as typed, or as one glob when they are the pool's (annotations/pool_*.json)."""
    if len(paths) > 3 and all(p.name.startswith("pool_") for p in paths):
        return str(paths[0].parent / "pool_*.json")
    return " ".join(map(str, paths))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("gold", nargs="+", type=Path)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    gold = [d for f in args.gold for d in load_gold(f)]
    labels = list(load_schema().entity_labels)
    started = time.time()
    before = predict(args.model, gold, section_rules=False)
    after = predict(args.model, gold, section_rules=True)
    scores_before = score_entities(gold, before, labels)
    scores_after = score_entities(gold, after, labels)
    rules = load_schema().section_rules
    lines = [
        f"# Section rules on `{args.model}`: {len(gold)} gold documents",
        "",
        "Strict entity scores (exact start, end, label) without and with the section-rules step",
        "(`ModelExtractor(model_dir, section_rules=False/True)`). Rules (configs/schema.yaml `absent_in`): "
        + "; ".join(f"{label}: {', '.join(kinds)}" for label, kinds in rules.items())
        + ".",
        "",
        f"    nice -n 19 python scripts/section_rules_eval.py {args.model} {shown_files(args.gold)}"
        + (f" --out {args.out}" if args.out else ""),
        "",
        *prf_table(scores_before, scores_after, labels),
        "",
        "## Predicted spans the step removed",
        "",
        *removed_table(removed_spans(gold, before, after)),
        "",
        f"Both passes took {time.time() - started:.0f} s.",
    ]
    text = "\n".join(lines) + "\n"
    if args.out:
        write_atomic(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
