"""Grouped K-fold cross-validation of the NER model and of the relation linkers: one fold
assignment (training.splits.assign_folds, written to OUT/folds.json before any training), one
per-fold loop that resumes, one summary (per fold, mean over folds, pooled tp/fp/fn)."""

from __future__ import annotations

import json
import random
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.core.annotations import AnnotatedDoc
from pipeline.core.defaults import DEFAULT_K
from pipeline.core.errors import UsageError
from pipeline.core.files import write_atomic
from pipeline.core.metrics import PRF
from pipeline.core.schema import load_schema
from pipeline.evaluation.relation_reports import linked, model_linker, relation_scores, rules_linker
from pipeline.training.splits import Fold, assign_folds, gold_groups

if TYPE_CHECKING:
    from pipeline.extractors.extract import Extractor
    from pipeline.training.ner_training import NerConfig
    from pipeline.training.relation_training import RelConfig


# per fold: {system: {section: {label: PRF.as_dict()}}}; systems: the model (or linker variant), then "rules"
Scores = dict[str, dict[str, dict[str, dict[str, Any]]]]


@dataclass(frozen=True)
class CvPlan:
    """How documents are cut into folds. ``k`` None: one fold per group with ``group="doc"``
    (leave-one-document-out, as before), DEFAULT_K folds otherwise. ``seed`` None: the run config's."""

    group: str = "doc"
    k: int | None = None
    seed: int | None = None
    only: Sequence[str] = ()  # fold names to run in this process (the others are read if done)
    keep_models: bool = False  # keep FOLD/model (re-scoring with other decoding or linkers needs no training)
    train_docs: int | None = None  # train on this many of each fold's training documents (a learning curve)


def make_folds(annotations: str, plan: CvPlan, seed: int, out: Path) -> tuple[dict[str, AnnotatedDoc], list[Fold]]:
    """The gold documents and their folds; the folds are written to ``out/folds.json`` (an existing
    file with other folds is an error: its fold folders would be scored on other documents)."""
    docs, groups = gold_groups(annotations, plan.group)
    k = plan.k or (len(set(groups.values())) if plan.group == "doc" else DEFAULT_K)
    folds = assign_folds(groups, {d: len(doc.text) for d, doc in docs.items()}, k, seed)
    record = {
        "group": plan.group,
        "k": k,
        "seed": seed,
        "folds": [
            {"name": f.name, "groups": list(f.groups), "train": list(f.train), "test": list(f.test)} for f in folds
        ],
    }
    path = out / "folds.json"
    if path.exists() and json.loads(path.read_text(encoding="utf-8")) != record:
        raise UsageError(f"{path}: an earlier run with other folds; use another --out (or delete the folder)")
    write_atomic(path, json.dumps(record, ensure_ascii=False, indent=2) + "\n")
    return docs, folds


def run_folds(
    out: Path,
    docs: dict[str, AnnotatedDoc],
    folds: Sequence[Fold],
    plan: CvPlan,
    train_and_score: Callable[[Fold, Path], Path],
) -> dict[str, dict[str, Any]]:
    """For each fold without a metrics.json: ``train_and_score`` (it writes FOLD/metrics.json and
    returns the model folder, removed afterwards with the checkpoints unless ``plan.keep_models``).
    Returns every fold's metrics."""
    only = plan.only
    unknown = set(only) - {f.name for f in folds}
    if unknown:
        raise UsageError(f"no fold named {', '.join(sorted(unknown))} (folds: {', '.join(f.name for f in folds)})")
    for i, fold in enumerate(folds, 1):
        fold_dir = out / fold.name
        where = f"fold {i}/{len(folds)} {fold.name} ({', '.join(fold.groups)})"
        if (fold_dir / "metrics.json").exists():
            print(f"{where}: done before, skipped", file=sys.stderr, flush=True)
            continue
        if only and fold.name not in only:
            continue
        sizes = {
            part: sum(len(docs[d].text) for d in ids) for part, ids in (("train", fold.train), ("test", fold.test))
        }
        print(
            f"{where}: train {len(fold.train)} docs ({sizes['train']:,} chars), "
            f"test {len(fold.test)} docs ({sizes['test']:,} chars)",
            file=sys.stderr,
            flush=True,
        )
        model_dir = train_and_score(fold, fold_dir)
        shutil.rmtree(fold_dir / "checkpoints", ignore_errors=True)
        if not plan.keep_models:
            shutil.rmtree(model_dir, ignore_errors=True)
    return {
        f.name: json.loads((out / f.name / "metrics.json").read_text(encoding="utf-8"))
        for f in folds
        if (out / f.name / "metrics.json").exists()
    }


