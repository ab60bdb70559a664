"""Extraction runs over many documents: batches, resume, extractions.jsonl, CSV tables and views."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.core.documents import Document, SentenceIndex
from pipeline.core.files import write_atomic

if TYPE_CHECKING:
    from pipeline.apps.views import Embed
from pipeline.extractors.extract import BATCH_DOCS, Extractor, extract_documents
from pipeline.extractors.records import Target, Task, build_targets, build_tasks, doc_from_record, extraction_record


def _csv(rows: Iterable[dict[str, Any]], fields: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def write_tables_and_views(
    out_dir: Path, records: Sequence[dict[str, Any]], embed: Embed | None = None, group_threshold: float = 0.9
) -> dict[str, Path]:
    """targets.csv, tasks.csv and the views; ``embed``/``group_threshold``: indicator grouping (views)."""
    from pipeline.apps.views import write_views

    paths = {name: out_dir / name for name in ("targets.csv", "tasks.csv")}
    target_rows, task_rows = [], []
    for record in records:
        doc = doc_from_record(record)
        index = SentenceIndex(doc.text)  # one per document, shared by both tables
        target_rows += [{"doc_id": doc.doc_id, **asdict(t)} for t in build_targets(doc, index)]
        task_rows += [
            {"doc_id": doc.doc_id, **asdict(t), "agencies": "、".join(t.agencies)} for t in build_tasks(doc, index)
        ]
    write_atomic(paths["targets.csv"], _csv(target_rows, ["doc_id", *Target.__dataclass_fields__]))
    write_atomic(paths["tasks.csv"], _csv(task_rows, ["doc_id", *Task.__dataclass_fields__]))
    paths.update(write_views(out_dir, list(records), embed=embed, threshold=group_threshold))
    return paths


@dataclass
class RunSummary:
    extracted: int = 0
    skipped: int = 0
    chars: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    outputs: dict[str, Path] = field(default_factory=dict)


def read_existing(jsonl: Path) -> list[dict[str, Any]]:
    if not jsonl.exists():
        return []
    records = []
    for n, line in enumerate(jsonl.read_text(encoding="utf-8").splitlines(), 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"{jsonl}: line {n}: not JSON ({exc.msg}); remove the file or run without --resume"
            ) from exc
    return records


def read_or_error(path: str | Path) -> Document | str:
    """The document, or the reader's error message naming the file (the run goes on without it)."""
    from pipeline.core.documents import DocumentError, read_document

    try:
        return read_document(path)
    except DocumentError as exc:
        return str(exc)


def start_run(
    out_dir: Path, paths: Sequence[Path], resume: bool
) -> tuple[list[dict[str, Any]], RunSummary, list[Path]]:
    """The records kept from ``out_dir/extractions.jsonl`` (with ``resume``), a summary counting the
    documents skipped for being there, and the paths still to extract."""
    out_dir.mkdir(parents=True, exist_ok=True)
    records = read_existing(out_dir / "extractions.jsonl") if resume else []
    done = {r["source"] for r in records}
    summary = RunSummary(skipped=sum(1 for p in paths if str(p) in done))
    return records, summary, [p for p in paths if str(p) not in done]


def finish_run(
    out_dir: Path, records: Sequence[dict[str, Any]], summary: RunSummary, embed: Embed | None, group_threshold: float
) -> RunSummary:
    """Write extractions.jsonl atomically, then the tables and views; record the outputs in the summary."""
    jsonl = out_dir / "extractions.jsonl"
    write_atomic(jsonl, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    summary.outputs = {"extractions.jsonl": jsonl, **write_tables_and_views(out_dir, records, embed, group_threshold)}
    return summary


def run_extraction(
    paths: Sequence[Path],
    out_dir: Path,
    extractor: Extractor,
    *,
    batch_docs: int = BATCH_DOCS,
    workers: int = 1,
    resume: bool = False,
    progress: bool = True,
    embed: Embed | None = None,
    group_threshold: float = 0.9,
) -> RunSummary:
    """Read, extract and write in document batches. Records go to a temporary JSONL renamed into
    place at the end, so extractions.jsonl is never half-written; with ``resume`` the documents
    already in it are kept and skipped."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    out_dir = Path(out_dir)
    records, summary, todo = start_run(out_dir, paths, resume)
    started = time.perf_counter()
    bar = tqdm(total=len(todo), unit="doc", disable=not progress, desc="extract")
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for i in range(0, len(todo), batch_docs):
            batch = list(pool.map(read_or_error, todo[i : i + batch_docs]))
            summary.errors += [b for b in batch if isinstance(b, str)]
            documents = [b for b in batch if not isinstance(b, str)]
            for doc in extract_documents(documents, extractor):
                records.append(extraction_record(doc, extractor))
                summary.chars += len(doc.text)
            summary.extracted += len(documents)
            bar.update(len(batch))
            bar.set_postfix(chars_per_s=f"{summary.chars / max(time.perf_counter() - started, 1e-9):,.0f}")
    bar.close()
    finish_run(out_dir, records, summary, embed, group_threshold)
    summary.seconds = time.perf_counter() - started
    return summary
