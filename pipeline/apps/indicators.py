"""Indicator grouping: targets across documents that measure the same indicator.

Targets are grouped by a normalised indicator name. The string rules only remove *form*, never
*meaning*:

1. traditional → simplified (``pipeline.core.documents.to_simplified``), then Unicode NFKC, which
   unifies full- and half-width forms (（ → (, ％ → %, full-width digits, letters and spaces);
2. bracketed notes and their content are removed, nested ones too: ``（抽检）``, ``(含一级)``,
   ``【…】``, ``〔…〕``, ``[…]``; an opening bracket never closed cuts the rest of the name;
3. quote marks (“”‘’「」『』《》"') and all whitespace are removed, and punctuation at either end;
4. leading words that only restate the *geographic scope of the issuing government* are removed,
   repeatedly: 全省/全市/全区/全县/全州, 我省/我市/我区/我县, 本省/本市/本区, and the discourse
   marker 其中. The document (province, city) is already a column of every row, so these never
   change what is measured. 全国 is kept: in a provincial plan it names a national-level thing
   (全国质量奖, 全国知名品牌示范区), not the issuer's scope.

Deliberately *not* stripped by the string rules, because they change the population measured:
主要/重点 (主要农产品 is a monitored list; 重点工业企业 is a defined set of enterprises),
省级/国家级/市级 (a provincial demonstration unit is not a national one), sector words (制造业,
工业, 服务业) and method words outside brackets (抽检, 监督抽查). Such near-synonyms are merged only
by the optional embedding step.

Example: 制造业产品质量合格率 and 制造业产品质量合格率（抽检） get the same key (the bracket is a
note on the method) and 全省制造业产品质量合格率 joins them too; 产品质量合格率 (all products, not
manufacturing) stays a group of its own unless an embedding puts it at cosine ≥ threshold.

Embedding merge: with ``embed`` given, each group key is embedded once; groups are visited from the
largest (most documents, then most rows) down, and each joins the most similar earlier *leader*
group if the cosine is ≥ ``threshold``, otherwise it becomes a leader itself. Comparing with leaders
only (not with every member) prevents chains A~B~C from merging A and C that are not similar.

The rows live in SQLite (``IndicatorStore``): on disk for a batch run, so memory does not grow with
the number of documents; ``group_indicators`` is the same in memory for a list of records.
"""

from __future__ import annotations

import re
import sqlite3
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from pipeline.core.documents import to_simplified
from pipeline.core.tables import SafeCsv

if TYPE_CHECKING:
    import numpy as np

Record = dict[str, Any]


Embed = Callable[[list[str]], "np.ndarray"]


SCOPE_PREFIXES = (
    "全省",
    "全市",
    "全区",
    "全县",
    "全州",
    "我省",
    "我市",
    "我区",
    "我县",
    "本省",
    "本市",
    "本区",
    "其中",
)


_BRACKET_PAIRS = {"(": ")", "[": "]", "【": "】", "〔": "〕", "〈": "〉", "<": ">", "{": "}"}


_BRACKETED = re.compile(
    "|".join(re.escape(o) + f"[^{re.escape(o + c)}]*" + re.escape(c) for o, c in _BRACKET_PAIRS.items())
)


_OPENING = re.compile("[" + re.escape("".join(_BRACKET_PAIRS)) + "].*$")


_CLOSING = re.compile("[" + re.escape("".join(_BRACKET_PAIRS.values())) + "]")


_QUOTES_SPACE = re.compile(r"[“”‘’「」『』《》\"'\s]+")


_EDGE_PUNCT = ",.;:!?、。·-_/|~"


@dataclass(frozen=True)
class IndicatorRow:
    """One target of one document, as shown in the comparison."""

    doc_id: str
    indicator: str
    value: str
    deadline: str | None
    sentence: str
    target_index: int


class GroupLike(Protocol):
    """What the views need of a group (an IndicatorGroup in memory or a StoredGroup in SQLite)."""

    key: str

    @property
    def names(self) -> tuple[str, ...]: ...

    @property
    def n_documents(self) -> int: ...

    @property
    def n_rows(self) -> int: ...

    def iter_rows(self) -> Iterator[IndicatorRow]: ...


