"""Inline markup ([[text|LABEL|id|rel:id]]) to and from annotation records."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.core.annotations import AnnotatedDoc, Relation, Span
from pipeline.core.errors import InputError

_MARK = re.compile(r"\[\[([^\[\]|]+)\|([A-Z]+)(?:\|([^\[\]|]*))?(?:\|([^\[\]|]*))?\]\]")


class MarkupError(InputError):
    pass


@dataclass(frozen=True)
class _Mark:
    span: Span
    relations: tuple[tuple[str, str], ...]  # (label, tail id)


def parse_markup(markup: str, doc_id: str, source: str = "") -> AnnotatedDoc:
    text_parts: list[str] = []
    marks: list[_Mark] = []
    pos = 0
    out_len = 0
    auto = 0
    for m in _MARK.finditer(markup):
        plain = markup[pos : m.start()]
        text_parts.append(plain)
        out_len += len(plain)
        body, label, sid, rels = m.group(1), m.group(2), m.group(3), m.group(4)
        if not sid:
            auto += 1
            sid = f"auto{auto}"
        relations = []
        for chunk in filter(None, (rels or "").split(";")):
            if ":" not in chunk:
                raise MarkupError(f"line {_line_of(markup, m.start())}: relation part {chunk!r} needs 'label:id,id'")
            rel_label, tails = chunk.split(":", 1)
            relations.extend((rel_label.strip(), t.strip()) for t in tails.split(",") if t.strip())
        marks.append(_Mark(Span(sid, out_len, out_len + len(body), label, body), tuple(relations)))
        text_parts.append(body)
        out_len += len(body)
        pos = m.end()
    text_parts.append(markup[pos:])
    text = "".join(text_parts)
    leftover = re.search(r"\[\[|\]\]", text)
    if leftover:
        near = text[max(0, leftover.start() - 10) : leftover.start() + 20]
        raise MarkupError(f"line {_line_of(text, leftover.start())}: malformed markup near {near!r}")
    ids = [mk.span.id for mk in marks]
    dup = {i for i in ids if ids.count(i) > 1}
    if dup:
        raise MarkupError(f"duplicate span ids: {sorted(dup)}")
    relations = tuple(Relation(mk.span.id, tail, label) for mk in marks for label, tail in mk.relations)
    return AnnotatedDoc(doc_id, text, tuple(mk.span for mk in marks), relations, source)


def _line_of(s: str, index: int) -> int:
    return s.count("\n", 0, index) + 1


def render_markup(doc: AnnotatedDoc) -> str:
    """The inverse of parse_markup: every span gets its id; relations are written on the head."""
    by_head: dict[str, list[Relation]] = {}
    for r in doc.relations:
        by_head.setdefault(r.head, []).append(r)
    out, pos = [], 0
    for s in sorted(doc.spans, key=lambda s: s.start):
        out.append(doc.text[pos : s.start])
        rels = by_head.get(s.id, [])
        grouped: dict[str, list[str]] = {}
        for r in rels:
            grouped.setdefault(r.label, []).append(r.tail)
        rel_part = ";".join(f"{lab}:{','.join(tails)}" for lab, tails in grouped.items())
        out.append(f"[[{doc.text[s.start : s.end]}|{s.label}|{s.id}" + (f"|{rel_part}" if rel_part else "") + "]]")
        pos = s.end
    out.append(doc.text[pos:])
    return "".join(out)
