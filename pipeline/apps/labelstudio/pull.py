"""Pull: annotated tasks back to gold export files (paragraph tasks mapped to file offsets)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.apps.labelstudio.client import LabelStudioClient, LabelStudioError
from pipeline.core.annotations import (
    AnnotatedDoc,
    doc_from_result,
    load_export_tasks,
    load_gold,
    pick_annotation,
    result_items,
    write_export,
)
from pipeline.core.documents import (
    DocumentError,
    first_difference,
    read_document,
)
from pipeline.core.schema import Schema


@dataclass
class PullReport:
    written: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.conflicts and not self.problems

    def summary(self) -> str:
        lines = [f"{len(self.written)} file(s) written, {len(self.unchanged)} unchanged"]
        lines += [f"  wrote {p}" for p in self.written]
        lines += [f"note: {n}" for n in self.notes]
        lines += [f"conflict: {c}" for c in self.conflicts]
        lines += [f"problem: {p}" for p in self.problems]
        return "\n".join(lines)


def _squash(s: str) -> str:
    return re.sub(r"\s+", "", s)


def _trusted_offsets(text: str, result: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Result items whose value.text differs from the slice only in white space get the slice
    (Label Studio's offsets are exact, its text may be normalised); real mismatches are kept for
    the validator to report."""
    fixed = []
    for item in result:
        v = item.get("value")
        if item.get("type") == "labels" and isinstance(v, dict):
            s, e = v.get("start"), v.get("end")
            if isinstance(s, int) and isinstance(e, int) and 0 <= s < e <= len(text):
                piece = text[s:e]
                if v.get("text") != piece and _squash(str(v.get("text", ""))) == _squash(piece):
                    item = {**item, "value": {**v, "text": piece}}
        fixed.append(item)
    return fixed


def _shift(result: list[dict[str, Any]], offset: int, rename: Callable[[str], str]) -> list[dict[str, Any]]:
    out = []
    for item in result:
        item = dict(item)
        if item.get("type") == "labels":
            v = dict(item.get("value") or {})
            if isinstance(v.get("start"), int) and isinstance(v.get("end"), int):
                v["start"] += offset
                v["end"] += offset
            item["value"] = v
            item["id"] = rename(str(item.get("id")))
        elif item.get("type") == "relation":
            item["from_id"] = rename(str(item.get("from_id")))
            item["to_id"] = rename(str(item.get("to_id")))
        out.append(item)
    return out


def _same_annotation(a: AnnotatedDoc, b: AnnotatedDoc) -> bool:
    def spans(d: AnnotatedDoc) -> list[tuple]:
        return sorted((s.id, s.start, s.end, s.label, s.text) for s in d.spans)

    def rels(d: AnnotatedDoc) -> list[tuple]:
        return sorted((r.head, r.tail, r.label) for r in d.relations)

    return a.text == b.text and spans(a) == spans(b) and rels(a) == rels(b)


def _extends(old: AnnotatedDoc, old_regions: Any, new: AnnotatedDoc) -> bool:
    """A paragraph-built file that the new pull only adds to: more regions, and every old span and
    relation still there (compared by position and label, since ids may be renamed on a clash)."""
    new_regions = new.meta.get("regions")
    if not old_regions or not new_regions or old.text != new.text:
        return False
    if not {tuple(r) for r in old_regions} <= {tuple(r) for r in new_regions}:
        return False

    def keyed(d: AnnotatedDoc) -> tuple[set[tuple], set[tuple]]:
        pos = {s.id: (s.start, s.end, s.label, s.text) for s in d.spans}
        return set(pos.values()), {(pos.get(r.head), pos.get(r.tail), r.label) for r in d.relations}

    (old_spans, old_rels), (new_spans, new_rels) = keyed(old), keyed(new)
    return old_spans <= new_spans and old_rels <= new_rels


def _safe_name(name: str) -> str:
    return re.sub(r"[^\w.@+-]+", "_", name).strip("._") or "annotator"


