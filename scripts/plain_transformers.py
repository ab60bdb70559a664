"""The shipped model loaded by plain transformers vs ``pipeline.load()``, strict span F1 on gold exports.

    python scripts/plain_transformers.py annotations/pool_0{01..12}.json [--model models/planie-ner]

Plain transformers: ``pipeline("token-classification", aggregation_strategy="simple")`` run on each
paragraph (the model card's "How to load"): the CRF weights are reported as unexpected and dropped,
labels are the per-piece argmax, the tokenizer's own multi-character pieces are used (planie cuts every
CJK character into its own piece, as in training), and there are no span rules and no rule DEADLINEs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pipeline
from pipeline.core.annotations import load_gold_dir
from pipeline.core.documents import paragraphs
from pipeline.core.metrics import score_sets

LABELS = ("AGENCY", "INDICATOR", "VALUE", "DEADLINE", "ACTION")
Spans = set[tuple[str, int, int, str]]


def plain_spans(model: str, docs: list) -> Spans:  # noqa: ANN001
    from transformers import pipeline as hf_pipeline

    tagger = hf_pipeline("token-classification", model=model, aggregation_strategy="simple")
    out: Spans = set()
    for d in docs:
        for para in paragraphs(d.text):
            for e in tagger(d.text[para.start : para.end]):
                out.add((d.doc_id, para.start + e["start"], para.start + e["end"], e["entity_group"]))
    return out


def planie_spans(model: str, docs: list) -> Spans:  # noqa: ANN001
    ex = pipeline.load(model)
    records = ex.extract_many([d.text for d in docs], doc_ids=[d.doc_id for d in docs])
    return {(r["doc_id"], e["start"], e["end"], e["label"]) for r in records for e in r["entities"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("gold", nargs="+", help="gold Label Studio exports")
    parser.add_argument("--model", default="models/planie-ner")
    args = parser.parse_args()
    docs = load_gold_dir([Path(g) for g in args.gold])
    gold: Spans = {(d.doc_id, s.start, s.end, s.label) for d in docs for s in d.spans}
    runs = {"plain transformers": plain_spans(args.model, docs), "pipeline.load()": planie_spans(args.model, docs)}
    print(f"{len(docs)} documents, {sum(len(d.text) for d in docs):,} characters, {len(gold)} gold spans")
    print("| | micro | " + " | ".join(LABELS) + " |\n|---|---|" + "---|" * len(LABELS))
    for name, pred in runs.items():
        scores = score_sets(gold, pred, LABELS)
        print(f"| {name} | " + " | ".join(f"{scores[k].f1:.3f}" for k in ("micro", *LABELS)) + " |")


if __name__ == "__main__":
    main()
