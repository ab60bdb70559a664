"""Compare NER runs (different encoders, CRF or not, decoding) on the dev blocks and the held-out documents.

    python scripts/compare_runs.py NAME=RUN_DIR [NAME=RUN_DIR ...] [--decoding viterbi argmax] [--out FILE.md]

For each run and decoding: strict micro and per-label F1 on the dev blocks of the training documents
(configs/splits.yaml: the last `dev_block` share of each; what model choices are made on) and on the
held-out documents, the training wall time from run.json and inference speed (characters per second
of `NerModel.predict` over the held-out texts, after one warm-up pass). The rules baseline is the
first row. Choose on dev; the held-out columns are reported, not selected on.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace
from pathlib import Path

from pipeline.core.annotations import AnnotatedDoc
from pipeline.core.documents import Document
from pipeline.core.schema import load_schema
from pipeline.evaluation.scoring import score_entities
from pipeline.extractors.extract import RulesExtractor, extract_documents
from pipeline.extractors.ner import NerModel
from pipeline.training.ner_training import NerConfig
from pipeline.training.splits import make_splits

REPO = Path(__file__).resolve().parents[1]


def dev_region(doc: AnnotatedDoc) -> AnnotatedDoc:
    """The dev block of a training document as a document of its own (offsets shifted)."""
    lo, hi = doc.meta["region"]
    spans = tuple(replace(s, start=s.start - lo, end=s.end - lo) for s in doc.spans)
    return AnnotatedDoc(doc.doc_id, doc.text[lo:hi], spans, (), doc.source)


def predicted(docs: list[AnnotatedDoc], spans: list) -> list[AnnotatedDoc]:
    return [AnnotatedDoc(d.doc_id, d.text, tuple(s), ()) for d, s in zip(docs, spans, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="NAME=RUN_DIR (RUN_DIR holds model/ and run.json)")
    parser.add_argument("--decoding", nargs="+", default=["viterbi"], choices=["viterbi", "argmax"])
    parser.add_argument("--config", default=str(REPO / "configs" / "ner.yaml"), help="for the split (dev blocks)")
    parser.add_argument("--out", default=str(REPO / "scripts" / "results" / "run-comparison.md"))
    args = parser.parse_args()
    labels = list(load_schema().entity_labels)
    splits = make_splits(NerConfig.load(args.config))
    dev = [dev_region(d) for d in splits.dev]
    test = list(splits.test)
    texts = [d.text for d in test]
    chars = sum(map(len, texts))

    def rules(docs: list[AnnotatedDoc]) -> dict:
        pred = extract_documents([Document(d.doc_id, d.source, d.text, "utf-8") for d in docs], RulesExtractor())
        return score_entities(docs, pred, labels)

    rows = [("rules baseline", "-", rules(dev), rules(test), None, None)]
    for item in args.runs:
        name, run_dir = item.split("=", 1)
        run = json.loads((Path(run_dir) / "run.json").read_text(encoding="utf-8"))
        model = NerModel(Path(run_dir) / "model")
        model.predict(texts[:1])
        for decoding in args.decoding:
            viterbi = decoding == "viterbi"
            dev_scores = score_entities(dev, predicted(dev, model.predict([d.text for d in dev], viterbi)), labels)
            started = time.perf_counter()
            test_spans = model.predict(texts, viterbi)
            speed = chars / (time.perf_counter() - started)
            test_scores = score_entities(test, predicted(test, test_spans), labels)
            rows.append((name, decoding, dev_scores, test_scores, run["train_seconds"], speed))
    lines = [
        "# NER runs compared: dev blocks (for choosing) and held-out documents (Henan + Hainan)",
        "",
        f"Strict entity F1; dev = the last 15% block of each training document; held-out = {chars:,} characters;"
        f" {os.cpu_count()} CPU cores. Command: `python scripts/compare_runs.py "
        + " ".join(args.runs)
        + f" --decoding {' '.join(args.decoding)}`.",
        "",
        "| run | decoding | dev micro | held-out micro | " + " | ".join(labels) + " | train time | chars/s |",
        "|---" * (len(labels) + 6) + "|",
    ]
    for name, decoding, d, s, secs, speed in rows:
        cells = [f"{d['micro'].f1:.3f}", f"{s['micro'].f1:.3f}", *(f"{s[lab].f1:.3f}" for lab in labels)]
        extra = ["-", "-"] if secs is None else [f"{secs / 60:.1f} min", f"{speed:,.0f}"]
        lines.append(f"| {name} | {decoding} | " + " | ".join(cells + extra) + " |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
