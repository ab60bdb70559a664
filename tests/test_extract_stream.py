"""Records stream out one document at a time (issue 16, cold start): the model still runs on the same
chunks and batches, so the spans are those of the batch predict; planie extract journals each document
as soon as it is done, not at the end of its batch of documents."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from pipeline.core.annotations import Relation, Span
from tests.tiny_bert import build_tiny_ner

TEXTS = [
    "到2025年，全省制造业产品质量合格率达到94%以上。\n省市场监管局负责组织实施质量提升行动。",
    "",
    "第二段：加强标准化建设。\n到2020年，服务业顾客满意度达到80分以上。",
    "各级质监部门要加强质量监督，省发展改革委负责推进品牌建设。",
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_ner(tmp_path_factory.mktemp("tiny_stream"), TEXTS)


@pytest.mark.parametrize("chunk_pieces", [16384, 20])  # one chunk; a chunk per paragraph or two
def test_iter_predict_is_predict(tiny: Path, chunk_pieces: int) -> None:
    from pipeline.extractors.ner import NerModel

    model = NerModel(tiny, precision="fp32")
    model.chunk_pieces = chunk_pieces
    streamed = list(model.iter_predict(TEXTS))
    assert len(streamed) == len(TEXTS) and streamed[1] == []
    assert streamed == model.predict(TEXTS)


def test_the_first_text_is_out_before_the_model_runs_on_the_next(tiny: Path) -> None:
    """The first chunk ends with the first text, and the text is yielded as soon as that chunk has run."""
    from pipeline.extractors.ner import NerModel

    model = NerModel(tiny, precision="fp32")
    texts = [TEXTS[0], TEXTS[2] * 3]  # both fit in one chunk of the default size
    forward, runs = model.forward, []
    model.forward = lambda ids, mask: runs.append(len(ids)) or forward(ids, mask)
    stream = model.iter_predict(texts)
    first = next(stream)
    assert len(runs) == 1 and first == model.predict(texts[:1])[0]
    rest = list(stream)
    assert len(runs) == 3 and [first, *rest] == model.predict(texts)


class WatchingExtractor:
    """Rules spans, streamed; before giving document k it reads the journal, which must hold k records."""

    ner_id = "watch"
    relations_id = "rules-linker"

    def __init__(self, journal: Path) -> None:
        self.journal, self.seen = journal, []

    def predict(self, texts: Sequence[str]) -> list[tuple[list[Span], list[Relation]]]:
        return list(self.iter_predict(texts))

    def iter_predict(self, texts: Sequence[str]) -> Iterator[tuple[list[Span], list[Relation]]]:
        for text in texts:
            lines = self.journal.read_text(encoding="utf-8").splitlines() if self.journal.exists() else []
            self.seen.append(len(lines))
            yield [Span("T1", 0, 1, "VALUE", text[:1])] if text else [], []


def test_run_extraction_journals_each_document_when_done(tmp_path: Path) -> None:
    from pipeline.apps.batch import run_extraction
    from pipeline.apps.journal import JOURNAL, JSONL

    docs = []
    for i, text in enumerate(TEXTS):
        docs.append(tmp_path / "in" / f"d{i}.txt")
        docs[-1].parent.mkdir(exist_ok=True)
        docs[-1].write_text(text or " ", encoding="utf-8")
    out = tmp_path / "out"
    extractor = WatchingExtractor(out / JOURNAL)
    summary = run_extraction(docs, out, extractor, batch_docs=8, progress=False)
    assert extractor.seen == [0, 1, 2, 3]  # one batch of 4 documents, journaled one by one
    assert summary.extracted == 4
    records = [json.loads(line) for line in (out / JSONL).read_text(encoding="utf-8").splitlines()]
    assert [r["doc_id"] for r in records] == ["d0", "d1", "d2", "d3"]
