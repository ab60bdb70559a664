"""Relation linkers on the held-out split: the learned variants next to the rules linker, given gold
entities and end to end, with and without deadline inheritance."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pipeline.core.annotations import AnnotatedDoc, Relation, Span
from pipeline.extractors.relation_inputs import RELATION_LABELS

Linker = Callable[[str, Sequence[Span]], list[Relation]]


def rules_linker(inherit: bool) -> Linker:
    from pipeline.extractors.relations import inherit_deadlines, link_rules

    def link(text: str, spans: Sequence[Span]) -> list[Relation]:
        rels = link_rules(text, spans, inherit=False)  # the same separate inheritance step as the models
        return inherit_deadlines(text, spans, rels) if inherit else rels

    return link


_PROBS: dict[tuple[int, int, int], tuple[list, list]] = {}  # (model, text, spans) -> candidates, probabilities


def model_linker(model: Any, inherit: bool, threshold: float | dict[str, float] | None = None) -> Linker:
    """A learned model's linker (``threshold``: override the model's dev-tuned thresholds)."""
    from pipeline.extractors.relation_model import decode
    from pipeline.extractors.relations import inherit_deadlines

    def link(text: str, spans: Sequence[Span]) -> list[Relation]:
        key = (id(model), hash(text), hash(tuple(spans)))
        if key not in _PROBS:
            _PROBS[key] = model.probabilities(text, spans)
        rels = decode(*_PROBS[key], model.threshold if threshold is None else threshold)
        return inherit_deadlines(text, spans, rels) if inherit else rels

    return link


def linked(docs: Sequence[AnnotatedDoc], linker: Linker) -> list[AnnotatedDoc]:
    from pipeline.evaluation.scoring import replace_relations

    return [replace_relations(d, linker(d.text, d.spans)) for d in docs]


def relation_scores(gold: Sequence[AnnotatedDoc], pred: Sequence[AnnotatedDoc]) -> dict[str, Any]:
    """Strict relation PRF per label and micro, and exact target triples."""
    from pipeline.evaluation.scoring import score_relations, score_targets

    rel = score_relations(gold, pred, RELATION_LABELS)
    return {"relations": {k: v.as_dict() for k, v in rel.items()}, "targets": score_targets(gold, pred).as_dict()}


def linking_speed(docs: Sequence[AnnotatedDoc], linker: Linker) -> float:
    import time

    started = time.perf_counter()
    for d in docs:
        linker(d.text, d.spans)
    return round(sum(len(d.text) for d in docs) / max(time.perf_counter() - started, 1e-9), 1)


def heldout_report(
    test: Sequence[AnnotatedDoc], models: dict[str, Any], ner_dir: Path | None, threads: int = 1
) -> dict[str, Any]:
    """Every linker (rules and each model), with and without inheritance, given gold entities and
    (with ``ner_dir``) from that NER model's predicted entities."""
    from dataclasses import replace

    from pipeline.extractors.relations import candidate_recall

    metrics: dict[str, Any] = {
        "documents": [d.doc_id for d in test],
        "candidate_recall": {
            "sentence_windows": candidate_recall(test),
            "with_deadline_scope": candidate_recall(test, inherit=True),
        },
        "given_gold": {},
        "end_to_end": {},
        "speed_chars_per_s": {},
    }
    linkers: dict[str, Linker] = {}
    for inherit in (True, False):
        suffix = "" if inherit else " (no inheritance)"
        linkers[f"rules{suffix}"] = rules_linker(inherit)
        for name, model in models.items():
            linkers[f"{name}{suffix}"] = model_linker(model, inherit)
            if isinstance(model.threshold, dict):  # also at the untuned threshold
                linkers[f"{name} @0.5{suffix}"] = model_linker(model, inherit, 0.5)
    for name, linker in linkers.items():
        metrics["given_gold"][name] = relation_scores(test, linked(test, linker))
    _PROBS.clear()  # the speed runs compute everything afresh
    fresh = {"rules": rules_linker(True)}
    fresh.update({name: model_linker(model, True) for name, model in models.items()})
    metrics["speed_chars_per_s"] = {name: linking_speed(test, lk) for name, lk in fresh.items()}
    if ner_dir is not None:
        from pipeline.extractors.ner import NerModel

        ner = NerModel(ner_dir)
        predicted = [
            replace(d, spans=tuple(s), relations=())
            for d, s in zip(test, ner.predict([d.text for d in test]), strict=True)
        ]
        metrics["ner_model"] = str(ner_dir)
        metrics["ner_train_docs"] = ner.meta.get("train_docs")
        for name, linker in linkers.items():
            metrics["end_to_end"][name] = relation_scores(test, linked(predicted, linker))
    metrics["threads"] = threads
    return metrics


def _row(name: str, m: dict[str, Any]) -> str:
    rel = m["relations"]
    cells = [f"{rel[lab]['f1']:.3f}" for lab in (*RELATION_LABELS, "micro")]
    mic = rel["micro"]
    return (
        f"| {name} | "
        + " | ".join(cells)
        + f" | {mic['precision']:.3f} / {mic['recall']:.3f} | {m['targets']['f1']:.3f} |"
    )


def report_markdown(metrics: dict[str, Any], command: str) -> str:
    lines = [
        "# Relation linkers on the held-out documents",
        "",
        f"Documents: {', '.join(metrics['documents'])}. Command: `{command}`.",
        "",
        "Strict relation scores (head span+label, tail span+label and relation label exact) and exact target",
        "triples (INDICATOR, VALUE, DEADLINE-or-none). Learned models use per-label thresholds tuned on the",
        "dev blocks (`thresholds` in planie-rel.json); `@0.5`: the same model at threshold 0.5.",
        "`(no inheritance)`: without the separate rule step",
        "`relations.inherit_deadlines` (a VALUE without a deadline takes the one whose scope it lies in).",
        "The rules linker was written while reading all five seeds (the test documents included), so its",
        "held-out scores are optimistic.",
        "",
        "## Candidate recall (gold entities)",
        "",
        "| windows | value_of | deadline_of | responsible_for | micro | candidates |",
        "|---|---|---|---|---|---|",
    ]
    for key, name in (
        ("sentence_windows", "model windows (deadline: own sentence)"),
        ("with_deadline_scope", "deadline scope (to next DEADLINE/heading)"),
    ):
        c = metrics["candidate_recall"][key]
        lines.append(
            f"| {name} | "
            + " | ".join(
                f"{c[lab]['recall']:.3f} ({c[lab]['covered']}/{c[lab]['gold']})" for lab in (*RELATION_LABELS, "micro")
            )
            + f" | {c['micro']['candidates']} |"
        )
    header = [
        "| linker | value_of F1 | deadline_of F1 | responsible_for F1 | micro F1 | micro P / R | target triples F1 |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += ["", "## Given gold entities", "", *header]
    lines += [_row(n, m) for n, m in metrics["given_gold"].items()]
    if metrics["end_to_end"]:
        lines += [
            "",
            f"## End to end (entities predicted by `{metrics['ner_model']}`, trained on the train split only)",
            "",
            *header,
        ]
        lines += [_row(n, m) for n, m in metrics["end_to_end"].items()]
    lines += [
        "",
        f"## Linking speed (gold entities, {metrics['threads']} torch thread(s), relation step only)",
        "",
        "| linker | chars/s |",
        "|---|---|",
    ]
    lines += [f"| {n} | {v:,.0f} |" for n, v in metrics["speed_chars_per_s"].items()]
    return "\n".join(lines) + "\n"
