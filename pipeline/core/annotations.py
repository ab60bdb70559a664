"""Span / relation / document records and the Label Studio export format (read and write)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pipeline.core.errors import InputError
from pipeline.core.files import json_files, write_atomic

FROM_NAME = "label"


TO_NAME = "text"


@dataclass(frozen=True)
class Span:
    id: str
    start: int
    end: int
    label: str
    text: str
    score: float | None = None


@dataclass(frozen=True)
class Relation:
    head: str
    tail: str
    label: str
    score: float | None = None


@dataclass(frozen=True)
class AnnotatedDoc:
    doc_id: str
    text: str
    spans: tuple[Span, ...]
    relations: tuple[Relation, ...] = ()
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def span_by_id(self) -> dict[str, Span]:
        return {s.id: s for s in self.spans}


class ExportError(InputError):
    """A Label Studio export that cannot be read; the message names file, task and field."""


def result_items(doc: AnnotatedDoc) -> list[dict[str, Any]]:
    """Label Studio result items (labels + relations) for a document's spans and relations."""
    items: list[dict[str, Any]] = []
    for s in doc.spans:
        item: dict[str, Any] = {
            "value": {"start": s.start, "end": s.end, "text": s.text, "labels": [s.label]},
            "id": s.id,
            "from_name": FROM_NAME,
            "to_name": TO_NAME,
            "type": "labels",
            "origin": "manual",
        }
        if s.score is not None:
            item["score"] = s.score
        items.append(item)
    for r in doc.relations:
        items.append(
            {"from_id": r.head, "to_id": r.tail, "type": "relation", "direction": "right", "labels": [r.label]}
        )
    return items


def to_export_task(doc: AnnotatedDoc, task_id: int = 1, annotation_id: int = 1, project: int = 1) -> dict[str, Any]:
    """One task of a Label Studio JSON export holding ``doc`` as its single annotation."""
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {
        "id": task_id,
        "annotations": [
            {
                "id": annotation_id,
                "completed_by": 1,
                "result": result_items(doc),
                "was_cancelled": False,
                "ground_truth": True,
                "created_at": now,
                "updated_at": now,
                "lead_time": 0,
                "prediction": {},
                "result_count": len(doc.spans) + len(doc.relations),
                "task": task_id,
                "project": project,
                "parent_prediction": None,
                "parent_annotation": None,
            }
        ],
        "drafts": [],
        "predictions": [],
        "data": export_data(doc),
        "meta": {},
        "created_at": now,
        "updated_at": now,
        "inner_id": task_id,
        "total_annotations": 1,
        "cancelled_annotations": 0,
        "total_predictions": 0,
        "project": project,
    }


DATA_LEVEL_META = ("regions", "region")  # kept beside data.text; every other meta key goes to data.meta


def export_data(doc: AnnotatedDoc) -> dict[str, Any]:
    """A task's ``data``: text, doc_id, source, the annotated regions, and ``meta`` (province, place, ...)."""
    data: dict[str, Any] = {"text": doc.text, "doc_id": doc.doc_id, "source": doc.source}
    data |= {k: v for k, v in doc.meta.items() if k in DATA_LEVEL_META}
    meta = {k: v for k, v in doc.meta.items() if k not in DATA_LEVEL_META}
    if meta:
        data["meta"] = meta
    return data


def write_export(path: str | Path, docs: list[AnnotatedDoc]) -> None:
    tasks = [to_export_task(d, task_id=i + 1, annotation_id=i + 1) for i, d in enumerate(docs)]
    write_atomic(path, json.dumps(tasks, ensure_ascii=False, indent=1) + "\n")


def load_export_tasks(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8-sig"))
    except OSError as exc:
        raise ExportError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except json.JSONDecodeError as exc:
        raise ExportError(f"{path}: line {exc.lineno}: invalid JSON ({exc.msg})") from exc
    tasks = raw if isinstance(raw, list) else [raw]
    for i, task in enumerate(tasks):
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict) or "text" not in task["data"]:
            raise ExportError(f"{path}: task #{i}: field 'data.text' missing (not a Label Studio export task)")
    return tasks


