"""Analyst views of a batch extraction: static HTML pages and an indicator comparison across documents.

Everything is built from the extraction records (one line of ``extractions.jsonl`` each, see
``shared/annotation-schema.md``) and written as plain files: no JavaScript, no network, no libraries.

- ``html/DOC.html``: one page per document, the full text with every entity highlighted in its
  schema colour, then the targets and tasks tables.
- ``index.html``: the documents with entity counts per label, targets and tasks.
- ``summary.html``: targets grouped by indicator across documents, with an inline SVG bar chart.
- ``indicators.csv``: the same grouping as a table.

Indicator grouping (``normalise_indicator`` / ``group_indicators``)
-------------------------------------------------------------------
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
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pipeline.core.documents import to_simplified
from pipeline.core.files import write_atomic

if TYPE_CHECKING:
    import numpy as np

    from pipeline.core.schema import Schema


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


_SAFE_COLOUR = re.compile(r"#[0-9A-Fa-f]{3,8}")


_DEFAULT_COLOUR = "#999999"


_BAR_COLOUR = "#f28e2b"


CHART_TOP = 15


@dataclass(frozen=True)
class IndicatorRow:
    """One target of one document, as shown in the comparison."""

    doc_id: str
    indicator: str
    value: str
    deadline: str | None
    sentence: str
    target_index: int


@dataclass(frozen=True)
class IndicatorGroup:
    """Targets across documents that measure the same indicator."""

    key: str
    names: tuple[str, ...]
    rows: tuple[IndicatorRow, ...]

    @property
    def documents(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.doc_id for r in self.rows))


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


def indicator_rows(records: Sequence[Record]) -> list[IndicatorRow]:
    rows = []
    for rec in records:
        for i, t in enumerate(rec.get("targets") or []):
            if str(t.get("indicator") or "").strip():
                rows.append(
                    IndicatorRow(
                        str(rec["doc_id"]),
                        str(t["indicator"]),
                        str(t.get("value") or ""),
                        t.get("deadline"),
                        str(t.get("sentence") or ""),
                        i,
                    )
                )
    return rows


def _make_group(key: str, rows: Iterable[IndicatorRow], doc_rank: dict[str, int]) -> IndicatorGroup:
    ordered = sorted(rows, key=lambda r: (doc_rank.get(r.doc_id, len(doc_rank)), r.target_index))
    return IndicatorGroup(key, tuple(dict.fromkeys(r.indicator for r in ordered)), tuple(ordered))


def _size(group: IndicatorGroup) -> tuple[int, int, str]:
    return (-len(group.documents), -len(group.rows), group.key)


def group_indicators(
    records: Sequence[Record], embed: Embed | None = None, threshold: float = 0.9
) -> list[IndicatorGroup]:
    """Targets of all records grouped by normalised indicator name, optionally merged by embeddings.

    Groups come largest first: most documents, then most rows, then by key.
    """
    doc_rank = {str(r["doc_id"]): i for i, r in reversed(list(enumerate(records)))}
    by_key: dict[str, list[IndicatorRow]] = {}
    for row in indicator_rows(records):
        by_key.setdefault(normalise_indicator(row.indicator), []).append(row)
    groups = sorted((_make_group(k, rows, doc_rank) for k, rows in by_key.items()), key=_size)
    if embed is not None and len(groups) > 1:
        groups = _merge_by_embedding(groups, embed, threshold, doc_rank)
    return groups


def _merge_by_embedding(
    groups: list[IndicatorGroup], embed: Embed, threshold: float, doc_rank: dict[str, int]
) -> list[IndicatorGroup]:
    import numpy as np

    vecs = np.asarray(embed([g.key for g in groups]), dtype=np.float64)
    if vecs.ndim != 2 or vecs.shape[0] != len(groups):
        raise ValueError(f"embed returned shape {vecs.shape} for {len(groups)} names; expected ({len(groups)}, dim)")
    vecs = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)  # dot products are cosines
    leaders: list[int] = []
    members: dict[int, list[int]] = {}
    for i in range(len(groups)):
        if leaders:
            sims = vecs[leaders] @ vecs[i]
            best = int(np.argmax(sims))
            if sims[best] >= threshold:
                members[leaders[best]].append(i)
                continue
        leaders.append(i)
        members[i] = [i]
    merged = [
        _make_group(groups[lead].key, (row for j in members[lead] for row in groups[j].rows), doc_rank)
        for lead in leaders
    ]
    return sorted(merged, key=_size)


def indicators_csv(groups: Sequence[IndicatorGroup]) -> str:
    """One line per target: its group key, how it joined the group (string rules or embedding), the row."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["indicator_group", "indicator", "match", "doc_id", "value", "deadline", "sentence"])
    for g in groups:
        for r in g.rows:
            match = "string" if normalise_indicator(r.indicator) == g.key else "embedding"
            writer.writerow([g.key, r.indicator, match, r.doc_id, r.value, r.deadline or "", r.sentence])
    return buf.getvalue()


