"""The rules linker, relation candidate windows and deadline inheritance."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.core.annotations import AnnotatedDoc, Relation, Span
from pipeline.core.documents import (
    SentenceIndex,
    TaskItem,
    is_assignment_line,
    is_heading,
    paragraphs,
    task_items,
    to_simplified,
)
from pipeline.core.schema import load_schema

ASSIGNMENT_PAREN = re.compile(r"[（(][^（）()\r\n]*(?:牵头|负责|配合|分工|参与)[^（）()\r\n]*[）)]")


ASSIGNMENT_CLAUSE = re.compile(
    r"(?:责任单位|牵头单位|配合单位)[:：][^\r\n]*|由[^。；\r\n]{2,120}?(?:牵头|负责)"
    r"|(?:^|(?<=[，,。；;：:\s]))[^，,。；;：:\s]{2,40}?(?:牵头|负责)(?!人)"
)


def heading_starts(text: str) -> list[int]:
    return [p.start for p in paragraphs(text) if is_heading(p.text)]


def deadline_scope(deadline: Span, spans: Sequence[Span], headings: Sequence[int]) -> tuple[int, int]:
    """From the deadline to the next DEADLINE or the next heading line, whichever comes first."""
    end = min(
        [s.start for s in spans if s.label == "DEADLINE" and s.start > deadline.start]
        + [h for h in headings if h > deadline.start]
        + [10**12]
    )
    return deadline.end, end


def link_values(spans: Sequence[Span], index: SentenceIndex) -> list[Relation]:
    """value_of: each VALUE to the INDICATORs between the previous VALUE and it, in its sentence;
    ``A、B分别达到x、y`` pairs in order; a VALUE with none before it takes the next INDICATOR."""
    rels: list[Relation] = []
    by_sentence: dict[int, list[Span]] = {}
    for s in spans:
        if s.label in ("VALUE", "INDICATOR"):
            by_sentence.setdefault(index.of(s.start), []).append(s)
    for group in by_sentence.values():
        pending: list[Span] = []
        values_run: list[Span] = []
        for s in group + [Span("", 10**12, 10**12, "INDICATOR", "")]:
            if s.label == "VALUE":
                values_run.append(s)
                continue
            if values_run:
                rels += _pair(pending, values_run)
                pending = []
                values_run = []
            if s.id:
                pending.append(s)
        # a VALUE before any INDICATOR (培育200个以上示范单位): link to the following INDICATOR
        linked = {r.head for r in rels}
        for i, s in enumerate(group):
            if s.label == "VALUE" and s.id not in linked and i + 1 < len(group) and group[i + 1].label == "INDICATOR":
                rels.append(Relation(s.id, group[i + 1].id, "value_of"))
    return rels


def _pair(indicators: list[Span], values: list[Span]) -> list[Relation]:
    if not indicators:
        return []
    if len(values) > 1 and len(indicators) == len(values):
        return [Relation(v.id, i.id, "value_of") for i, v in zip(indicators, values, strict=True)]
    if len(values) == 1:
        return [Relation(values[0].id, i.id, "value_of") for i in indicators]
    return [Relation(v.id, indicators[-1].id, "value_of") for v in values]


def link_deadlines(text: str, spans: Sequence[Span], index: SentenceIndex, inherit: bool = True) -> list[Relation]:
    """deadline_of by the schema's scope rule. With ``inherit=False`` only VALUEs in the deadline's
    own sentence are linked (no inheritance from a heading or an earlier sentence)."""
    headings = heading_starts(text)
    rels: list[Relation] = []
    for d in (s for s in spans if s.label == "DEADLINE"):
        lo, hi = deadline_scope(d, spans, headings)
        sent = index.of(d.start)
        in_scope = [s for s in spans if lo <= s.start < hi]
        values = [s for s in in_scope if s.label == "VALUE" and (inherit or index.of(s.start) == sent)]
        if values:
            rels += [Relation(d.id, v.id, "deadline_of") for v in values]
        elif not any(s.label == "VALUE" for s in in_scope):
            rels += [
                Relation(d.id, a.id, "deadline_of")
                for a in in_scope
                if a.label == "ACTION" and index.of(a.start) == sent
            ]
    return rels


def assignment_regions(text: str, item: TaskItem) -> list[tuple[int, int]]:
    regions = []
    for para in item.paragraphs:
        if para is not item.paragraphs[0] and is_assignment_line(para.text):
            regions.append((para.start, para.end))
            continue
        for pattern in (ASSIGNMENT_PAREN, ASSIGNMENT_CLAUSE):
            regions += [(m.start(), m.end()) for m in pattern.finditer(text, para.start, para.end)]
    return regions


_BETWEEN_AGENCIES = re.compile(r"[\s、，,；;/和及与]*")


def agency_cells(item: TaskItem, spans: Sequence[Span]) -> list[tuple[int, int]]:
    """The cells of a task-table row that hold only AGENCY spans (the responsibility columns)."""
    cells = []
    for cell in item.paragraphs[1:]:  # the first is the row number
        agencies = [s for s in spans if s.label == "AGENCY" and cell.start <= s.start and s.end <= cell.end]
        rest, at = [], cell.start
        for a in sorted(agencies, key=lambda s: s.start):
            rest.append(cell.text[at - cell.start : a.start - cell.start])
            at = max(at, a.end)
        rest.append(cell.text[at - cell.start :])
        if agencies and _BETWEEN_AGENCIES.fullmatch("".join(rest)):
            cells.append((cell.start, cell.end))
    return cells


def link_responsibility(text: str, spans: Sequence[Span]) -> list[Relation]:
    """responsible_for: agencies named in an explicit assignment (or in the responsibility cells of a
    task-table row) -> the item's first ACTION."""
    rels: list[Relation] = []
    for item in task_items(text):
        inside = [s for s in spans if item.start <= s.start < item.end]
        regions = agency_cells(item, inside) if item.table_row else assignment_regions(text, item)
        if not regions:
            continue
        assigned = {s.id for s in inside if any(a <= s.start and s.end <= b for a, b in regions)}
        actions = [s for s in inside if s.label == "ACTION" and s.id not in assigned]
        if actions:
            agencies = [s for s in inside if s.label == "AGENCY" and s.id in assigned]
            rels += [Relation(a.id, actions[0].id, "responsible_for") for a in agencies]
    return rels


