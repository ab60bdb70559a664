"""Held-out comparison of NER runs that differ only in their encoder (issue: choose by measurement).

    python scripts/compare_encoders.py NAME=RUN_DIR [NAME=RUN_DIR ...] [--out docs/encoder-comparison.md]

For each run: strict micro and per-label F1 on the held-out documents of configs/splits.yaml,
the training wall time and best dev F1 from run.json, and inference speed (characters per second
of `NerModel.predict` over the held-out texts, after one warm-up pass). The rules baseline is the
first row.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import yaml

from pipeline.annotations import load_gold_dir
from pipeline.documents import Document
from pipeline.evaluate import score_entities
from pipeline.extract import RulesExtractor, extract_documents
from pipeline.ner import NerModel
from pipeline.schema import load_schema

REPO = Path(__file__).resolve().parents[1]


def held_out_docs():  # noqa: ANN201
    ids = yaml.safe_load((REPO / "configs" / "splits.yaml").read_text(encoding="utf-8"))["test"]
    docs = {d.doc_id: d for d in load_gold_dir([REPO / "annotations"])}
    return [docs[i] for i in ids]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("runs", nargs="+", help="NAME=RUN_DIR (RUN_DIR holds model/ and run.json)")
    parser.add_argument("--out", default=str(REPO / "scripts" / "results" / "encoder-comparison.md"))
    args = parser.parse_args()
    labels = load_schema().entity_labels
    gold = held_out_docs()
    texts = [d.text for d in gold]
    chars = sum(map(len, texts))
    rows = []
    rules = extract_documents([Document(d.doc_id, d.source, d.text, "utf-8") for d in gold], RulesExtractor())
    rows.append(("rules baseline", score_entities(gold, rules, labels), None, None, None))
    for item in args.runs:
        name, run_dir = item.split("=", 1)
        run = json.loads((Path(run_dir) / "run.json").read_text(encoding="utf-8"))
        model = NerModel(Path(run_dir) / "model")
        model.predict(texts[:1])
        started = time.perf_counter()
        predicted = model.predict(texts)
        speed = chars / (time.perf_counter() - started)
        pred = [d.__class__(d.doc_id, d.text, tuple(s), ()) for d, s in zip(gold, predicted, strict=True)]
        rows.append((name, score_entities(gold, pred, labels), run["train_seconds"], run["best_dev"], speed))
    lines = [
        "# Encoder comparison on the held-out documents (Henan + Hainan)",
        "",
        f"Strict entity F1; {chars:,} characters; {os.cpu_count()} CPU cores; training config `configs/ner.yaml`"
        " unless the name says otherwise. Command: `python scripts/compare_encoders.py " + " ".join(args.runs) + "`.",
        "",
        "| encoder | micro F1 | " + " | ".join(labels) + " | best dev F1 | train time | inference chars/s |",
        "|---" * (len(labels) + 5) + "|",
    ]
    for name, s, secs, dev, speed in rows:
        cells = [f"{s['micro'].f1:.3f}", *(f"{s[lab].f1:.3f}" for lab in labels)]
        extra = ["-", "-", "-"] if secs is None else [f"{dev:.3f}", f"{secs / 60:.1f} min", f"{speed:,.0f}"]
        lines.append(f"| {name} | " + " | ".join(cells + extra) + " |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