def summarise(folds: Sequence[Fold], scores: dict[str, Scores], plan: dict[str, Any]) -> dict[str, Any]:
    """Per-fold scores, the mean F1 over folds whose test documents hold the label, and pooled
    scores (tp/fp/fn summed over folds: every document scored by a model that never saw it)."""
    if not scores:
        return {**plan, "systems": [], "folds": [], "mean": {}, "pooled": {}}
    first = next(iter(scores.values()))
    systems = list(first)
    layout = {sec: list(labels) for sec, labels in first[systems[0]].items()}
    pooled: dict[str, Any] = {}
    mean: dict[str, Any] = {}
    for system in systems:
        pooled[system], mean[system] = {}, {}
        for sec, labels in layout.items():
            pooled[system][sec], mean[system][sec] = {}, {}
            for lab in labels:
                cells = [s[system][sec][lab] for s in scores.values()]
                tp, fp, fn = (sum(c[k] for c in cells) for k in ("tp", "fp", "fn"))
                pooled[system][sec][lab] = PRF(tp, fp, fn).as_dict()
                supported = [c["f1"] for c in cells if c["support"] > 0]
                mean[system][sec][lab] = round(sum(supported) / len(supported), 4) if supported else 0.0
    return {
        **plan,
        "systems": systems,
        "folds": [
            {"name": f.name, "groups": list(f.groups), "test": list(f.test), "scores": scores[f.name]}
            for f in folds
            if f.name in scores
        ],
        "mean": mean,
        "pooled": pooled,
        "note": "mean: F1 over the folds whose test documents hold the label; "
        "pooled: true positives, false positives and false negatives summed over all folds",
    }


def cv_markdown(summary: dict[str, Any], title: str) -> str:
    systems = summary["systems"]
    lines = [f"# {title}", ""]
    lines += [
        f"Grouped by {summary['group']}, {summary['k']} folds, seed {summary['seed']}; "
        f"{len(summary['folds'])} fold(s) scored. Strict scores, {' / '.join(systems)}.",
        "",
    ]
    if not systems:
        return "\n".join(lines) + "\nNo fold scored yet.\n"
    head = " | ".join(f"{s} P | {s} R | {s} F1" for s in systems)
    lines += [
        "## Pooled over folds",
        "",
        f"| section | label | support | {head} |",
        "|---" * (3 + 3 * len(systems)) + "|",
    ]
    for sec, labels in summary["pooled"][systems[0]].items():
        for lab in labels:
            cells = [summary["pooled"][s][sec][lab] for s in systems]
            row = " | ".join(f"{c['precision']:.3f} | {c['recall']:.3f} | {c['f1']:.3f}" for c in cells)
            lines.append(f"| {sec} | {lab} | {cells[0]['support']} | {row} |")
    for sec, labels in summary["pooled"][systems[0]].items():
        lines += ["", f"## {sec}: F1 per fold ({' / '.join(systems)})", ""]
        lines += ["| fold | groups | " + " | ".join(labels) + " |", "|---" * (len(labels) + 2) + "|"]
        for fold in summary["folds"]:
            s = fold["scores"]
            cells = [
                " / ".join(f"{s[x][sec][lab]['f1']:.2f}" for x in systems)
                if s[systems[0]][sec][lab]["support"]
                else "-"
                for lab in labels
            ]
            lines.append(f"| {fold['name']} | {', '.join(fold['groups'])} | " + " | ".join(cells) + " |")
        for key in ("mean", "pooled"):
            agg = summary[key]
            cells = [" / ".join(f"{_f1(agg[x][sec][lab]):.3f}" for x in systems) for lab in labels]
            lines.append(f"| **{key}** | | " + " | ".join(cells) + " |")
    return "\n".join(lines) + f"\n\n{summary['note']}.\n"