def link_rules(text: str, spans: Sequence[Span], inherit: bool = True) -> list[Relation]:
    """The rules linker: nearest-span value_of, scope-based deadline_of, assignment-based responsible_for."""
    text = to_simplified(text)  # same length: offsets are unchanged, the patterns are written in simplified
    spans = sorted(spans, key=lambda s: s.start)
    index = SentenceIndex(text)
    return link_values(spans, index) + link_deadlines(text, spans, index, inherit) + link_responsibility(text, spans)


# label -> (head label, tail labels), in schema order; every relation of the schema has one head type
RELATION_TYPES: dict[str, tuple[str, tuple[str, ...]]] = {r.label: (r.head[0], r.tail) for r in load_schema().relations}


@dataclass(frozen=True)
class Candidate:
    """A (head, tail) pair a relation may hold between; ``label`` is the only relation type allowed."""

    head: Span
    tail: Span
    label: str
    window: tuple[int, int]  # the schema window the pair was found in (character offsets)


def _value_candidates(spans: Sequence[Span], index: SentenceIndex) -> list[Candidate]:
    """value_of: VALUE and INDICATOR in the same sentence."""
    by_sentence: dict[int, list[Span]] = {}
    for s in spans:
        if s.label in ("VALUE", "INDICATOR"):
            by_sentence.setdefault(index.of(s.start), []).append(s)
    out: list[Candidate] = []
    for i, group in by_sentence.items():
        window = _sentence_window(index, i, group)
        out += [
            Candidate(v, t, "value_of", window)
            for v in group
            if v.label == "VALUE"
            for t in group
            if t.label == "INDICATOR"
        ]
    return out


def _sentence_window(index: SentenceIndex, i: int, group: Sequence[Span]) -> tuple[int, int]:
    if i >= 0:
        return index.sentences[i].start, index.sentences[i].end
    return min(s.start for s in group), max(s.end for s in group)


