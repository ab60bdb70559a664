"""Entity-replacement augmentation with a gazetteer of administrative divisions: copies of the
training documents in which every province, prefecture and county name is replaced, consistently
within a document, by another division of the same level, so that the bodies of places outside the
gold (自治区, 自治州, other cities and counties) are seen in training.

The gazetteer is the ``adcodes.csv`` bundled with the ``cpca`` package (read directly: ``import cpca``
needs pandas and pkg_resources and is not needed for the names)."""

from __future__ import annotations

import csv
import importlib.util
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path

from pipeline.core.annotations import AnnotatedDoc, Span
from pipeline.core.errors import SetupError

LEVELS = ("province", "prefecture", "county")
OUTSIDE_MAINLAND = ("71", "81", "82")  # Taiwan, Hong Kong, Macao: not in the genre's documents
MIN_NAME_CHARS = 3  # two-character names (城区, 郊区, 矿区) are ordinary words too


@dataclass(frozen=True, eq=False)
class Gazetteer:
    names: dict[str, tuple[str, ...]]  # level → names

    @cached_property
    def level_of(self) -> dict[str, str]:
        return {name: level for level, names in self.names.items() for name in names}

    @cached_property
    def pattern(self) -> re.Pattern[str]:
        longest_first = sorted(self.level_of, key=len, reverse=True)  # 内蒙古自治区 before a shorter name inside it
        return re.compile("|".join(map(re.escape, longest_first)))


def _division_level(adcode: str) -> str | None:
    if adcode[:2] in OUTSIDE_MAINLAND:
        return None
    if adcode[2:6] == "0000":
        return "province"
    if adcode[4:6] == "00":
        return "prefecture"
    return "county"


def gazetteer_path() -> Path:
    spec = importlib.util.find_spec("cpca")
    if spec is None or spec.origin is None:
        raise SetupError("augment_places needs the gazetteer package cpca: pip install -e '.[ml]'")
    return Path(spec.origin).parent / "resources" / "adcodes.csv"


@cache
def load_gazetteer(path: Path | None = None) -> Gazetteer:
    """Mainland divisions by level; placeholders (市辖区, 县) and short names are left out."""
    by_level: dict[str, set[str]] = {level: set() for level in LEVELS}
    with open(path or gazetteer_path(), encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            level = _division_level(row["adcode"])
            name = row["name"].strip()
            if level and len(name) >= MIN_NAME_CHARS and name not in ("市辖区", "省直辖县级行政区划"):
                by_level[level].add(name)
    return Gazetteer({level: tuple(sorted(names)) for level, names in by_level.items()})


def _crosses_a_span(start: int, end: int, spans: Sequence[Span]) -> bool:
    return any(s.start < end and start < s.end and not (s.start <= start and end <= s.end) for s in spans)


def replace_places(doc: AnnotatedDoc, gazetteer: Gazetteer, rng: random.Random) -> tuple[AnnotatedDoc, int]:
    """A copy of ``doc`` with the division names inside its training region replaced (one new name per
    old name), spans and region moved with the text, and the number of names replaced inside AGENCY
    spans (their new offsets in ``meta["replaced_in_agency"]``). A name that crosses a span boundary
    is left alone."""
    lo, hi = doc.meta.get("region", (0, len(doc.text)))
    level_of = gazetteer.level_of
    chosen: dict[str, str] = {}
    edits: list[tuple[int, int, str]] = []
    for m in gazetteer.pattern.finditer(doc.text, lo, hi):
        if _crosses_a_span(m.start(), m.end(), doc.spans):
            continue
        old = m.group()
        if old not in chosen:
            options = gazetteer.names[level_of[old]]
            chosen[old] = rng.choice([n for n in options if n != old] or [old])
        edits.append((m.start(), m.end(), chosen[old]))
    if not edits:
        return doc, 0

    def moved(pos: int) -> int:
        return pos + sum(len(new) - (end - start) for start, end, new in edits if end <= pos)

    parts, last = [], 0
    for start, end, new in edits:
        parts += [doc.text[last:start], new]
        last = end
    text = "".join([*parts, doc.text[last:]])
    spans = tuple(
        Span(s.id, moved(s.start), moved(s.end), s.label, text[moved(s.start) : moved(s.end)], s.score)
        for s in doc.spans
    )
    in_agency = [
        (moved(start), moved(start) + len(new))
        for start, end, new in edits
        if any(s.label == "AGENCY" and s.start <= start and end <= s.end for s in doc.spans)
    ]
    meta = {**doc.meta, "region": (moved(lo), moved(hi)), "replaced_in_agency": in_agency}
    if "regions" in meta:
        meta["regions"] = [(moved(a), moved(b)) for a, b in meta["regions"]]
    return AnnotatedDoc(doc.doc_id, text, spans, doc.relations, doc.source, meta), len(in_agency)


def augment_places(docs: Sequence[AnnotatedDoc], copies: int, seed: int) -> list[AnnotatedDoc]:
    """``copies`` place-replaced copies of every document that names a division inside an AGENCY span."""
    gazetteer = load_gazetteer()
    rng = random.Random(seed)
    out = []
    for doc in docs:
        for _ in range(copies):
            copy, agency_edits = replace_places(doc, gazetteer, rng)
            if agency_edits:
                out.append(copy)
    return out
