"""Strict scoring of entities, relations and target triples against gold documents; span errors."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pipeline.core.annotations import AnnotatedDoc, Relation, Span
from pipeline.core.metrics import PRF, score_sets, set_prf
from pipeline.extractors.records import target_spans

SpanKey = tuple[int, int, str]


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
    return {
        (
            doc.doc_id,
            span_key(indicator),
            span_key(value),
            span_key(deadline) if deadline is not None else None,
            "target",
        )
        for indicator, value, deadline in target_spans(doc)
    }


def score_entities(gold: Sequence[AnnotatedDoc], pred: Sequence[AnnotatedDoc], labels: Sequence[str]) -> dict[str, PRF]:
    return score_sets(entity_items(gold), entity_items(pred), labels)


def score_relations(
    gold: Sequence[AnnotatedDoc], pred: Sequence[AnnotatedDoc], labels: Sequence[str]
) -> dict[str, PRF]:
    return score_sets(relation_items(gold), relation_items(pred), labels)


def score_targets(gold: Sequence[AnnotatedDoc], pred: Sequence[AnnotatedDoc]) -> PRF:
    g = set().union(*(target_triples(d) for d in gold)) if gold else set()
    p = set().union(*(target_triples(d) for d in pred)) if pred else set()
    return set_prf(g, p)


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
    from pipeline.core.documents import SentenceIndex

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


def replace_relations(doc: AnnotatedDoc, relations: Iterable[Relation]) -> AnnotatedDoc:
    from dataclasses import replace

    return replace(doc, relations=tuple(relations))