_CSS = """
body{font-family:"Noto Sans CJK SC","Noto Sans SC","Microsoft YaHei",sans-serif;margin:1.5em auto;max-width:1100px;
color:#222;padding:0 1em;line-height:1.6}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}h3{font-size:1em;margin:1.2em 0 .3em}
nav a{margin-right:1em}
.meta{color:#666;font-size:.9em}
.legend{position:sticky;top:0;background:#fff;padding:.4em 0;border-bottom:1px solid #ddd;z-index:1}
.legend-item{display:inline-block;margin-right:.8em;padding:0 .4em;border-radius:3px}
.doc-text{white-space:pre-wrap;word-wrap:break-word;border:1px solid #ddd;padding:1em;background:#fcfcfc}
.ent{border-radius:2px;padding:0 1px}
.warn{color:#a00}
table{border-collapse:collapse;width:100%;font-size:.9em;margin:.3em 0 1em}
th,td{border:1px solid #ddd;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f3f3f3}
td.num{text-align:right}
.c-value,.c-deadline,.c-action,.c-document{white-space:nowrap}
.names{color:#666;font-size:.9em}
"""


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _css_label(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", label) or "_"


def _colour(schema: Schema | None, label: str) -> str:
    colour = schema.colour(label) if schema is not None else _DEFAULT_COLOUR
    return colour if _SAFE_COLOUR.fullmatch(colour) else _DEFAULT_COLOUR


def _labels(schema: Schema | None, records: Iterable[Record]) -> list[str]:
    known = list(schema.entity_labels) if schema is not None else []
    found = {str(e.get("label")) for r in records for e in r.get("entities") or []}
    return known + sorted(found - set(known))


def _page(title: str, body: Iterable[str], extra_css: str = "") -> str:
    return "".join(
        [
            '<!DOCTYPE html>\n<html lang="zh-CN">\n<head>\n<meta charset="utf-8">\n',
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
            f"<title>{_e(title)}</title>\n<style>{_CSS}{extra_css}</style>\n</head>\n<body>\n",
            *body,
            "\n</body>\n</html>\n",
        ]
    )


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: Sequence[int] = ()) -> str:
    """A table; cells are HTML already (escape before)."""
    classes = [f"c-{_css_label(h)}" + (" num" if i in numeric else "") for i, h in enumerate(headers)]
    parts = ["<table>\n<thead><tr>", *(f"<th>{_e(h)}</th>" for h in headers), "</tr></thead>\n<tbody>\n"]
    for row in rows:
        parts.append("<tr>")
        parts.extend(f'<td class="{classes[i]}">{c}</td>' for i, c in enumerate(row))
        parts.append("</tr>\n")
    parts.append("</tbody>\n</table>\n")
    return "".join(parts)


def doc_filename(doc_id: str) -> str:
    """A file name for a document page: doc_id with anything but letters, digits, . _ - replaced."""
    return (re.sub(r"[^\w.-]+", "_", doc_id).strip("._") or "doc") + ".html"


def doc_paths(records: Sequence[Record]) -> list[str]:
    """The relative path (``html/NAME.html``) of each record's page, unique even if names collide."""
    seen: set[str] = set()
    out = []
    for rec in records:
        name = doc_filename(str(rec["doc_id"]))
        stem, n = name[: -len(".html")], 1
        while name.lower() in seen:
            n += 1
            name = f"{stem}-{n}.html"
        seen.add(name.lower())
        out.append(f"html/{name}")
    return out


def _doc_links(records: Sequence[Record]) -> dict[str, str]:
    links: dict[str, str] = {}
    for rec, path in zip(records, doc_paths(records), strict=True):
        links.setdefault(str(rec["doc_id"]), path)
    return links


def _href(path: str) -> str:
    return _e(quote(path))


def _entity_css(labels: Iterable[str], schema: Schema | None) -> str:
    rules = []
    for label in labels:
        c = _colour(schema, label)
        cls = _css_label(label)
        rules.append(f".ent-{cls}{{background:{c}33;border-bottom:2px solid {c}}}")
        rules.append(f".legend-{cls}{{background:{c}33;border:1px solid {c}}}")
    return "\n".join(rules)