@dataclass(frozen=True)
class IndicatorGroup:
    """Targets across documents that measure the same indicator."""

    key: str
    names: tuple[str, ...]
    rows: tuple[IndicatorRow, ...]

    @property
    def documents(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.doc_id for r in self.rows))

    @property
    def n_documents(self) -> int:
        return len(self.documents)

    @property
    def n_rows(self) -> int:
        return len(self.rows)

    def iter_rows(self) -> Iterator[IndicatorRow]:
        return iter(self.rows)


def normalise_indicator(name: str) -> str:
    """The grouping key of an indicator name (rules in the module docstring)."""
    base = unicodedata.normalize("NFKC", to_simplified(name))
    text = base
    while (stripped := _BRACKETED.sub("", text)) != text:
        text = stripped
    text = _CLOSING.sub("", _OPENING.sub("", text))
    text = _QUOTES_SPACE.sub("", text).strip(_EDGE_PUNCT)
    text = _strip_scope(text)
    return text or _QUOTES_SPACE.sub("", base).strip(_EDGE_PUNCT)


def _strip_scope(text: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in SCOPE_PREFIXES:
            if text.startswith(prefix) and len(text) > len(prefix):
                text, changed = text[len(prefix) :].lstrip(_EDGE_PUNCT), True
    return text


def record_rows(record: Record) -> Iterator[IndicatorRow]:
    """The targets of one record that name an indicator."""
    for i, t in enumerate(record.get("targets") or []):
        if str(t.get("indicator") or "").strip():
            yield IndicatorRow(
                str(record["doc_id"]),
                str(t["indicator"]),
                str(t.get("value") or ""),
                t.get("deadline"),
                str(t.get("sentence") or ""),
                i,
            )


_SCHEMA = """
PRAGMA journal_mode = OFF;
PRAGMA synchronous = OFF;
PRAGMA cache_size = -512;
CREATE TABLE docs(doc_id TEXT PRIMARY KEY, rank INTEGER, page TEXT);
CREATE TABLE pages(name TEXT PRIMARY KEY);
CREATE TABLE rows(key TEXT, rank INTEGER, doc_id TEXT, indicator TEXT, value TEXT, deadline TEXT, sentence TEXT,
                  target_index INTEGER);
"""
_ROW_COLUMNS = "doc_id, indicator, value, deadline, sentence, target_index"


class IndicatorStore:
    """The indicator rows and document pages of many records, in SQLite (``path``: a file or ':memory:')."""

    def __init__(self, path: str = ":memory:") -> None:
        self.db = sqlite3.connect(path)
        self.db.executescript(_SCHEMA)
        self.n_records = 0
        self._indexed = False

    def close(self) -> None:
        self.db.close()

    def page_taken(self, name: str) -> bool:
        return self.db.execute("SELECT 1 FROM pages WHERE name = ?", (name.lower(),)).fetchone() is not None

    def add(self, record: Record, page: str | None = None) -> None:
        """One record (its rank is the order of adding) and the relative path of its page."""
        doc_id = str(record["doc_id"])
        if page is not None:
            self.db.execute("INSERT INTO pages VALUES (?)", (page.lower(),))
        self.db.execute("INSERT OR IGNORE INTO docs VALUES (?, ?, ?)", (doc_id, self.n_records, page))
        (rank,) = self.db.execute("SELECT rank FROM docs WHERE doc_id = ?", (doc_id,)).fetchone()
        self.n_records += 1
        self.db.executemany(
            "INSERT INTO rows VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(normalise_indicator(r.indicator), rank, *_row_values(r)) for r in record_rows(record)],
        )

    def link(self, doc_id: str) -> str | None:
        """The page of the first record with this doc_id."""
        found = self.db.execute("SELECT page FROM docs WHERE doc_id = ?", (doc_id,)).fetchone()
        return found[0] if found else None

    def rows(self, keys: Sequence[str]) -> Iterator[IndicatorRow]:
        marks = ",".join("?" * len(keys))
        query = f"SELECT {_ROW_COLUMNS} FROM rows WHERE key IN ({marks}) ORDER BY rank, target_index, rowid"
        for doc_id, indicator, value, deadline, sentence, index in self.db.execute(query, list(keys)):
            yield IndicatorRow(doc_id, indicator, value, deadline, sentence, index)

    def _sizes(self, keys: Sequence[str]) -> tuple[int, int]:
        marks = ",".join("?" * len(keys))
        query = f"SELECT COUNT(DISTINCT doc_id), COUNT(*) FROM rows WHERE key IN ({marks})"
        n_docs, n_rows = self.db.execute(query, list(keys)).fetchone()
        return n_docs, n_rows

    def groups(self, embed: Embed | None = None, threshold: float = 0.9) -> list[StoredGroup]:
        """The groups, largest first (most documents, then most rows, then by key); with ``embed``,
        merged by embedding similarity (module docstring)."""
        if not self._indexed:
            self.db.execute("CREATE INDEX rows_key ON rows(key, rank, target_index)")
            self._indexed = True
        stats = self.db.execute("SELECT key, COUNT(DISTINCT doc_id), COUNT(*) FROM rows GROUP BY key").fetchall()
        groups = sorted((StoredGroup(self, key, (key,), nd, nr) for key, nd, nr in stats), key=_size)
        if embed is not None and len(groups) > 1:
            members = merge_by_embedding([g.key for g in groups], embed, threshold)
            groups = sorted((StoredGroup(self, keys[0], keys, *self._sizes(keys)) for keys in members), key=_size)
        return groups


def _row_values(r: IndicatorRow) -> tuple[Any, ...]:
    return (r.doc_id, r.indicator, r.value, r.deadline, r.sentence, r.target_index)


@dataclass(frozen=True)
class StoredGroup:
    """A group whose rows are read from an IndicatorStore when needed."""

    store: IndicatorStore
    key: str
    keys: tuple[str, ...]
    n_documents: int
    n_rows: int

    def iter_rows(self) -> Iterator[IndicatorRow]:
        return self.store.rows(self.keys)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.indicator for r in self.iter_rows()))


