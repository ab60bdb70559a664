"""The Python API behind ``pipeline.load()``: texts in, the records of ``extractions.jsonl`` out.

import pipeline
ex = pipeline.load()                       # the shipped model; or a model folder, or "rules"
record = ex.extract(text, doc_id="plan")   # one line of extractions.jsonl, as a dict
records = ex.extract_many(texts)           # batched
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pipeline.core.defaults import DEFAULT_BATCH_SIZE, DEFAULT_PRECISION
from pipeline.core.documents import Document
from pipeline.extractors.extract import BATCH_DOCS, DEFAULT_MODEL, Extractor, extract_batches, load_extractor
from pipeline.extractors.records import extraction_record


class Planie:
    """A loaded extractor (model or rules) that returns ``extractions.jsonl`` records."""

    def __init__(self, extractor: Extractor, batch_docs: int = BATCH_DOCS) -> None:
        self.extractor = extractor
        self.batch_docs = batch_docs

    def __repr__(self) -> str:
        return f"Planie(ner={self.extractor.ner_id!r}, relations={self.extractor.relations_id!r})"

    def extract(self, text: str, doc_id: str = "doc", source: str = "") -> dict[str, Any]:
        """The record ``planie extract`` writes for a document with this text, id and source path."""
        return self.extract_many([text], [doc_id], [source])[0]

    def extract_many(
        self, texts: Iterable[str], doc_ids: Sequence[str] | None = None, sources: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """One record per text, in order; the model runs on ``batch_docs`` texts at a time.
        ``doc_ids`` default to ``doc1``, ``doc2``, …; ``sources`` to empty strings."""
        texts = list(texts)
        ids = list(doc_ids) if doc_ids is not None else [f"doc{i}" for i in range(1, len(texts) + 1)]
        paths = list(sources) if sources is not None else [""] * len(texts)
        if not len(ids) == len(paths) == len(texts):
            raise ValueError(f"{len(texts)} texts, {len(ids)} doc_ids and {len(paths)} sources: give one of each")
        documents = [Document(i, s, t, "str") for i, s, t in zip(ids, paths, texts, strict=True)]
        batches = extract_batches(documents, self.extractor, self.batch_docs)
        return [extraction_record(doc, self.extractor) for batch in batches for doc in batch]


def load(
    model: str | Path | None = None,
    *,
    relations: str | Path | None = None,
    device: str = "cpu",
    batch_size: int = DEFAULT_BATCH_SIZE,
    precision: str = DEFAULT_PRECISION,
) -> Planie:
    """The shipped model (``models/planie-ner`` of this checkout) by default; a trained model folder, or
    ``"rules"`` for the baseline. The options are those of ``planie extract``; a missing model is a
    MissingModelError."""
    name = str(model if model is not None else DEFAULT_MODEL)
    rel = str(relations) if relations is not None else None
    options = {"device": device, "batch_size": batch_size, "precision": precision, "relations": rel}
    return Planie(load_extractor(name, **options))
