"""Analyst views of a batch extraction: static HTML pages and an indicator comparison across documents.

Everything is built from the extraction records (one line of ``extractions.jsonl`` each, see
``shared/annotation-schema.md``) and written as plain files: no JavaScript, no network, no libraries.

- ``html/DOC.html``: one page per document, the full text with every entity highlighted in its
  schema colour, then the targets and tasks tables.
- ``index.html``: the documents with entity counts per label, targets and tasks.
- ``summary.html``: targets grouped by indicator across documents, with an inline SVG bar chart.
- ``indicators.csv``: the same grouping as a table.

Indicator grouping: ``pipeline/apps/indicators.py``.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pipeline.apps.indicators import GroupLike, Record

if TYPE_CHECKING:
    from pipeline.core.schema import Schema


_SAFE_COLOUR = re.compile(r"#[0-9A-Fa-f]{3,8}")


_DEFAULT_COLOUR = "#999999"


_BAR_COLOUR = "#f28e2b"


CHART_TOP = 15


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


def page_parts(title: str, body: Iterable[str], extra_css: str = "") -> Iterator[str]:
    """A whole HTML page, piece by piece (``body`` may be a generator: pages are written as they come)."""
    yield '<!DOCTYPE html>\n<html lang="zh-CN">\n<head>\n<meta charset="utf-8">\n'
    yield '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
    yield f"<title>{_e(title)}</title>\n<style>{_CSS}{extra_css}</style>\n</head>\n<body>\n"
    yield from body
    yield "\n</body>\n</html>\n"


def _page(title: str, body: Iterable[str], extra_css: str = "") -> str:
    return "".join(page_parts(title, body, extra_css))


def _table_parts(headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: Iterable[int] = ()) -> Iterator[str]:
    """A table, row by row; cells are HTML already (escape before)."""
    classes = _classes(headers, numeric)
    yield "".join(["<table>\n<thead><tr>", *(f"<th>{_e(h)}</th>" for h in headers), "</tr></thead>\n<tbody>\n"])
    yield from (_tr(row, classes) for row in rows)
    yield "</tbody>\n</table>\n"


def _classes(headers: Sequence[str], numeric: Iterable[int] = ()) -> list[str]:
    numeric = set(numeric)
    return [f"c-{_css_label(h)}" + (" num" if i in numeric else "") for i, h in enumerate(headers)]


def _tr(cells: Sequence[str], classes: Sequence[str]) -> str:
    return "".join(["<tr>", *(f'<td class="{classes[i]}">{c}</td>' for i, c in enumerate(cells)), "</tr>\n"])


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: Iterable[int] = ()) -> str:
    return "".join(_table_parts(headers, rows, numeric))


def doc_filename(doc_id: str) -> str:
    """A file name for a document page: doc_id with anything but letters, digits, . _ - replaced."""
    return (re.sub(r"[^\w.-]+", "_", doc_id).strip("._") or "doc") + ".html"


def unique_page(doc_id: str, taken: Callable[[str], bool]) -> str:
    """The relative path (``html/NAME.html``) of a document's page; ``-2``, ``-3`` … while ``taken``
    (compared in lower case: pages must not collide on case-insensitive file systems)."""
    name = doc_filename(doc_id)
    stem, n = name[: -len(".html")], 1
    while taken(f"html/{name}".lower()):
        n += 1
        name = f"{stem}-{n}.html"
    return f"html/{name}"


def doc_paths(records: Sequence[Record]) -> list[str]:
    """The relative path (``html/NAME.html``) of each record's page, unique even if names collide."""
    seen: set[str] = set()
    out = []
    for rec in records:
        out.append(unique_page(str(rec["doc_id"]), seen.__contains__))
        seen.add(out[-1].lower())
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


INDEX_TITLE = "Extraction results"


def index_head(n_records: int, labels: Sequence[str]) -> str:
    """index.html up to the first row of its table."""
    head = "".join(page_parts(INDEX_TITLE, []))
    head = head[: head.index("\n</body>")]
    return head + (
        "<h1>Extraction results</h1>\n"
        f'<p class="meta">{n_records} documents · <a href="summary.html">indicator summary</a> · '
        '<a href="indicators.csv">indicators.csv</a></p>\n' + next(_table_parts(_index_headers(labels), []))
    )


def _index_headers(labels: Sequence[str]) -> list[str]:
    return ["document", "source", "characters", *labels, "targets", "tasks"]