def _title_attr(label: str, score: Any) -> str:
    if isinstance(score, (int, float)) and not isinstance(score, bool):
        return f"{label} · score {score:.2f}"
    return label


def _span_open(ent: Record, start: int, end: int) -> str:
    label = str(ent.get("label"))
    return (
        f'<span class="ent ent-{_css_label(label)}" data-label="{_e(label)}" data-start="{start}" '
        f'data-end="{end}" data-id="{_e(ent.get("id"))}" title="{_e(_title_attr(label, ent.get("score")))}">'
    )


def highlight_text(text: str, entities: Sequence[Record]) -> tuple[str, int]:
    """The escaped text with one ``<span class="ent …">`` per entity, and the number of entities left out.

    Entities that overlap an earlier one or fall outside the text cannot be shown and are counted.
    """
    parts: list[str] = []
    cursor = skipped = 0
    for ent in sorted(entities, key=lambda e: (int(e["start"]), int(e["end"]))):
        start, end = int(ent["start"]), int(ent["end"])
        if start < cursor or end <= start or end > len(text):
            skipped += 1
            continue
        parts += [_e(text[cursor:start]), _span_open(ent, start, end), _e(text[start:end]), "</span>"]
        cursor = end
    parts.append(_e(text[cursor:]))
    return "".join(parts), skipped


def _legend(labels: Sequence[str], counts: Counter[str]) -> str:
    items = "".join(
        f'<span class="legend-item legend-{_css_label(lab)}">{_e(lab)} <b>{counts.get(lab, 0)}</b></span>'
        for lab in labels
    )
    return f'<div class="legend">{items}</div>\n'


def _targets_table(targets: Sequence[Record]) -> str:
    rows = [[_e(t.get("indicator")), _e(t.get("value")), _e(t.get("deadline")), _e(t.get("sentence"))] for t in targets]
    return _table(["indicator", "value", "deadline", "sentence"], rows) if rows else "<p>No targets.</p>\n"


def _tasks_table(tasks: Sequence[Record]) -> str:
    rows = [
        [_e(t.get("action")), _e("、".join(t.get("agencies") or [])), _e(t.get("deadline")), _e(t.get("sentence"))]
        for t in tasks
    ]
    return _table(["action", "agencies", "deadline", "sentence"], rows) if rows else "<p>No tasks.</p>\n"


def render_document_html(record: Record, schema: Schema | None) -> str:
    """One self-contained page: legend, highlighted full text, targets table, tasks table."""
    text = str(record.get("text") or "")
    entities = list(record.get("entities") or [])
    labels = _labels(schema, [record])
    body, skipped = highlight_text(text, entities)
    model = record.get("model") or {}
    targets, tasks = record.get("targets") or [], record.get("tasks") or []
    warn = f'<p class="warn">{skipped} overlapping or out-of-range entities not highlighted.</p>\n' if skipped else ""
    parts = [
        '<nav><a href="../index.html">← all documents</a><a href="../summary.html">indicator summary</a></nav>\n',
        f"<h1>{_e(record.get('doc_id'))}</h1>\n",
        f'<p class="meta">source: {_e(record.get("source"))} · {len(text):,} characters · '
        f"NER {_e(model.get('ner'))} · relations {_e(model.get('relations'))}</p>\n",
        _legend(labels, Counter(str(e.get("label")) for e in entities)),
        warn,
        f'<div class="doc-text">{body}</div>\n',
        f"<h2>Targets ({len(targets)})</h2>\n",
        _targets_table(targets),
        f"<h2>Tasks ({len(tasks)})</h2>\n",
        _tasks_table(tasks),
    ]
    return _page(str(record.get("doc_id")), parts, _entity_css(labels, schema))


