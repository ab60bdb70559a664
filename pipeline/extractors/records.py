"""Output records: target and task rows joined from relations; one extractions.jsonl line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.core.annotations import AnnotatedDoc, Relation, Span
from pipeline.core.documents import SentenceIndex
from pipeline.extractors.extract import Extractor


@dataclass(frozen=True)
class Target:
    indicator: str
    value: str
    deadline: str | None
    sentence: str
    indicator_start: int
    value_start: int
    deadline_start: int | None


@dataclass(frozen=True)
class Task:
    action: str
    agencies: tuple[str, ...]
    deadline: str | None
    sentence: str
    action_start: int


def _sentence_of(index: SentenceIndex, text: str, s: Span) -> str:
    i = index.of(s.start)
    return index.sentences[i].text if i >= 0 else text[s.start : s.end]


def target_spans(doc: AnnotatedDoc) -> list[tuple[Span, Span, Span | None]]:
    """(INDICATOR, VALUE, DEADLINE-or-None) spans of every value_of relation whose two spans exist,
    the deadline joined from the value's deadline_of relation (the last one wins)."""
    by_id = doc.span_by_id()
    deadline_of = {r.tail: by_id.get(r.head) for r in doc.relations if r.label == "deadline_of"}
    return [
        (by_id[r.tail], by_id[r.head], deadline_of.get(r.head))
        for r in doc.relations
        if r.label == "value_of" and r.head in by_id and r.tail in by_id
    ]


def build_targets(doc: AnnotatedDoc, index: SentenceIndex | None = None) -> list[Target]:
    index = index or SentenceIndex(doc.text)
    targets = []
    for indicator, value, deadline in target_spans(doc):
        targets.append(
            Target(
                indicator.text,
                value.text,
                deadline.text if deadline else None,
                _sentence_of(index, doc.text, value),
                indicator.start,
                value.start,
                deadline.start if deadline else None,
            )
        )
    return sorted(targets, key=lambda t: (t.value_start, t.indicator_start))


def build_tasks(doc: AnnotatedDoc, index: SentenceIndex | None = None) -> list[Task]:
    index = index or SentenceIndex(doc.text)
    by_id = doc.span_by_id()
    agencies: dict[str, list[Span]] = {}
    deadlines: dict[str, Span] = {}
    for r in doc.relations:
        if r.head in by_id and r.label == "responsible_for":
            agencies.setdefault(r.tail, []).append(by_id[r.head])
        elif r.head in by_id and r.label == "deadline_of":
            deadlines[r.tail] = by_id[r.head]
    tasks = []
    for s in doc.spans:
        if s.label != "ACTION":
            continue
        names = tuple(a.text for a in sorted(agencies.get(s.id, []), key=lambda a: a.start))
        deadline = deadlines.get(s.id)
        tasks.append(
            Task(s.text, names, deadline.text if deadline else None, _sentence_of(index, doc.text, s), s.start)
        )
    return tasks


def extraction_record(doc: AnnotatedDoc, extractor: Extractor) -> dict[str, Any]:
    """One line of extractions.jsonl (the contract in the annotation schema)."""
    index = SentenceIndex(doc.text)
    return {
        "doc_id": doc.doc_id,
        "source": doc.source,
        "text": doc.text,
        "entities": [
            {"id": s.id, "start": s.start, "end": s.end, "label": s.label, "text": s.text, "score": s.score}
            for s in doc.spans
        ],
        "relations": [{"head": r.head, "tail": r.tail, "label": r.label, "score": r.score} for r in doc.relations],
        "targets": [
            {"indicator": t.indicator, "value": t.value, "deadline": t.deadline, "sentence": t.sentence}
            for t in build_targets(doc, index)
        ],
        "tasks": [
            {"action": t.action, "agencies": list(t.agencies), "deadline": t.deadline, "sentence": t.sentence}
            for t in build_tasks(doc, index)
        ],
        "model": {"ner": extractor.ner_id, "relations": extractor.relations_id},
    }


def doc_from_record(record: dict[str, Any]) -> AnnotatedDoc:
    spans = tuple(
        Span(e["id"], e["start"], e["end"], e["label"], e["text"], e.get("score")) for e in record["entities"]
    )
    relations = tuple(Relation(r["head"], r["tail"], r["label"], r.get("score")) for r in record["relations"])
    return AnnotatedDoc(record["doc_id"], record["text"], spans, relations, record.get("source", ""))
