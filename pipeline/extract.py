"""Extraction: documents in, structured records out (JSONL contract, CSV tables)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from pipeline.annotations import AnnotatedDoc, Relation, Span, write_atomic
from pipeline.documents import Document
from pipeline.relations import SentenceIndex, link_rules


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


class Extractor(Protocol):
    """Anything that turns texts into entity spans and relations."""

    ner_id: str
    relations_id: str

    def predict(self, texts: Sequence[str]) -> list[tuple[list[Span], list[Relation]]]: ...


class RulesExtractor:
    """The regex + lexicon baseline with the rules linker."""

    ner_id = "rules"
    relations_id = "rules-linker"

    def predict(self, texts: Sequence[str]) -> list[tuple[list[Span], list[Relation]]]:
        from pipeline.rules import rule_spans

        out = []
        for text in texts:
            spans = rule_spans(text)
            out.append((spans, link_rules(text, spans)))
        return out


def _sentence_of(index: SentenceIndex, text: str, s: Span) -> str:
    i = index.of(s.start)
    return index.sentences[i].text if i >= 0 else text[s.start : s.end]


def build_targets(doc: AnnotatedDoc, index: SentenceIndex | None = None) -> list[Target]:
    index = index or SentenceIndex(doc.text)
    by_id = doc.span_by_id()
    deadline_of = {r.tail: by_id.get(r.head) for r in doc.relations if r.label == "deadline_of"}
    targets = []
    for r in doc.relations:
        if r.label != "value_of" or r.head not in by_id or r.tail not in by_id:
            continue
        value, indicator = by_id[r.head], by_id[r.tail]
        deadline = deadline_of.get(value.id)
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


def extract_documents(documents: Sequence[Document], extractor: Extractor) -> list[AnnotatedDoc]:
    results = extractor.predict([d.text for d in documents])
    return [
        AnnotatedDoc(d.doc_id, d.text, tuple(spans), tuple(rels), d.source)
        for d, (spans, rels) in zip(documents, results, strict=True)
    ]


def _csv(rows: Iterable[dict[str, Any]], fields: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def write_outputs(out_dir: Path, docs: Sequence[AnnotatedDoc], extractor: Extractor) -> dict[str, Path]:
    """extractions.jsonl, targets.csv and tasks.csv in ``out_dir``, each written atomically."""
    out_dir = Path(out_dir)
    records = [extraction_record(d, extractor) for d in docs]
    paths = {name: out_dir / name for name in ("extractions.jsonl", "targets.csv", "tasks.csv")}
    write_atomic(paths["extractions.jsonl"], "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    target_rows = [{"doc_id": d.doc_id, **asdict(t)} for d in docs for t in build_targets(d)]
    task_rows = [
        {"doc_id": d.doc_id, **{**asdict(t), "agencies": "、".join(t.agencies)}} for d in docs for t in build_tasks(d)
    ]
    write_atomic(paths["targets.csv"], _csv(target_rows, ["doc_id", *Target.__dataclass_fields__]))
    write_atomic(paths["tasks.csv"], _csv(task_rows, ["doc_id", *Task.__dataclass_fields__]))
    return paths
