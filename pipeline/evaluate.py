"""Strict scoring of entities, relations and target triples against gold documents."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.annotations import AnnotatedDoc, Relation, Span

if TYPE_CHECKING:
    from pipeline.extract import Extractor
    from pipeline.schema import Schema

SpanKey = tuple[int, int, str]


@dataclass(frozen=True)
class PRF:
    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def support(self) -> int:
        return self.tp + self.fn

    def as_dict(self) -> dict[str, float | int]:
        return {
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "support": self.support,
        }


def _prf(gold: set, pred: set) -> PRF:
    return PRF(len(gold & pred), len(pred - gold), len(gold - pred))


def score_sets(gold: Iterable[tuple], pred: Iterable[tuple], labels: Sequence[str]) -> dict[str, PRF]:
    """Per-label and micro PRF over items whose last element is their label."""
    gold, pred = set(gold), set(pred)
    scores = {lab: _prf({g for g in gold if g[-1] == lab}, {p for p in pred if p[-1] == lab}) for lab in labels}
    scores["micro"] = _prf(gold, pred)
    return scores


def span_key(s: Span) -> SpanKey:
    return (s.start, s.end, s.label)


def entity_items(docs: Sequence[AnnotatedDoc]) -> set[tuple]:
    return {(d.doc_id, *span_key(s)) for d in docs for s in d.spans}


def relation_items(docs: Sequence[AnnotatedDoc]) -> set[tuple]:
    items = set()
    for d in docs:
        by_id = d.span_by_id()
        for r in d.relations:
            if r.head in by_id and r.tail in by_id:
                items.add((d.doc_id, span_key(by_id[r.head]), span_key(by_id[r.tail]), r.label))
    return items


def target_triples(doc: AnnotatedDoc) -> set[tuple]:
    """(INDICATOR, VALUE, DEADLINE-or-None) span triples built from value_of and deadline_of."""
    by_id = doc.span_by_id()
    deadline_of = {r.tail: r.head for r in doc.relations if r.label == "deadline_of"}
    triples = set()
    for r in doc.relations:
        if r.label == "value_of" and r.head in by_id and r.tail in by_id:
            d = deadline_of.get(r.head)
            deadline = span_key(by_id[d]) if d in by_id else None
            triples.add((doc.doc_id, span_key(by_id[r.tail]), span_key(by_id[r.head]), deadline, "target"))
    return triples


def score_entities(gold: Sequence[AnnotatedDoc], pred: Sequence[AnnotatedDoc], labels: Sequence[str]) -> dict[str, PRF]:
    return score_sets(entity_items(gold), entity_items(pred), labels)


def score_relations(
    gold: Sequence[AnnotatedDoc], pred: Sequence[AnnotatedDoc], labels: Sequence[str]
) -> dict[str, PRF]:
    return score_sets(relation_items(gold), relation_items(pred), labels)


def score_targets(gold: Sequence[AnnotatedDoc], pred: Sequence[AnnotatedDoc]) -> PRF:
    g = set().union(*(target_triples(d) for d in gold)) if gold else set()
    p = set().union(*(target_triples(d) for d in pred)) if pred else set()
    return _prf(g, p)


@dataclass(frozen=True)
class SpanError:
    doc_id: str
    kind: str  # missed | spurious | boundary | wrong_type | boundary+type
    gold: Span | None
    pred: Span | None
    sentence: str


def span_errors(gold: AnnotatedDoc, pred: AnnotatedDoc) -> list[SpanError]:
    """Classify every non-matching span: a predicted span overlapping a gold one is a boundary
    and/or type error; otherwise it is spurious; unmatched gold spans are missed."""
    from pipeline.relations import SentenceIndex

    index = SentenceIndex(gold.text)

    def sentence(s: Span) -> str:
        i = index.of(s.start)
        return index.sentences[i].text if i >= 0 else gold.text[max(0, s.start - 30) : s.end + 30]

    gold_keys = {span_key(s) for s in gold.spans}
    pred_keys = {span_key(s) for s in pred.spans}
    errors: list[SpanError] = []
    explained: set[SpanKey] = set()
    for p in pred.spans:
        if span_key(p) in gold_keys:
            continue
        overlapping = [g for g in gold.spans if g.start < p.end and p.start < g.end and span_key(g) not in pred_keys]
        if not overlapping:
            errors.append(SpanError(gold.doc_id, "spurious", None, p, sentence(p)))
            continue
        g = overlapping[0]
        explained.add(span_key(g))
        same_bounds = (g.start, g.end) == (p.start, p.end)
        kind = "wrong_type" if same_bounds else ("boundary" if g.label == p.label else "boundary+type")
        errors.append(SpanError(gold.doc_id, kind, g, p, sentence(g)))
    for g in gold.spans:
        if span_key(g) not in pred_keys and span_key(g) not in explained:
            errors.append(SpanError(gold.doc_id, "missed", g, None, sentence(g)))
    return errors


def confusion(gold: Sequence[AnnotatedDoc], pred: Sequence[AnnotatedDoc], labels: Sequence[str]) -> dict[str, Counter]:
    """gold label -> Counter of predicted labels over overlapping spans ('O' when nothing overlaps)."""
    table: dict[str, Counter] = {lab: Counter() for lab in labels}
    pred_by_doc = {d.doc_id: d for d in pred}
    for g_doc in gold:
        p_doc = pred_by_doc.get(g_doc.doc_id)
        for g in g_doc.spans:
            hits = [p.label for p in (p_doc.spans if p_doc else ()) if p.start < g.end and g.start < p.end]
            table[g.label][hits[0] if hits else "O"] += 1
    return table


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

        from pipeline.annotations import write_atomic

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

    from pipeline.dataset import bio_labels

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
) -> Report:
    """Score an extractor on gold documents, with the rules baseline on the same documents and,
    optionally, on traditional-character twins of them."""
    from pipeline.documents import Document
    from pipeline.extract import RulesExtractor, extract_documents
    from pipeline.relations import link_rules

    def run(ex: Extractor, docs: Sequence[AnnotatedDoc], name: str) -> Report:
        pred = extract_documents([Document(d.doc_id, d.source, d.text, "utf-8") for d in docs], ex)
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


def replace_relations(doc: AnnotatedDoc, relations: Iterable[Relation]) -> AnnotatedDoc:
    from dataclasses import replace

    return replace(doc, relations=tuple(relations))
