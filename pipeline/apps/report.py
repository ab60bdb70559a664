"""Tables and views of an extraction run, built by streaming over its records (``planie report OUT``).

``write_report`` reads the records twice (a survey: count and labels; then every output at once),
keeps the indicator rows and page names in a temporary SQLite file in the output folder, and so
needs about the same memory for a thousand documents as for a million. Every file is written
atomically; pages of documents that are no longer in the run are removed from ``html/``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.apps.indicators import Embed, IndicatorStore, Record, write_indicators_csv
from pipeline.apps.journal import JSONL, iter_records
from pipeline.apps.views import INDEX_TAIL, index_head, index_row, render_document_html, summary_parts, unique_page
from pipeline.core.documents import SentenceIndex
from pipeline.core.errors import InputError
from pipeline.core.files import atomic_writer, write_atomic
from pipeline.core.outdir import locked_out_dir
from pipeline.core.tables import SafeCsv
from pipeline.extractors.records import Target, Task, build_targets, build_tasks, doc_from_record

if TYPE_CHECKING:
    from pipeline.core.schema import Schema

TARGET_COLUMNS = ["doc_id", "source", *Target.__dataclass_fields__]
TASK_COLUMNS = ["doc_id", "source", *Task.__dataclass_fields__]
STORE_NAME = ".views.sqlite.tmp"  # a temporary file: a killed run's copy is removed as a stale temp


def _survey(records: Iterable[Record], schema: Schema) -> tuple[int, list[str]]:
    """The number of records and the entity labels (the schema's, then any other found, sorted)."""
    n, found = 0, set()
    for record in records:
        n += 1
        found.update(str(e.get("label")) for e in record.get("entities") or [])
    known = list(schema.entity_labels)
    return n, known + sorted(found - set(known))


def table_rows(record: Record, targets: SafeCsv, tasks: SafeCsv) -> None:
    """The record's targets and tasks as rows of targets.csv and tasks.csv."""
    doc = doc_from_record(record)
    index = SentenceIndex(doc.text)  # one per document, shared by both tables
    ids: dict[str, Any] = {"doc_id": doc.doc_id, "source": doc.source}
    for t in build_targets(doc, index):
        targets.record({**ids, **asdict(t)})
    for t in build_tasks(doc, index):
        tasks.record({**ids, **asdict(t), "agencies": "、".join(t.agencies)})


def _remove_old_pages(html_dir: Path, store: IndicatorStore) -> None:
    """Delete the pages in ``html_dir`` that no record of this report has (listed lazily: no list of them)."""
    if html_dir.is_dir():
        with os.scandir(html_dir) as entries:
            for entry in entries:
                if entry.name.endswith(".html") and not store.page_taken(f"html/{entry.name}"):
                    os.unlink(entry.path)


def write_report(
    out_dir: Path,
    records: Callable[[], Iterable[Record]],
    schema: Schema | None = None,
    embed: Embed | None = None,
    threshold: float = 0.9,
) -> dict[str, Path]:
    """targets.csv, tasks.csv, html/DOC.html per record, index.html, summary.html and indicators.csv
    from ``records()`` (called twice, each call a fresh iteration); returns name → path."""
    if schema is None:
        from pipeline.core.schema import load_schema

        schema = load_schema()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n_records, labels = _survey(records(), schema)
    paths = {name: out_dir / name for name in ("targets.csv", "tasks.csv", "index.html")}
    store_path = out_dir / STORE_NAME
    store_path.unlink(missing_ok=True)
    store = IndicatorStore(str(store_path))
    try:
        with (
            atomic_writer(paths["targets.csv"]) as targets_fh,
            atomic_writer(paths["tasks.csv"]) as tasks_fh,
            atomic_writer(paths["index.html"]) as index_fh,
        ):
            targets, tasks = SafeCsv(targets_fh, TARGET_COLUMNS), SafeCsv(tasks_fh, TASK_COLUMNS)
            index_fh.write(index_head(n_records, labels))
            for record in records():
                page = unique_page(str(record["doc_id"]), store.page_taken)
                write_atomic(out_dir / page, render_document_html(record, schema))
                store.add(record, page)
                table_rows(record, targets, tasks)
                index_fh.write(index_row(record, page, labels))
            index_fh.write(INDEX_TAIL)
        groups = store.groups(embed, threshold)
        paths["summary.html"], paths["indicators.csv"] = out_dir / "summary.html", out_dir / "indicators.csv"
        with atomic_writer(paths["summary.html"]) as fh:
            fh.writelines(summary_parts(groups, n_records, store.link, schema))
        with atomic_writer(paths["indicators.csv"]) as fh:
            write_indicators_csv(fh, groups)
        _remove_old_pages(out_dir / "html", store)
    finally:
        store.close()
        store_path.unlink(missing_ok=True)
    paths["html/"] = out_dir / "html"
    return paths


def write_views(
    out_dir: Path,
    records: Iterable[Record],
    schema: Schema | None = None,
    embed: Embed | None = None,
    threshold: float = 0.9,
) -> dict[str, Path]:
    """``write_report`` for records in memory."""
    records = list(records)
    return write_report(out_dir, lambda: records, schema, embed, threshold)


def report_from_jsonl(out_dir: str | Path, embed: Embed | None = None, threshold: float = 0.9) -> dict[str, Path]:
    """Rebuild the tables and views of ``out_dir`` from its extractions.jsonl (``planie report``), holding
    the folder's lock (taking it removes stale temporary files)."""
    jsonl = Path(out_dir) / JSONL
    if not Path(out_dir).is_dir():
        raise InputError(f"{out_dir}: not an extraction folder")
    with locked_out_dir(out_dir) as out:
        if not jsonl.is_file():
            raise InputError(f"{jsonl}: not found (run planie extract --out {out_dir} first)")
        return {JSONL: jsonl, **write_report(out, lambda: iter_records(jsonl), embed=embed, threshold=threshold)}
