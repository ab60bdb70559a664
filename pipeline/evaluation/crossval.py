"""Leave-one-document-out cross-validation of the NER model and of the relation linkers."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from pipeline.core.annotations import load_gold_dir
from pipeline.core.files import write_atomic
from pipeline.core.metrics import PRF
from pipeline.core.schema import load_schema
from pipeline.evaluation.relation_reports import linked, model_linker, relation_scores, rules_linker
from pipeline.extractors.relation_inputs import RELATION_LABELS
from pipeline.training.ner_training import NerConfig, train_ner


def cross_validate(cfg: NerConfig, out_dir: Path, folds: Sequence[str] = ()) -> dict[str, Any]:
    """Leave-one-document-out: for each annotated document, train on all the others and score it.
    Folds already scored (their metrics.json exists) are skipped, so an interrupted run resumes."""
    import shutil

    from pipeline.evaluation.report import evaluate_extractor
    from pipeline.extractors.extract import ModelExtractor

    schema = load_schema(cfg.schema)
    docs = {d.doc_id: d for d in load_gold_dir([cfg.annotations])}
    results: dict[str, Any] = {}
    for doc_id in tqdm(folds or sorted(docs), desc="cv folds", unit="fold"):
        fold_dir = out_dir / doc_id
        metrics_file = fold_dir / "metrics.json"
        if not metrics_file.exists():
            others = [d for d in docs if d != doc_id]
            fold_cfg = cfg.replace(output_dir=str(fold_dir), train_docs=others, test_docs=[doc_id])
            model_dir = train_ner(fold_cfg)
            report = evaluate_extractor([docs[doc_id]], ModelExtractor(model_dir), schema, f"fold {doc_id}")
            report.write(fold_dir)
            shutil.rmtree(fold_dir / "checkpoints", ignore_errors=True)
            shutil.rmtree(model_dir, ignore_errors=True)
        results[doc_id] = json.loads(metrics_file.read_text(encoding="utf-8"))
    summary = summarise_folds(results, list(schema.entity_labels))
    write_atomic(out_dir / "cv.json", json.dumps(summary, ensure_ascii=False, indent=2) + "\n")
    write_atomic(out_dir / "cv.md", cv_markdown(summary))
    return summary


def summarise_folds(results: dict[str, Any], labels: list[str]) -> dict[str, Any]:
    """Per-fold F1 (model and rules), the mean over folds that have the label, and the pooled
    scores (tp/fp/fn summed over all folds, i.e. every document scored by a model that never saw it)."""
    keys = [*labels, "micro"]
    rows = {}
    for doc_id, m in results.items():
        rows[doc_id] = {
            "model": {lab: m["entities"][lab]["f1"] for lab in keys},
            "rules": {lab: m["rules_baseline"]["entities"][lab]["f1"] for lab in keys},
            "support": {lab: m["entities"][lab]["support"] for lab in keys},
            "relations_micro": m["relations"]["micro"]["f1"],
            "rules_relations_micro": m["rules_baseline"]["relations"]["micro"]["f1"],
            "relations_support": m["relations"]["micro"]["support"],
        }

    def mean(key: str, lab: str) -> float:
        vals = [r[key][lab] for r in rows.values() if r["support"][lab] > 0]
        return round(sum(vals) / len(vals), 4) if vals else 0.0

    def pooled(section: str, lab: str) -> float:
        tp = fp = fn = 0
        for m in results.values():
            scores = (m if section == "model" else m["rules_baseline"])["entities"][lab]
            tp, fp, fn = tp + scores["tp"], fp + scores["fp"], fn + scores["fn"]
        return round(PRF(tp, fp, fn).f1, 4)

    return {
        "folds": rows,
        "mean": {k: {lab: mean(k, lab) for lab in keys} for k in ("model", "rules")},
        "pooled": {k: {lab: pooled(k, lab) for lab in keys} for k in ("model", "rules")},
        "note": "mean: over folds whose document has at least one gold span of that label; "
        "pooled: true/false positives and negatives summed over all folds",
    }


def cv_markdown(summary: dict[str, Any]) -> str:
    labels = list(summary["mean"]["model"])
    lines = ["# Leave-one-document-out (strict entity F1: model / rules)", ""]
    lines += ["| fold | " + " | ".join(labels) + " | relations micro |", "|---" * (len(labels) + 2) + "|"]
    for doc_id, r in summary["folds"].items():
        cells = [f"{r['model'][lab]:.2f} / {r['rules'][lab]:.2f}" if r["support"][lab] else "-" for lab in labels]
        rel = f"{r['relations_micro']:.2f} / {r['rules_relations_micro']:.2f}" if r.get("relations_support") else "-"
        lines.append(f"| {doc_id} | " + " | ".join(cells) + f" | {rel} |")
    for key in ("mean", "pooled"):
        agg = summary[key]
        lines.append(
            f"| **{key}** | "
            + " | ".join(f"{agg['model'][lab]:.3f} / {agg['rules'][lab]:.3f}" for lab in labels)
            + " | |"
        )
    return "\n".join(lines) + f"\n\n{summary['note']}.\n"


def run_lodo(args: argparse.Namespace) -> int:
    """Leave-one-document-out: per fold, train the configured learned variant on the other
    documents and score it and the rules linker on the held-out one (given gold entities)."""
    import shutil

    from pipeline.extractors.relation_model import RelationModel
    from pipeline.training.relation_training import RelConfig, train_relations

    cfg = RelConfig.load(args.config, variant=args.variant, epochs=args.epochs, num_layers=args.num_layers)
    docs = {d.doc_id: d for d in load_gold_dir([cfg.annotations])}
    out = Path(args.out)
    for doc_id in tqdm(args.folds or sorted(docs), desc="lodo folds", unit="fold"):
        fold = out / doc_id
        if (fold / "metrics.json").exists():
            continue
        fold_cfg = cfg.replace(output_dir=str(fold), train_docs=[d for d in docs if d != doc_id], test_docs=[doc_id])
        model_dir = train_relations(fold_cfg)
        model = RelationModel(model_dir)
        test = [docs[doc_id]]
        metrics = {
            cfg.variant: relation_scores(test, linked(test, model_linker(model, True))),
            "rules": relation_scores(test, linked(test, rules_linker(True))),
            "train_seconds": json.loads((fold / "run.json").read_text(encoding="utf-8"))["train_seconds"],
        }
        write_atomic(fold / "metrics.json", json.dumps(metrics, ensure_ascii=False, indent=2) + "\n")
        shutil.rmtree(fold / "checkpoints", ignore_errors=True)
        shutil.rmtree(model_dir, ignore_errors=True)
    summary = lodo_summary(out, sorted(docs), cfg.variant)
    if summary:
        write_atomic(out / "lodo.json", json.dumps(summary, ensure_ascii=False, indent=2) + "\n")
        write_atomic(out / "lodo.md", lodo_markdown(summary, cfg.variant))
        print((out / "lodo.md").read_text(encoding="utf-8"))
    return 0


def lodo_summary(out: Path, doc_ids: Sequence[str], variant: str) -> dict[str, Any]:
    """Per-fold micro and per-label F1, the mean over folds with support, and pooled scores."""
    folds = {
        d: json.loads((out / d / "metrics.json").read_text(encoding="utf-8"))
        for d in doc_ids
        if (out / d / "metrics.json").exists()
    }
    if not folds:
        return {}
    keys = (*RELATION_LABELS, "micro")
    summary: dict[str, Any] = {"folds": {}, "mean": {}, "pooled": {}, "variant": variant}
    for d, m in folds.items():
        summary["folds"][d] = {
            name: {k: m[name]["relations"][k]["f1"] for k in keys} for name in (variant, "rules")
        } | {
            "support": {k: m["rules"]["relations"][k]["support"] for k in keys},
            "train_seconds": m.get("train_seconds"),
        }
    for name in (variant, "rules"):
        summary["mean"][name] = {}
        summary["pooled"][name] = {}
        for k in keys:
            vals = [f[name][k] for f in summary["folds"].values() if f["support"][k]]
            summary["mean"][name][k] = round(sum(vals) / len(vals), 4) if vals else 0.0
            tp = sum(folds[d][name]["relations"][k]["tp"] for d in folds)
            fp = sum(folds[d][name]["relations"][k]["fp"] for d in folds)
            fn = sum(folds[d][name]["relations"][k]["fn"] for d in folds)
            summary["pooled"][name][k] = round(PRF(tp, fp, fn).f1, 4)
    return summary


def lodo_markdown(summary: dict[str, Any], variant: str) -> str:
    keys = (*RELATION_LABELS, "micro")
    lines = [
        f"# Leave-one-document-out relation F1 given gold entities ({variant} / rules linker)",
        "",
        "Both with the deadline inheritance step. Rules: written while reading the five seeds.",
        "",
        "| fold | " + " | ".join(keys) + " |",
        "|---" * (len(keys) + 1) + "|",
    ]
    for d, f in summary["folds"].items():
        cells = [f"{f[variant][k]:.2f} / {f['rules'][k]:.2f}" if f["support"][k] else "-" for k in keys]
        lines.append(f"| {d} | " + " | ".join(cells) + " |")
    for agg in ("mean", "pooled"):
        s = summary[agg]
        lines.append(f"| **{agg}** | " + " | ".join(f"{s[variant][k]:.3f} / {s['rules'][k]:.3f}" for k in keys) + " |")
    return "\n".join(lines) + "\n\nmean: over folds whose document has that relation; pooled: tp/fp/fn summed.\n"