def build_pulled_docs(
    tasks: Sequence[dict[str, Any]],
    documents: dict[str, Path],
    all_annotators: bool = False,
    annotator_names: dict[int, str] | None = None,
) -> tuple[dict[tuple[str, str], tuple[AnnotatedDoc, str]], list[str], list[str]]:
    """Group exported tasks into documents: {(annotator, doc_id): (doc, where)}, problems, notes.

    ``annotator`` is "" unless ``all_annotators``. Paragraph tasks are mapped back to file offsets
    through the source document (``documents`` by doc_id, else ``data.source``)."""
    problems: list[str] = []
    notes: list[str] = []
    groups: dict[tuple[str, str], list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    for task in tasks:
        data = task.get("data") or {}
        if not isinstance(data.get("text"), str):
            problems.append(f"task {task.get('id')}: no data.text")
            continue
        if all_annotators:
            latest: dict[Any, dict[str, Any]] = {}
            for ann in task.get("annotations") or []:
                if ann.get("was_cancelled"):
                    continue
                who = ann.get("completed_by")
                who = who.get("id") if isinstance(who, dict) else who
                if who not in latest or pick_annotation({"annotations": [latest[who], ann]}) is ann:
                    latest[who] = ann
            chosen = [((annotator_names or {}).get(who, str(who)), ann) for who, ann in latest.items()]
        else:
            ann = pick_annotation(task)
            chosen = [("", ann)] if ann else []
        for who, ann in chosen:
            groups.setdefault(
                (_safe_name(who) if who else "", str(data.get("doc_id") or f"task{task.get('id')}")), []
            ).append((task, ann))

    docs: dict[tuple[str, str], tuple[AnnotatedDoc, str]] = {}
    texts: dict[str, str] = {}
    for (who, doc_id), items in sorted(groups.items()):
        whole = [(t, a) for t, a in items if (t["data"].get("offset") is None)]
        parts = [(t, a) for t, a in items if (t["data"].get("offset") is not None)]
        where = ", ".join(f"task {t.get('id')} annotation {a.get('id')}" for t, a in items)
        if whole:
            task, ann = max(whole, key=lambda ta: (str(ta[1].get("updated_at") or ""), ta[1].get("id") or 0))
            if len(whole) > 1 or parts:
                notes.append(f"{doc_id}: {len(items)} annotated tasks; kept the whole-document task {task.get('id')}")
            text = task["data"]["text"]
            result = _trusted_offsets(text, ann.get("result") or [])
            doc = doc_from_result(doc_id, text, result, str(task["data"].get("source", "")))
            docs[(who, doc_id)] = (doc, f"task {task.get('id')} annotation {ann.get('id')}")
            continue
        if doc_id not in texts:
            source = documents.get(doc_id) or Path(str(parts[0][0]["data"].get("source") or ""))
            try:
                if not source or not Path(source).is_file():
                    raise DocumentError(f"source document of {doc_id} not found")
                texts[doc_id] = read_document(source).text
            except DocumentError as exc:
                problems.append(
                    f"{doc_id} ({where}): paragraph tasks need the source document to map offsets back: {exc}; "
                    f"pass --docs FOLDER"
                )
                continue
        text = texts[doc_id]
        merged: list[dict[str, Any]] = []
        regions = []
        seen: set[str] = set()
        bad = False
        for task, ann in sorted(parts, key=lambda ta: int(ta[0]["data"]["offset"])):
            offset, ptext = int(task["data"]["offset"]), task["data"]["text"]
            if text[offset : offset + len(ptext)] != ptext:
                problems.append(
                    f"{doc_id}: task {task.get('id')}: the paragraph at offset {offset} no longer matches the "
                    f"source document (it changed since the push)"
                )
                bad = True
                continue
            result = _trusted_offsets(ptext, ann.get("result") or [])
            ids = {str(i.get("id")) for i in result if i.get("type") == "labels"}
            clash = bool(ids & seen)
            seen |= {f"{i}_p{offset}" if clash else i for i in ids}
            merged += _shift(result, offset, (lambda i, o=offset: f"{i}_p{o}") if clash else (lambda i: i))
            regions.append([offset, offset + len(ptext)])
        if bad:  # a document is written whole or not at all
            continue
        doc = doc_from_result(doc_id, text, merged, str(parts[0][0]["data"].get("source", "")))
        doc = AnnotatedDoc(doc.doc_id, doc.text, doc.spans, doc.relations, doc.source, {"regions": regions})
        docs[(who, doc_id)] = (doc, where)
    return docs, problems, notes


def _check(doc: AnnotatedDoc, target: Path, where: str, schema: Schema, documents: dict[str, Path]) -> list[str]:
    """Problems of one pulled document: the schema's checks, and its text against the source file."""
    from pipeline.core.validate import validate_result

    found = validate_result(doc.text, result_items(doc), schema, (str(target), f"{doc.doc_id} ({where})", None))
    if found:
        return [str(p) for p in found]
    if doc.doc_id in documents and not doc.meta.get("regions"):
        try:
            original = read_document(documents[doc.doc_id]).text
        except DocumentError as exc:
            return [str(exc)]
        if original != doc.text:
            at = first_difference(original, doc.text)
            return [f"{doc.doc_id} ({where}): the task text differs from {documents[doc.doc_id]} at character {at}"]
    return []


def fetch_validated(
    client: LabelStudioClient,
    project_id: int,
    out_dir: Path,
    schema: Schema,
    documents: dict[str, Path] | None = None,
    all_annotators: bool = False,
) -> tuple[list[tuple[Path, AnnotatedDoc]], PullReport]:
    """The project's finished annotations as (target file in ``out_dir``, document) pairs that pass
    validation; the others are the report's problems. Nothing is written."""
    documents = documents or {}
    tasks = client.export(project_id)
    names = client.users() if all_annotators else None
    docs, problems, notes = build_pulled_docs(tasks, documents, all_annotators, names)
    report = PullReport(problems=list(problems), notes=list(notes))
    checked = []
    for (who, doc_id), (doc, where) in docs.items():
        target = (out_dir / who / f"{doc_id}.json") if who else out_dir / f"{doc_id}.json"
        found = _check(doc, target, where, schema, documents)
        report.problems += found
        if not found:
            checked.append((target, doc))
    if not tasks:
        report.notes.append(f"project {project_id} has no finished annotations yet")
    return checked, report


def pull(
    client: LabelStudioClient,
    title: str,
    out_dir: str | Path,
    schema: Schema,
    documents: dict[str, Path] | None = None,
    all_annotators: bool = False,
    force: bool = False,
) -> PullReport:
    """Export the project's finished annotations (latest per task, or per annotator), map paragraph
    tasks back to file offsets, validate, and write one export file per document atomically.

    Everything is fetched and checked before the first file is written. An existing file with a
    different annotation is a conflict (left alone) unless ``force``."""
    project = client.find_project(title)
    if project is None:
        raise LabelStudioError(f"no project named {title!r} at {client.url}")
    checked, report = fetch_validated(client, project["id"], Path(out_dir), schema, documents, all_annotators)
    plan: list[tuple[Path, AnnotatedDoc]] = []
    for target, doc in checked:
        if target.exists():
            try:
                old = load_gold(target)
                old_regions = load_export_tasks(target)[0]["data"].get("regions")
            except ValueError as exc:
                old, old_regions, reason = [], None, str(exc)
            else:
                reason = "a different annotation"
            if len(old) == 1 and _same_annotation(old[0], doc):
                report.unchanged.append(target)
                continue
            if len(old) == 1 and _extends(old[0], old_regions, doc):
                report.notes.append(f"{target}: more paragraphs annotated, file extended")
            elif not force:
                report.conflicts.append(f"{target} exists with {reason}: not overwritten (use --force)")
                continue
        plan.append((target, doc))
    for target, doc in plan:
        write_export(target, [doc])
        report.written.append(target)
    return report