def render_index_html(records: Sequence[Record], schema: Schema | None = None) -> str:
    """The documents with entity counts per label, targets and tasks, linked to ``html/DOC.html``."""
    labels = _labels(schema, records)
    rows = []
    for rec, path in zip(records, doc_paths(records), strict=True):
        counts = Counter(str(e.get("label")) for e in rec.get("entities") or [])
        rows.append(
            [
                f'<a href="{_href(path)}">{_e(rec.get("doc_id"))}</a>',
                _e(rec.get("source")),
                f"{len(rec.get('text') or ''):,}",
                *(str(counts.get(lab, 0)) for lab in labels),
                str(len(rec.get("targets") or [])),
                str(len(rec.get("tasks") or [])),
            ]
        )
    n = len(labels)
    parts = [
        "<h1>Extraction results</h1>\n",
        f'<p class="meta">{len(records)} documents · <a href="summary.html">indicator summary</a> · '
        '<a href="indicators.csv">indicators.csv</a></p>\n',
        _table(
            ["document", "source", "characters", *labels, "targets", "tasks"],
            rows,
            numeric=range(2, 5 + n),
        ),
    ]
    return _page("Extraction results", parts)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _short(text: str, limit: int = 22) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def bar_chart_svg(groups: Sequence[IndicatorGroup], top: int = CHART_TOP, colour: str = _BAR_COLOUR) -> str:
    """An inline SVG: the most common indicators, bar length = number of documents setting a target on it."""
    shown = list(groups[:top])
    if not shown:
        return "<p>No targets.</p>\n"
    label_w, bar_w, row_h, pad = 340, 420, 26, 10
    most = max(len(g.documents) for g in shown)
    height = pad * 2 + row_h * len(shown)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + bar_w + 140}" height="{height}" '
        f'role="img" aria-label="most common indicators">\n'
    ]
    for i, g in enumerate(shown):
        y = pad + i * row_h
        w = max(2, round(bar_w * len(g.documents) / most))
        parts.append(
            f'<a href="#g{i + 1}"><title>{_e(g.key)}</title>'
            f'<text x="{label_w - 8}" y="{y + 17}" text-anchor="end" font-size="13">{_e(_short(g.key))}</text>'
            f'<rect x="{label_w}" y="{y + 4}" width="{w}" height="{row_h - 8}" fill="{colour}"/>'
            f'<text x="{label_w + w + 6}" y="{y + 17}" font-size="12" fill="#444">'
            f"{_plural(len(g.documents), 'doc')} · {_plural(len(g.rows), 'target')}</text></a>\n"
        )
    parts.append("</svg>\n")
    return "".join(parts)


def _group_section(n: int, group: IndicatorGroup, links: dict[str, str]) -> str:
    variants = "、".join(group.names)
    rows = [
        [
            f'<a href="{_href(links[r.doc_id])}">{_e(r.doc_id)}</a>' if r.doc_id in links else _e(r.doc_id),
            _e(r.indicator),
            _e(r.value),
            _e(r.deadline),
            _e(r.sentence),
        ]
        for r in group.rows
    ]
    return (
        f'<h3 id="g{n}">{n}. {_e(group.key)} <span class="names">({_plural(len(group.documents), "document")} · '
        f"names: {_e(variants)})</span></h3>\n"
        + _table(["document", "indicator", "value", "deadline", "sentence"], rows)
    )


def render_summary_html(
    groups: Sequence[IndicatorGroup], records: Sequence[Record], schema: Schema | None = None
) -> str:
    """Targets grouped by indicator (value and deadline per document) with a bar chart of the most common."""
    links = _doc_links(records)
    n_targets = sum(len(g.rows) for g in groups)
    colour = _colour(schema, "INDICATOR") if schema is not None else _BAR_COLOUR
    parts = [
        '<nav><a href="index.html">← all documents</a><a href="indicators.csv">indicators.csv</a></nav>\n',
        "<h1>Targets by indicator</h1>\n",
        f'<p class="meta">{len(records)} documents · {n_targets} targets · {len(groups)} indicator groups</p>\n',
        f"<h2>Most common indicators (top {min(CHART_TOP, len(groups))})</h2>\n",
        bar_chart_svg(groups, colour=colour),
        "<h2>All indicators</h2>\n",
        *(_group_section(i + 1, g, links) for i, g in enumerate(groups)),
    ]
    return _page("Targets by indicator", parts)


def write_views(
    out_dir: Path,
    records: Sequence[Record],
    schema: Schema | None = None,
    embed: Embed | None = None,
    threshold: float = 0.9,
) -> dict[str, Path]:
    """Write html/DOC.html per record, index.html, summary.html and indicators.csv, each atomically.

    ``schema`` defaults to the project schema (configs/schema.yaml). Returns name → path, the
    document pages under their relative names (``html/DOC.html``).
    """
    if schema is None:
        from pipeline.core.schema import load_schema

        schema = load_schema()
    out_dir = Path(out_dir)
    paths: dict[str, Path] = {}
    for rec, rel in zip(records, doc_paths(records), strict=True):
        paths[rel] = out_dir / rel
        write_atomic(paths[rel], render_document_html(rec, schema))
    groups = group_indicators(records, embed=embed, threshold=threshold)
    outputs = {
        "index.html": render_index_html(records, schema),
        "summary.html": render_summary_html(groups, records, schema),
        "indicators.csv": indicators_csv(groups),
    }
    for name, content in outputs.items():
        paths[name] = out_dir / name
        write_atomic(paths[name], content)
    return paths
