"""Evaluation reports of an extractor: scores, rules baseline, traditional twins, markdown and plots."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.core.annotations import AnnotatedDoc

if TYPE_CHECKING:
    from pipeline.core.schema import Schema
    from pipeline.extractors.extract import Extractor
from pipeline.evaluation.scoring import (
    SpanError,
    confusion,
    replace_relations,
    score_entities,
    score_relations,
    score_targets,
    span_errors,
)


@dataclass
class Report:
    title: str
    metrics: dict
    errors: list[SpanError]
    baseline: Report | None = None  # the rules baseline scored on the same documents
    variants: dict[str, Report] = field(default_factory=dict)  # e.g. traditional-character twins

    def markdown(self) -> str:
        lines = [f"# {self.title}", "", f"Documents: {', '.join(self.metrics['documents'])}", ""]
        if self.baseline is not None or self.variants:
            lines += self._comparison()
        for section, key in (("Entities (strict)", "entities"), ("Relations (strict, end to end)", "relations")):
            lines += [f"## {section}", "", "| label | P | R | F1 | support |", "|---|---|---|---|---|"]
            for lab, m in self.metrics[key].items():
                lines.append(f"| {lab} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |")
            lines.append("")
        if "relations_given_gold" in self.metrics:
            lines += [
                "## Relations given gold entities",
                "",
                "| label | P | R | F1 | support |",
                "|---|---|---|---|---|",
            ]
            for lab, m in self.metrics["relations_given_gold"].items():
                lines.append(f"| {lab} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |")
            lines.append("")
        t = self.metrics["targets"]
        lines += [
            "## Target triples (INDICATOR, VALUE, DEADLINE-or-none), exact",
            "",
            f"P {t['precision']:.3f} · R {t['recall']:.3f} · F1 {t['f1']:.3f} · support {t['support']}",
            "",
            "## Confusion (gold label → predicted label of the first overlapping span; O = nothing)",
            "",
        ]
        conf = self.metrics["confusion"]
        cols = sorted({c for row in conf.values() for c in row})
        lines += ["| gold \\ pred | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        lines += [f"| {g} | " + " | ".join(str(row.get(c, 0)) for c in cols) + " |" for g, row in conf.items()]
        kinds = Counter(e.kind for e in self.errors)
        lines += ["", "## Errors", "", ", ".join(f"{k}: {v}" for k, v in sorted(kinds.items())), ""]
        for e in self.errors[:200]:
            g = f"{e.gold.label} {e.gold.text!r}" if e.gold else "-"
            p = f"{e.pred.label} {e.pred.text!r}" if e.pred else "-"
            lines.append(f"- {e.kind} [{e.doc_id}] gold {g} / pred {p} — {e.sentence[:80]}")
        return "\n".join(lines) + "\n"

    def _comparison(self) -> list[str]:
        cols = {"model": self.metrics}
        if self.baseline is not None:
            cols["rules baseline"] = self.baseline.metrics
        cols.update({name: r.metrics for name, r in self.variants.items()})
        lines = ["## Strict entity F1 side by side", "", "| label | " + " | ".join(cols) + " |"]
        lines.append("|---" * (len(cols) + 1) + "|")
        for lab in self.metrics["entities"]:
            lines.append(f"| {lab} | " + " | ".join(f"{m['entities'][lab]['f1']:.3f}" for m in cols.values()) + " |")
        for key, name in (("relations", "relations micro"), ("targets", "target triples")):
            vals = [m[key]["micro"]["f1"] if key == "relations" else m[key]["f1"] for m in cols.values()]
            lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in vals) + " |")
        if "seqeval" in self.metrics:
            lines.append(
                "| seqeval micro (IOB2) | "
                + " | ".join(f"{m['seqeval']['micro']['f1']:.3f}" if "seqeval" in m else "-" for m in cols.values())
                + " |"
            )
        return lines + [""]

    def full_metrics(self) -> dict:
        out = dict(self.metrics)
        if self.baseline is not None:
            out["rules_baseline"] = self.baseline.metrics
        out.update({f"variant:{k}": v.metrics for k, v in self.variants.items()})
        return out

    def write(self, out_dir: str | Path, training_log: list[dict] | None = None) -> None:
        import json

        from pipeline.core.files import write_atomic

        out = Path(out_dir)
        write_atomic(out / "report.md", self.markdown())
        write_atomic(out / "metrics.json", json.dumps(self.full_metrics(), ensure_ascii=False, indent=2) + "\n")
        plot_label_f1(self, out / "f1_by_label.png")
        if training_log:
            plot_training_curve(training_log, out / "training_curve.png")


def evaluation_report(
    gold: Sequence[AnnotatedDoc],
    pred: Sequence[AnnotatedDoc],
    schema: Schema,
    title: str,
    pred_given_gold: Sequence[AnnotatedDoc] | None = None,
) -> Report:
    """All strict scores of ``pred`` against ``gold`` (matched by doc_id) plus the error list."""
    metrics: dict = {
        "documents": [d.doc_id for d in gold],
        "entities": {k: v.as_dict() for k, v in score_entities(gold, pred, schema.entity_labels).items()},
        "relations": {k: v.as_dict() for k, v in score_relations(gold, pred, schema.relation_labels).items()},
        "targets": score_targets(gold, pred).as_dict(),
        "confusion": {k: dict(v) for k, v in confusion(gold, pred, schema.entity_labels).items()},
    }
    if pred_given_gold is not None:
        rel = score_relations(gold, pred_given_gold, schema.relation_labels)
        metrics["relations_given_gold"] = {k: v.as_dict() for k, v in rel.items()}
    pred_by_id = {d.doc_id: d for d in pred}
    errors = [e for g in gold for e in span_errors(g, pred_by_id.get(g.doc_id, AnnotatedDoc(g.doc_id, g.text, ())))]
    return Report(title, metrics, errors)


def seqeval_scores(
    gold: Sequence[AnnotatedDoc], pred: Sequence[AnnotatedDoc], tokenizer_pieces: Callable[[str], list]
) -> dict:
    """seqeval IOB2 scores over the model's pieces (gold and prediction tagged on the same pieces)."""
    from seqeval.metrics import classification_report

    from pipeline.core.alignment import bio_labels

    pred_by_id = {d.doc_id: d for d in pred}
    y_true, y_pred = [], []
    for g in gold:
        pieces = tokenizer_pieces(g.text)
        y_true.append(bio_labels(pieces, g.spans))
        y_pred.append(bio_labels(pieces, pred_by_id[g.doc_id].spans))
    rep = classification_report(y_true, y_pred, output_dict=True, zero_division=0)
    out = {
        k: {"precision": round(v["precision"], 4), "recall": round(v["recall"], 4), "f1": round(v["f1-score"], 4)}
        for k, v in rep.items()
        if k not in ("macro avg", "weighted avg")
    }
    out["micro"] = out.pop("micro avg")
    return out