def _size(group: GroupLike) -> tuple[int, int, str]:
    return (-group.n_documents, -group.n_rows, group.key)


def merge_by_embedding(keys: Sequence[str], embed: Embed, threshold: float) -> list[tuple[str, ...]]:
    """Group keys (largest group first) merged into leaders: each joins the most similar earlier
    leader at cosine >= ``threshold``; returns the member keys of each leader, the leader first."""
    import numpy as np

    vecs = np.asarray(embed(list(keys)), dtype=np.float64)
    if vecs.ndim != 2 or vecs.shape[0] != len(keys):
        raise ValueError(f"embed returned shape {vecs.shape} for {len(keys)} names; expected ({len(keys)}, dim)")
    vecs = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)  # dot products are cosines
    leaders: list[int] = []
    members: dict[int, list[int]] = {}
    for i in range(len(keys)):
        if leaders:
            sims = vecs[leaders] @ vecs[i]
            best = int(np.argmax(sims))
            if sims[best] >= threshold:
                members[leaders[best]].append(i)
                continue
        leaders.append(i)
        members[i] = [i]
    return [tuple(keys[j] for j in members[lead]) for lead in leaders]


def group_indicators(
    records: Iterable[Record], embed: Embed | None = None, threshold: float = 0.9
) -> list[IndicatorGroup]:
    """Targets of all records grouped by normalised indicator name, optionally merged by embeddings.

    Groups come largest first: most documents, then most rows, then by key.
    """
    store = IndicatorStore()
    try:
        for record in records:
            store.add(record)
        return [IndicatorGroup(g.key, g.names, tuple(g.iter_rows())) for g in store.groups(embed, threshold)]
    finally:
        store.close()


INDICATOR_COLUMNS = ["indicator_group", "indicator", "match", "doc_id", "value", "deadline", "sentence"]


def write_indicators_csv(fh: TextIO, groups: Iterable[GroupLike]) -> None:
    """One line per target: its group key, how it joined the group (string rules or embedding), the row."""
    table = SafeCsv(fh, INDICATOR_COLUMNS)
    for g in groups:
        for r in g.iter_rows():
            match = "string" if normalise_indicator(r.indicator) == g.key else "embedding"
            table.row([g.key, r.indicator, match, r.doc_id, r.value, r.deadline or "", r.sentence])


def indicators_csv(groups: Iterable[GroupLike]) -> str:
    import io

    buf = io.StringIO()
    write_indicators_csv(buf, groups)
    return buf.getvalue()