def shape_problems(task: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(where, field, message) for every part of a task that is not shaped like Label Studio's:
    annotations that are not objects, results that are not lists of objects, values that are not
    objects, ``data.regions`` that are not [start, end] pairs inside the text."""
    out = []
    annotations = task.get("annotations") or []
    if not isinstance(annotations, list):
        return [("", "annotations", f"must be a list, got {annotations!r:.40}")]
    for i, ann in enumerate(annotations):
        if not isinstance(ann, dict):
            out.append((f"annotation #{i}", "", f"must be an object, got {ann!r:.40}"))
            continue
        result = ann.get("result") or []
        if not isinstance(result, list):
            out.append((f"annotation {ann.get('id')}", "result", f"must be a list, got {result!r:.40}"))
            continue
        for j, item in enumerate(result):
            if not isinstance(item, dict):
                out.append((f"annotation {ann.get('id')}", f"result #{j}", f"must be an object, got {item!r:.40}"))
            elif item.get("type") == "labels" and not isinstance(item.get("value"), dict):
                out.append((f"annotation {ann.get('id')}", f"result #{j}.value", "must be an object"))
    return out + region_problems(task["data"].get("regions"), len(str(task["data"].get("text") or "")))


def region_problems(regions: Any, length: int) -> list[tuple[str, str, str]]:
    """Problems of ``data.regions``: a list of [start, end] integer pairs with 0 <= start < end <= length."""
    if regions is None:
        return []
    if not isinstance(regions, list):
        return [("", "data.regions", f"must be a list of [start, end] pairs, got {regions!r:.40}")]
    out = []
    for i, pair in enumerate(regions):
        ok = isinstance(pair, list) and len(pair) == 2 and all(type(x) is int for x in pair)
        if not ok or not 0 <= pair[0] < pair[1] <= length:
            out.append(("", f"data.regions[{i}]", f"{pair!r:.40} is not a [start, end] pair inside the text"))
    return out


def pick_annotation(task: dict[str, Any]) -> dict[str, Any] | None:
    """The latest completed, non-cancelled annotation of a task."""
    done = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
    if not done:
        return None
    return max(done, key=lambda a: (str(a.get("updated_at") or ""), a.get("id") or 0))


def doc_from_result(doc_id: str, text: str, result: list[dict[str, Any]], source: str = "") -> AnnotatedDoc:
    """Build a record from Label Studio result items (no checking: see pipeline.validate)."""
    spans, relations = [], []
    for item in result:
        if item.get("type") == "relation":
            labels = item.get("labels") or []
            relations.append(Relation(str(item.get("from_id")), str(item.get("to_id")), labels[0] if labels else ""))
        elif item.get("type") == "labels":
            v = item.get("value") or {}
            labels = v.get("labels") or []
            spans.append(
                Span(
                    str(item.get("id")),
                    int(v.get("start", -1)),
                    int(v.get("end", -1)),
                    labels[0] if labels else "",
                    str(v.get("text", "")),
                    item.get("score"),
                )
            )
    spans.sort(key=lambda s: (s.start, s.end))
    return AnnotatedDoc(doc_id, text, tuple(spans), tuple(relations), source)


def load_gold(path: str | Path) -> list[AnnotatedDoc]:
    """Documents of a Label Studio export, each with its latest completed annotation."""
    path = Path(path)
    docs = []
    for task in load_export_tasks(path):
        problems = shape_problems(task)
        if problems:
            where, field_, message = problems[0]
            more = f" (and {len(problems) - 1} more problems; planie validate lists them)" if len(problems) > 1 else ""
            raise ExportError(f"{path}: task {task.get('id')}: {where} {field_}: {message}{more}".replace("  ", " "))
        ann = pick_annotation(task)
        doc_id = str(task["data"].get("doc_id") or f"{path.stem}#{task.get('id')}")
        result = ann.get("result", []) if ann else []
        doc = doc_from_result(doc_id, task["data"]["text"], result, str(task["data"].get("source", "")))
        if isinstance(task["data"].get("meta"), dict):  # province, place, title, year (scripts/pool_meta.py)
            doc.meta.update(task["data"]["meta"])
        if task["data"].get("regions") is not None:  # a file built from paragraph tasks: only these are annotated
            doc.meta["regions"] = [(int(a), int(b)) for a, b in task["data"]["regions"]]
        docs.append(doc)
    return docs


def load_gold_dir(paths: list[str | Path]) -> list[AnnotatedDoc]:
    return [doc for f in json_files(paths) for doc in load_gold(f)]
