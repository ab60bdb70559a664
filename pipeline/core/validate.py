"""Checks of Label Studio exports against the documents and the schema."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.core.annotations import ExportError, load_export_tasks, shape_problems
from pipeline.core.documents import DocumentError, first_difference, read_document
from pipeline.core.schema import Schema


@dataclass(frozen=True)
class Problem:
    file: str
    task: Any
    annotation: Any
    item: str
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: task {self.task}"
        if self.annotation is not None:
            where += f": annotation {self.annotation}"
        if self.item:
            where += f": {self.item}"
        return f"{where}: {self.field}: {self.message}"


def validate_result(
    text: str, result: list[dict[str, Any]], schema: Schema, where: tuple[str, Any, Any]
) -> list[Problem]:
    """Problems in one annotation's (or prediction's) result list."""
    file, task, ann = where
    problems: list[Problem] = []

    def problem(item: str, field_: str, message: str) -> None:
        problems.append(Problem(file, task, ann, item, field_, message))

    spans: dict[str, tuple[int, int, str]] = {}
    ids = Counter(str(i.get("id")) for i in result if i.get("type") == "labels")
    for item in result:
        if item.get("type") != "labels":
            continue
        rid = str(item.get("id"))
        tag = f"result id={rid}"
        if ids[rid] > 1:
            problem(tag, "id", "duplicate result id")
        value = item.get("value") or {}
        labels = value.get("labels") or []
        if len(labels) != 1:
            problem(tag, "value.labels", f"expected exactly one label, got {labels!r}")
            continue
        label = labels[0]
        if label not in schema.entity_labels:
            problem(tag, "value.labels", f"unknown label {label!r} (schema: {', '.join(schema.entity_labels)})")
        start, end = value.get("start"), value.get("end")
        if not isinstance(start, int) or not isinstance(end, int):
            problem(tag, "value.start/end", f"offsets must be integers, got {start!r}, {end!r}")
            continue
        if not 0 <= start < end <= len(text):
            problem(tag, "value.start/end", f"offsets {start}-{end} outside the text (length {len(text)}) or empty")
            continue
        piece = text[start:end]
        if value.get("text") != piece:
            problem(tag, "value.text", f"{value.get('text')!r} differs from the text at {start}-{end}: {piece!r}")
        if "\n" in piece or "\r" in piece:
            problem(tag, "value.start/end", f"span {start}-{end} crosses a line break")
        if piece != piece.strip():
            problem(tag, "value.start/end", f"span {start}-{end} {piece!r} starts or ends with white space")
        spans[rid] = (start, end, label)

    ordered = sorted(spans.items(), key=lambda kv: kv[1][:2])
    for (id_a, a), (id_b, b) in zip(ordered, ordered[1:], strict=False):
        if b[0] < a[1]:
            problem(f"result id={id_b}", "value.start", f"overlaps result id={id_a} ({a[0]}-{a[1]} and {b[0]}-{b[1]})")

    seen_relations: set[tuple[str, str, str]] = set()
    for item in result:
        if item.get("type") != "relation":
            continue
        head, tail = str(item.get("from_id")), str(item.get("to_id"))
        tag = f"relation {head}->{tail}"
        labels = item.get("labels") or []
        if len(labels) != 1:
            problem(tag, "labels", f"expected exactly one relation label, got {labels!r}")
            continue
        label = labels[0]
        if label not in schema.relation_labels:
            problem(tag, "labels", f"unknown relation {label!r} (schema: {', '.join(schema.relation_labels)})")
            continue
        if item.get("direction", "right") != "right":
            problem(tag, "direction", f"expected 'right' (head -> tail), got {item.get('direction')!r}")
        missing = [name for name, rid in (("from_id", head), ("to_id", tail)) if rid not in spans]
        if missing:
            for name in missing:
                problem(tag, name, "no span with that id in this annotation")
            continue
        h, t = spans[head][2], spans[tail][2]
        if not schema.allows(label, h, t):
            rel = schema.relation(label)
            problem(tag, "labels", f"{label} needs {'|'.join(rel.head)} -> {'|'.join(rel.tail)}, got {h} -> {t}")
        key = (head, tail, label)
        if key in seen_relations:
            problem(tag, "labels", f"duplicate relation {label}")
        seen_relations.add(key)
    return problems


def validate_export(path: str | Path, schema: Schema, documents: dict[str, Path] | None = None) -> list[Problem]:
    """Every problem in a Label Studio export file; ``documents`` maps doc_id to source file."""
    path = Path(path)
    try:
        tasks = load_export_tasks(path)
    except ExportError as exc:
        return [Problem(str(path), "-", None, "", "file", str(exc))]
    if not tasks:
        return [Problem(str(path), "-", None, "", "file", "no tasks (an empty export)")]
    problems: list[Problem] = []
    for task in tasks:
        tid = task.get("id")
        text = task["data"]["text"]
        if not isinstance(text, str):
            problems.append(Problem(str(path), tid, None, "", "data.text", "must be a string"))
            continue
        shape = shape_problems(task)
        if shape:
            problems += [Problem(str(path), tid, None, where, field_, message) for where, field_, message in shape]
            continue
        doc_id = str(task["data"].get("doc_id") or "")
        if documents is not None and doc_id not in documents:
            problems.append(Problem(str(path), tid, None, "", "data.doc_id", f"{doc_id!r} not found under --docs"))
        elif documents is not None:
            try:
                original = read_document(documents[doc_id]).text
            except DocumentError as exc:
                problems.append(Problem(str(path), tid, None, "", "data.doc_id", str(exc)))
            else:
                if original != text:
                    at = first_difference(original, text)
                    problems.append(
                        Problem(
                            str(path), tid, None, "", "data.text", f"differs from {documents[doc_id]} at character {at}"
                        )
                    )
        for ann in task.get("annotations") or []:
            if ann.get("was_cancelled"):
                continue
            problems.extend(validate_result(text, ann.get("result") or [], schema, (str(path), tid, ann.get("id"))))
        for pred in task.get("predictions") or []:
            if isinstance(pred, dict):
                where = (str(path), tid, f"prediction {pred.get('id')}")
                problems.extend(validate_result(text, pred.get("result") or [], schema, where))
    return problems
