"""Very long documents stream through the NER model in bounded chunks of paragraphs."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from pipeline.extractors.ner import NerModel
from tests.tiny_bert import build_tiny_ner  # noqa: E402

LONG = 200_000


@pytest.fixture(scope="module")
def long_case(tmp_path_factory, seeds_dir: Path):
    seeds = [p.read_text(encoding="utf-8") for p in sorted(seeds_dir.glob("*.txt"))]
    pieces: list[str] = []
    while sum(len(p) + 1 for p in pieces) < LONG:
        pieces.append(seeds[len(pieces) % len(seeds)])
    model_dir = build_tiny_ner(tmp_path_factory.mktemp("tiny_ner"), seeds)
    return "\n".join(pieces), pieces, model_dir


def test_a_200k_document_gives_the_spans_of_its_pieces(long_case, monkeypatch) -> None:
    text, pieces, model_dir = long_case
    assert len(text) >= LONG
    model = NerModel(model_dir, precision="fp32", batch_size=16)  # fp32: results do not depend on batching
    model.chunk_pieces = 4096
    seen: list[int] = []
    run = model._run

    def recording_run(jobs, para_pieces):  # noqa: ANN001, ANN202
        seen.append(sum(len(p) for _, p in para_pieces))
        return run(jobs, para_pieces)

    monkeypatch.setattr(model, "_run", recording_run)
    (whole,) = model.predict([text], viterbi=False)  # argmax: the test is about chunking, not decoding
    longest_paragraph = max(len(line) for line in text.splitlines())
    assert len(seen) > 10 and max(seen) <= max(model.chunk_pieces, longest_paragraph)  # bounded chunks

    monkeypatch.undo()
    expected, offset = [], 0
    for piece, spans in zip(pieces, model.predict(pieces, viterbi=False), strict=True):
        expected += [(s.start + offset, s.end + offset, s.label, s.text, s.score) for s in spans]
        offset += len(piece) + 1
    assert expected  # the random model does find spans
    assert [(s.start, s.end, s.label, s.text, s.score) for s in whole] == expected
    assert all(text[s.start : s.end] == s.text for s in whole)
