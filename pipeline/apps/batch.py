"""Extraction runs over many documents: batches, the journal, resume, then the tables and views.

A run holds the output folder's lock from start to end, removes temporary files a killed run left,
appends each finished document to the journal as soon as the model is done with it (the model still
runs on batches of documents: ``NerModel.iter_predict``), renames the journal to
``extractions.jsonl`` at the end and builds the tables and views by streaming over it
(``pipeline/apps/report.py``). Memory does not grow with the number of documents.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.apps.journal import Journal, iter_records
from pipeline.apps.report import write_report
from pipeline.core.documents import Document
from pipeline.core.inputs import DocInput, DocumentSet
from pipeline.core.outdir import locked_out_dir
from pipeline.extractors.extract import BATCH_DOCS, Extractor, iter_extract
from pipeline.extractors.records import extraction_record

if TYPE_CHECKING:
    from pipeline.apps.indicators import Embed


@dataclass
class RunSummary:
    extracted: int = 0
    skipped: int = 0
    chars: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    outputs: dict[str, Path] = field(default_factory=dict)

    def add(self, records: Sequence[dict[str, Any]], errors: Sequence[str]) -> None:
        """Count one finished batch."""
        self.extracted += len(records)
        self.chars += sum(len(r["text"]) for r in records)
        self.errors += errors


DOCSET_NAME = ".documents.sqlite.tmp"  # the run's document list; a killed run's copy is a stale temp


def as_document_set(out_dir: Path, paths: Sequence[Path | str | DocInput] | DocumentSet) -> DocumentSet:
    """The run's documents: a DocumentSet as it is; paths given directly (root: each file's folder) or
    DocInputs put in one in ``out_dir``."""
    if isinstance(paths, DocumentSet):
        return paths
    docset = DocumentSet(str(out_dir / DOCSET_NAME))
    for n, p in enumerate(paths):
        path = p.path if isinstance(p, DocInput) else str(p)
        docset.add(path, p.root if isinstance(p, DocInput) else os.path.dirname(os.path.realpath(path)), n)
    return docset.assign_ids()


def read_or_error(doc: DocInput) -> Document | str:
    """The document, or the reader's error message naming the file (the run goes on without it)."""
    from pipeline.core.documents import DocumentError, read_document

    try:
        return read_document(doc.path, doc.doc_id)
    except DocumentError as exc:
        return str(exc)


def extract_batch(batch: Sequence[Document | str], extractor: Extractor) -> tuple[list[dict[str, Any]], list[str]]:
    """Records of the documents read, and the read errors."""
    errors = [b for b in batch if isinstance(b, str)]
    return list(iter_batch_records(batch, extractor)), errors


def iter_batch_records(batch: Sequence[Document | str], extractor: Extractor) -> Iterator[dict[str, Any]]:
    """The record of each document read (not the read errors), each as soon as it is extracted."""
    documents = [b for b in batch if not isinstance(b, str)]
    return (extraction_record(doc, extractor) for doc in iter_extract(documents, extractor))


@contextmanager
def extraction_run(
    out_dir: Path,
    paths: Sequence[Path | str | DocInput] | DocumentSet,
    resume: bool,
    embed: Embed | None,
    group_threshold: float,
) -> Iterator[tuple[Journal, Iterator[DocInput], int, RunSummary]]:
    """Lock ``out_dir`` (which removes stale temporary files), open the journal; yield it with the
    documents still to extract (an iterator), their number and the summary; then commit the journal
    and write the tables and views (not after an exception)."""
    started = time.perf_counter()
    with locked_out_dir(out_dir) as out:
        journal = Journal(out, resume)
        docs = as_document_set(out, paths)
        try:
            docs.mark_done(journal.keys())
            summary = RunSummary(skipped=docs.count(done=True))
            yield journal, docs.pending(), docs.count(done=False), summary
            jsonl = journal.commit()
        finally:
            journal.close()
            if not isinstance(paths, DocumentSet):
                docs.close()
                (out / DOCSET_NAME).unlink(missing_ok=True)
        summary.outputs = {"extractions.jsonl": jsonl}
        summary.outputs.update(write_report(out, lambda: iter_records(jsonl), embed=embed, threshold=group_threshold))
    summary.seconds = time.perf_counter() - started


def batches(docs: Iterator[DocInput], size: int) -> Iterator[list[DocInput]]:
    """Consecutive lists of ``size`` documents (the last may be shorter)."""
    while batch := list(itertools.islice(docs, size)):
        yield batch


def run_extraction(
    paths: Sequence[Path | str | DocInput] | DocumentSet,
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
    """Read, extract and journal in document batches, then write extractions.jsonl, tables and views;
    with ``resume`` the documents already in the journal (or extractions.jsonl) are kept and skipped."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    run = extraction_run(Path(out_dir), paths, resume, embed, group_threshold)
    with run as (journal, todo, n_todo, summary):
        started = time.perf_counter()
        bar = tqdm(total=n_todo, unit="doc", disable=not progress, desc="extract")
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for batch in batches(todo, batch_docs):
                read = list(pool.map(read_or_error, batch))
                errors = [b for b in read if isinstance(b, str)]
                summary.add([], errors)
                bar.update(len(errors))
                for record in iter_batch_records(read, extractor):  # journaled one by one, as they are done
                    journal.append([record])
                    summary.add([record], [])
                    bar.update(1)
                    bar.set_postfix(chars_per_s=f"{summary.chars / max(time.perf_counter() - started, 1e-9):,.0f}")
        bar.close()
    return summary