def index_row(record: Record, path: str, labels: Sequence[str]) -> str:
    """One row of index.html: the document linked to its page, its counts."""
    counts = Counter(str(e.get("label")) for e in record.get("entities") or [])
    cells = [
        f'<a href="{_href(path)}">{_e(record.get("doc_id"))}</a>',
        _e(record.get("source")),
        f"{len(record.get('text') or ''):,}",
        *(str(counts.get(lab, 0)) for lab in labels),
        str(len(record.get("targets") or [])),
        str(len(record.get("tasks") or [])),
    ]
    return _tr(cells, _classes(_index_headers(labels), numeric=range(2, 5 + len(labels))))


INDEX_TAIL = "</tbody>\n</table>\n\n</body>\n</html>\n"


def render_index_html(records: Sequence[Record], schema: Schema | None = None) -> str:
    """The documents with entity counts per label, targets and tasks, linked to ``html/DOC.html``."""
    labels = _labels(schema, records)
    rows = (index_row(rec, path, labels) for rec, path in zip(records, doc_paths(records), strict=True))
    return "".join([index_head(len(records), labels), *rows, INDEX_TAIL])


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _short(text: str, limit: int = 22) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def bar_chart_svg(groups: Sequence[GroupLike], top: int = CHART_TOP, colour: str = _BAR_COLOUR) -> str:
    """An inline SVG: the most common indicators, bar length = number of documents setting a target on it."""
    shown = list(groups[:top])
    if not shown:
        return "<p>No targets.</p>\n"
    label_w, bar_w, row_h, pad = 340, 420, 26, 10
    most = max(g.n_documents for g in shown)
    height = pad * 2 + row_h * len(shown)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + bar_w + 140}" height="{height}" '
        f'role="img" aria-label="most common indicators">\n'
    ]
    for i, g in enumerate(shown):
        y = pad + i * row_h
        w = max(2, round(bar_w * g.n_documents / most))
        parts.append(
            f'<a href="#g{i + 1}"><title>{_e(g.key)}</title>'
            f'<text x="{label_w - 8}" y="{y + 17}" text-anchor="end" font-size="13">{_e(_short(g.key))}</text>'
            f'<rect x="{label_w}" y="{y + 4}" width="{w}" height="{row_h - 8}" fill="{colour}"/>'
            f'<text x="{label_w + w + 6}" y="{y + 17}" font-size="12" fill="#444">'
            f"{_plural(g.n_documents, 'doc')} · {_plural(g.n_rows, 'target')}</text></a>\n"
        )
    parts.append("</svg>\n")
    return "".join(parts)


def _group_section(n: int, group: GroupLike, link: Callable[[str], str | None]) -> Iterator[str]:
    variants = "、".join(group.names)
    yield (
        f'<h3 id="g{n}">{n}. {_e(group.key)} <span class="names">({_plural(group.n_documents, "document")} · '
        f"names: {_e(variants)})</span></h3>\n"
    )
    rows = (
        [
            f'<a href="{_href(path)}">{_e(r.doc_id)}</a>' if (path := link(r.doc_id)) else _e(r.doc_id),
            _e(r.indicator),
            _e(r.value),
            _e(r.deadline),
            _e(r.sentence),
        ]
        for r in group.iter_rows()
    )
    yield from _table_parts(["document", "indicator", "value", "deadline", "sentence"], rows)


def summary_parts(
    groups: Sequence[GroupLike], n_records: int, link: Callable[[str], str | None], schema: Schema | None = None
) -> Iterator[str]:
    """summary.html piece by piece: targets grouped by indicator (value and deadline per document) with
    a bar chart of the most common; ``link`` gives the page of a doc_id."""
    n_targets = sum(g.n_rows for g in groups)
    colour = _colour(schema, "INDICATOR") if schema is not None else _BAR_COLOUR
    body = [
        '<nav><a href="index.html">← all documents</a><a href="indicators.csv">indicators.csv</a></nav>\n',
        "<h1>Targets by indicator</h1>\n",
        f'<p class="meta">{n_records} documents · {n_targets} targets · {len(groups)} indicator groups</p>\n',
        f"<h2>Most common indicators (top {min(CHART_TOP, len(groups))})</h2>\n",
        bar_chart_svg(groups, colour=colour),
        "<h2>All indicators</h2>\n",
    ]
    sections = (part for i, g in enumerate(groups) for part in _group_section(i + 1, g, link))
    yield from page_parts("Targets by indicator", itertools.chain(body, sections))


def render_summary_html(groups: Sequence[GroupLike], records: Sequence[Record], schema: Schema | None = None) -> str:
    """summary.html for records in memory."""
    return "".join(summary_parts(groups, len(records), _doc_links(records).get, schema))