def _deadline_candidates(
    spans: Sequence[Span], index: SentenceIndex, headings: Sequence[int], inherit: bool
) -> list[Candidate]:
    """deadline_of: VALUEs and ACTIONs in the deadline's own sentence; with ``inherit`` also the
    VALUEs in the rest of its scope (to the next DEADLINE or heading line)."""
    out: list[Candidate] = []
    for d in (s for s in spans if s.label == "DEADLINE"):
        lo, hi = deadline_scope(d, spans, headings)
        sent = index.of(d.start)
        window = _sentence_window(index, sent, [d])
        for s in spans:
            same = index.of(s.start) == sent
            if s.label == "VALUE" and (same or (inherit and lo <= s.start < hi)):
                out.append(Candidate(d, s, "deadline_of", window if same else (min(d.start, s.start), hi)))
            elif s.label == "ACTION" and same:
                out.append(Candidate(d, s, "deadline_of", window))
    return out


def _responsibility_candidates(text: str, spans: Sequence[Span]) -> list[Candidate]:
    """responsible_for: AGENCY and ACTION in the same task item (paragraph + assignment lines)."""
    out: list[Candidate] = []
    for item in task_items(text):
        inside = [s for s in spans if item.start <= s.start < item.end]
        out += [
            Candidate(a, x, "responsible_for", (item.start, item.end))
            for a in inside
            if a.label == "AGENCY"
            for x in inside
            if x.label == "ACTION"
        ]
    return out


def candidate_pairs(text: str, spans: Sequence[Span], inherit: bool = False) -> list[Candidate]:
    """All schema-allowed (head, tail) pairs inside their window: value_of within a sentence,
    deadline_of within the deadline's sentence (``inherit``: its whole scope, see deadline_scope),
    responsible_for within a task item. The learned linkers score the pairs without ``inherit``;
    deadlines reach later sentences through the separate rule step ``inherit_deadlines``."""
    text = to_simplified(text)
    spans = sorted(spans, key=lambda s: (s.start, s.end))
    index = SentenceIndex(text)
    headings = heading_starts(text)
    return (
        _value_candidates(spans, index)
        + _deadline_candidates(spans, index, headings, inherit)
        + _responsibility_candidates(text, spans)
    )


def candidate_recall(docs: Sequence[AnnotatedDoc], inherit: bool = False) -> dict[str, dict[str, int | float]]:
    """Per relation label (and micro): gold relations, how many are candidates, the share, and the
    number of candidates (the classifier's workload) — on gold entities."""
    stats = {lab: {"gold": 0, "covered": 0, "candidates": 0} for lab in (*RELATION_TYPES, "micro")}
    for doc in docs:
        by_id = doc.span_by_id()
        cands = {(c.head.id, c.tail.id, c.label) for c in candidate_pairs(doc.text, doc.spans, inherit)}
        for lab in RELATION_TYPES:
            n = sum(1 for c in cands if c[2] == lab)
            stats[lab]["candidates"] += n
            stats["micro"]["candidates"] += n
        for r in doc.relations:
            if r.head in by_id and r.tail in by_id and r.label in RELATION_TYPES:
                hit = int((r.head, r.tail, r.label) in cands)
                for key in (r.label, "micro"):
                    stats[key]["gold"] += 1
                    stats[key]["covered"] += hit
    for row in stats.values():
        row["recall"] = round(row["covered"] / row["gold"], 4) if row["gold"] else 0.0
    return stats


def inherit_deadlines(text: str, spans: Sequence[Span], relations: Sequence[Relation]) -> list[Relation]:
    """The inheritance rule step, applied after any linker: a VALUE without a deadline_of gets the
    DEADLINE whose scope it lies in (the nearest DEADLINE before it, up to the next DEADLINE or
    heading line; a deadline in a heading such as 到2015年，具体目标： covers the targets under it)."""
    text = to_simplified(text)
    spans = sorted(spans, key=lambda s: s.start)
    headings = heading_starts(text)
    has_deadline = {r.tail for r in relations if r.label == "deadline_of"}
    out = list(relations)
    deadlines = [d for d in spans if d.label == "DEADLINE"]
    for v in spans:
        if v.label != "VALUE" or v.id in has_deadline:
            continue
        before = [d for d in deadlines if d.start < v.start]
        if before:
            lo, hi = deadline_scope(before[-1], spans, headings)
            if lo <= v.start < hi:
                out.append(Relation(before[-1].id, v.id, "deadline_of"))
    return out