def _f1(cell: float | dict[str, Any]) -> float:
    return cell["f1"] if isinstance(cell, dict) else cell


def write_summary(
    out: Path, folds: Sequence[Fold], scores: dict[str, Scores], plan: dict[str, Any], title: str
) -> dict[str, Any]:
    summary = summarise(folds, scores, plan)
    write_atomic(out / "cv.json", json.dumps(summary, ensure_ascii=False, indent=2) + "\n")
    write_atomic(out / "cv.md", cv_markdown(summary, title))
    return summary


def plan_record(folds: Sequence[Fold], plan: CvPlan, seed: int) -> dict[str, Any]:
    record: dict[str, Any] = {"group": plan.group, "k": len(folds), "seed": seed}
    if plan.train_docs:
        record["train_docs"] = plan.train_docs
    return record


def training_documents(fold: Fold, plan: CvPlan, seed: int) -> list[str]:
    """The fold's training documents, or a seeded sample of ``plan.train_docs`` of them."""
    if not plan.train_docs or plan.train_docs >= len(fold.train):
        return list(fold.train)
    return sorted(random.Random(f"{seed}:{fold.name}").sample(list(fold.train), plan.train_docs))


def fold_config(cfg: Any, fold: Fold, fold_dir: Path, plan: CvPlan, seed: int) -> Any:
    """The run config of one fold (NER or relations): its folder, training documents and test documents."""
    train = training_documents(fold, plan, seed)
    return cfg.replace(output_dir=str(fold_dir), train_docs=train, test_docs=list(fold.test))


def cross_validate(cfg: NerConfig, out_dir: Path, plan: CvPlan = CvPlan()) -> dict[str, Any]:
    """Per fold: train the configured NER model on the fold's train documents (dev blocks carved as
    the splits config says) and score its test documents with evaluate_extractor (entities,
    relations end to end, target triples, the rules baseline). Folds with a metrics.json are skipped."""
    from pipeline.evaluation.report import evaluate_extractor
    from pipeline.extractors.extract import ModelExtractor
    from pipeline.training.ner_training import train_ner

    schema = load_schema(cfg.schema)
    seed = cfg.seed if plan.seed is None else plan.seed
    docs, folds = make_folds(cfg.annotations, plan, seed, out_dir)

    def train_and_score(fold: Fold, fold_dir: Path) -> Path:
        model_dir = train_ner(fold_config(cfg, fold, fold_dir, plan, seed))
        test = [docs[d] for d in fold.test]
        title = f"{fold.name} (by {plan.group})"  # the plots' fonts lack CJK: no province names
        evaluate_extractor(test, ModelExtractor(model_dir), schema, title).write(fold_dir)
        return model_dir

    results = run_folds(out_dir, docs, folds, plan, train_and_score)
    scores = {name: model_and_rules(m) for name, m in results.items()}
    title = f"NER cross-validation grouped by {plan.group}"
    return write_summary(out_dir, folds, scores, plan_record(folds, plan, seed), title)