def plot_label_f1(report: Report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = {"model": report.metrics}
    if report.baseline is not None:
        series["rules baseline"] = report.baseline.metrics
    series.update({name: r.metrics for name, r in report.variants.items()})
    labels = list(report.metrics["entities"])
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(series)
    for k, (name, m) in enumerate(series.items()):
        xs = [i + k * width for i in range(len(labels))]
        ax.bar(xs, [m["entities"][lab]["f1"] for lab in labels], width, label=name)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(labels))], labels)
    ax.set_ylim(0, 1)
    ax.set_ylabel("strict F1")
    ax.legend()
    ax.set_title(report.title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_training_curve(log_history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(h["epoch"], h["loss"]) for h in log_history if "loss" in h]
    dev = [(h["epoch"], h["eval_f1"]) for h in log_history if "eval_f1" in h]
    fig, ax = plt.subplots(figsize=(7, 4))
    if train:
        ax.plot(*zip(*train, strict=True), label="train loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    if dev:
        ax2 = ax.twinx()
        ax2.plot(*zip(*dev, strict=True), color="tab:orange", label="dev F1 (seqeval)")
        ax2.set_ylabel("dev F1")
        ax2.set_ylim(0, 1)
        ax2.legend(loc="lower right")
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def traditional_twin(doc: AnnotatedDoc) -> AnnotatedDoc:
    """The document in traditional characters (OpenCC s2t, length kept), gold offsets unchanged."""
    from dataclasses import replace

    import opencc

    conv = opencc.OpenCC("s2t")
    text = conv.convert(doc.text)
    if len(text) != len(doc.text):
        text = "".join(c if len(c := conv.convert(ch)) == 1 else ch for ch in doc.text)
    spans = tuple(replace(s, text=text[s.start : s.end]) for s in doc.spans)
    return replace(doc, text=text, spans=spans)


def evaluate_extractor(
    gold: Sequence[AnnotatedDoc],
    extractor: Extractor,
    schema: Schema,
    title: str,
    traditional: bool = False,
    with_baseline: bool = True,
    progress: bool = True,
) -> Report:
    """Score an extractor on gold documents, with the rules baseline on the same documents and,
    optionally, on traditional-character twins of them; ``progress``: a bar per pass on stderr."""
    from tqdm import tqdm

    from pipeline.core.documents import Document
    from pipeline.extractors.extract import RulesExtractor, extract_batches
    from pipeline.extractors.relations import link_rules

    def run(ex: Extractor, docs: Sequence[AnnotatedDoc], name: str) -> Report:
        pred: list[AnnotatedDoc] = []
        with tqdm(total=len(docs), desc=name, unit="doc", disable=not progress) as bar:
            for batch in extract_batches([Document(d.doc_id, d.source, d.text, "utf-8") for d in docs], ex):
                pred += batch
                bar.update(len(batch))
        given_gold = [replace_relations(d, link_rules(d.text, d.spans)) for d in docs]
        report = evaluation_report(docs, pred, schema, name, pred_given_gold=given_gold)
        pieces = getattr(getattr(ex, "ner", None), "tok", None)
        if pieces is not None:
            report.metrics["seqeval"] = seqeval_scores(docs, pred, pieces.pieces)
        return report

    report = run(extractor, gold, title)
    if with_baseline and extractor.ner_id != "rules":
        report.baseline = run(RulesExtractor(), gold, "rules baseline")
    if traditional:
        report.variants["traditional"] = run(extractor, [traditional_twin(d) for d in gold], "traditional twins")
    return report