def ner_sections(m: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {"entities": m["entities"], "relations": m["relations"], "targets": {"triples": m["targets"]}}


def model_and_rules(metrics: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A fold's scores by system from evaluate_extractor's metrics: the model and the rules baseline."""
    return {"model": ner_sections(metrics), "rules": ner_sections(metrics["rules_baseline"])}


def relation_cv(cfg: RelConfig, out_dir: Path, plan: CvPlan = CvPlan()) -> dict[str, Any]:
    """Per fold: train the configured relation linker on the fold's train documents and score it
    and the rules linker on its test documents, given gold entities (both with deadline inheritance)."""
    from pipeline.extractors.relation_model import RelationModel
    from pipeline.training.relation_training import train_relations

    seed = cfg.seed if plan.seed is None else plan.seed
    docs, folds = make_folds(cfg.annotations, plan, seed, out_dir)

    def train_and_score(fold: Fold, fold_dir: Path) -> Path:
        model_dir = train_relations(fold_config(cfg, fold, fold_dir, plan, seed))
        test = [docs[d] for d in fold.test]
        metrics = {
            cfg.variant: relation_scores(test, linked(test, model_linker(RelationModel(model_dir), True))),
            "rules": relation_scores(test, linked(test, rules_linker(True))),
            "train_seconds": json.loads((fold_dir / "run.json").read_text(encoding="utf-8"))["train_seconds"],
        }
        write_atomic(fold_dir / "metrics.json", json.dumps(metrics, ensure_ascii=False, indent=2) + "\n")
        return model_dir

    results = run_folds(out_dir, docs, folds, plan, train_and_score)
    scores = {name: {s: rel_sections(m[s]) for s in (cfg.variant, "rules")} for name, m in results.items()}
    title = f"Relation cross-validation grouped by {plan.group}, given gold entities ({cfg.variant} / rules linker)"
    return write_summary(out_dir, folds, scores, plan_record(folds, plan, seed), title)


def rel_sections(m: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {"relations": m["relations"], "targets": {"triples": m["targets"]}}


def rescore_folds(
    cv_dir: Path,
    out_dir: Path,
    annotations: str,
    make_extractor: Callable[[Path], Extractor],
    title: str,
    traditional: bool = False,
    only_docs: Sequence[str] = (),
) -> dict[str, Any]:
    """Score the models kept by ``planie cv --keep-models`` (CV_DIR/FOLD/model) on their folds' test
    documents (``only_docs``: these of them) with another extractor built around each (other decoding steps,
    another linker): no training. Writes OUT/folds.json, OUT/FOLD/metrics.json and report.md, OUT/cv.json
    and cv.md."""
    from pipeline.evaluation.report import evaluate_extractor

    record = json.loads((cv_dir / "folds.json").read_text(encoding="utf-8"))
    folds = [Fold(f["name"], tuple(f["groups"]), tuple(f["train"]), tuple(f["test"])) for f in record["folds"]]
    if only_docs:
        unknown = set(only_docs) - {d for f in folds for d in f.test}
        if unknown:
            raise UsageError(f"{cv_dir}: no fold tests {', '.join(sorted(unknown))}")
        folds = [replace(f, test=tuple(d for d in f.test if d in only_docs)) for f in folds]
        folds = [f for f in folds if f.test]
    missing = [f.name for f in folds if not (cv_dir / f.name / "model").is_dir()]
    if missing:
        raise UsageError(f"{cv_dir}: no kept model for {', '.join(missing)} (run planie cv with --keep-models)")
    docs, _ = gold_groups(annotations, "doc")
    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(out_dir / "folds.json", json.dumps(record, ensure_ascii=False, indent=2) + "\n")
    schema = load_schema()
    scores = {}
    for fold in folds:
        test = [docs[d] for d in fold.test]
        extractor = make_extractor(cv_dir / fold.name / "model")
        report = evaluate_extractor(test, extractor, schema, fold.name, traditional=traditional)
        report.write(out_dir / fold.name)
        metrics = report.full_metrics()
        scores[fold.name] = model_and_rules(metrics)
        if traditional:
            scores[fold.name]["traditional"] = ner_sections(metrics["variant:traditional"])
    plan = {"group": record["group"], "k": record["k"], "seed": record["seed"], "rescored_from": str(cv_dir)}
    source = cv_dir / "cv.json"
    if source.exists() and "train_docs" in (trained := json.loads(source.read_text(encoding="utf-8"))):
        plan["train_docs"] = trained["train_docs"]
    return write_summary(out_dir, folds, scores, plan, title)
