"""Character spans to BIO piece labels and back; encoder windows; HF datasets."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.core.annotations import AnnotatedDoc, Span
from pipeline.core.documents import is_han, paragraphs, to_simplified

_WORD = re.compile(r"\d+(?:\.\d+)?|[A-Za-z]+|[０-９]+|\S", re.UNICODE)


@dataclass(frozen=True)
class Piece:
    token_id: int
    start: int
    end: int


@dataclass(frozen=True)
class Window:
    doc_id: str
    pieces: tuple[Piece, ...]
    labels: tuple[str, ...] | None  # None at inference time


def pre_tokenize(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Word boundaries (start, end) in text[start:end]; see the module docstring."""
    return [(m.start(), m.end()) for m in _WORD.finditer(text, start, len(text) if end is None else end)]


class PieceTokenizer:
    """Wraps a HuggingFace fast tokenizer so that pieces are cut inside pre-tokenised words."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        backend = tokenizer.backend_tokenizer
        self._model = backend.model
        self._normalizer = backend.normalizer
        self.unk_id = tokenizer.unk_token_id
        self.cls_id = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
        self.sep_id = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
        self.pad_id = tokenizer.pad_token_id
        self._cache: dict[str, list[tuple[int, int, int]]] = {}

    def words(self) -> frozenset[str]:
        """The vocabulary's pieces of 2-4 Chinese characters: a word list for the span rules (the model
        itself reads one piece per Chinese character, see pre_tokenize)."""
        vocab = self.tokenizer.backend_tokenizer.get_vocab()
        return frozenset(w for p in vocab if 2 <= len(w := p.lstrip("▁")) <= 4 and all(is_han(c) for c in w))

    def word_pieces(self, word: str) -> list[tuple[int, int, int]]:
        """(token id, start, end) of the pieces of one word, offsets relative to the word."""
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        norm = self._normalizer.normalize_str(word) if self._normalizer else word
        norm = norm.strip() or word
        tokens = self._model.tokenize(norm)
        pieces: list[tuple[int, int, int]] = []
        if len(norm) == len(word) and tokens:
            pos = 0
            for tok in tokens:
                length = len(tok.value.removeprefix("##").lstrip("▁")) or 1
                pieces.append((tok.id, min(pos, len(word) - 1), min(pos + length, len(word))))
                pos += length
            pieces[-1] = (pieces[-1][0], pieces[-1][1], len(word))
        else:  # normalisation changed the length: the whole word maps to its first piece
            pieces = [(tokens[0].id if tokens else self.unk_id, 0, len(word))]
        self._cache[word] = pieces
        return pieces

    def pieces(self, text: str, start: int = 0, end: int | None = None) -> list[Piece]:
        simplified = to_simplified(text[start : len(text) if end is None else end])
        out = []
        for ws, we in pre_tokenize(text, start, end):
            word = simplified[ws - start : we - start]
            out.extend(Piece(tid, ws + a, ws + b) for tid, a, b in self.word_pieces(word))
        return out


def bio_labels(pieces: Sequence[Piece], spans: Sequence[Span]) -> list[str]:
    """B-/I-/O per piece from character spans (pieces never straddle a span boundary)."""
    labels = ["O"] * len(pieces)
    starts = {s.start: s for s in spans}
    active: Span | None = None
    for i, p in enumerate(pieces):
        if p.start in starts:
            active = starts[p.start]
            labels[i] = f"B-{active.label}"
        elif active is not None and active.start <= p.start < active.end:
            labels[i] = f"I-{active.label}"
        else:
            active = None
    return labels


def boundary_violations(pieces: Sequence[Piece], spans: Sequence[Span]) -> int:
    """Gold boundaries that fall strictly inside a piece (must be 0)."""
    bounds = {b for s in spans for b in (s.start, s.end)}
    return sum(1 for p in pieces for b in bounds if p.start < b < p.end)


def windows(pieces: Sequence[Piece], max_pieces: int, stride: int) -> Iterator[tuple[int, int]]:
    """Overlapping [a, b) index ranges covering all pieces; consecutive windows overlap by
    ``max_pieces - stride`` pieces."""
    n = len(pieces)
    if n == 0:
        return
    a = 0
    while True:
        b = min(n, a + max_pieces)
        yield a, b
        if b == n:
            return
        a += stride


def document_windows(
    doc: AnnotatedDoc, tok: PieceTokenizer, max_length: int, stride: int, with_labels: bool = True
) -> list[Window]:
    """Windows per paragraph (never across a line break), ``max_length`` including [CLS]/[SEP]."""
    result = []
    max_pieces = max_length - 2
    for para in paragraphs(doc.text):
        pieces = tok.pieces(doc.text, para.start, para.end)
        spans = [s for s in doc.spans if para.start <= s.start < para.end]
        labels = bio_labels(pieces, spans) if with_labels else None
        for a, b in windows(pieces, max_pieces, min(stride, max_pieces)):
            result.append(Window(doc.doc_id, tuple(pieces[a:b]), tuple(labels[a:b]) if labels else None))
    return result


def decode_spans(text: str, pieces: Sequence[Piece], labels: Sequence[str], scores: Sequence[float]) -> list[Span]:
    """BIO piece labels → character spans (an I- without a matching B- starts a span)."""
    spans: list[Span] = []
    cur: list[Any] | None = None  # [label, start, end, score_sum, count]

    def close() -> None:
        if cur is not None:
            start, end = cur[1], cur[2]
            spans.append(Span(f"T{len(spans) + 1}", start, end, cur[0], text[start:end], round(cur[3] / cur[4], 4)))

    for p, lab, sc in zip(pieces, labels, scores, strict=True):
        kind, _, ent = lab.partition("-")
        if kind == "I" and cur is not None and cur[0] == ent:
            cur[2] = p.end
            cur[3] += sc
            cur[4] += 1
            continue
        close()
        cur = [ent, p.start, p.end, sc, 1] if kind in ("B", "I") else None
    close()
    return spans


def to_hf_dataset(wins: Sequence[Window], tok: PieceTokenizer, label2id: dict[str, int]):  # noqa: ANN201
    """A ``datasets.Dataset`` of input_ids / attention_mask / labels ([CLS]/[SEP] get -100)."""
    from datasets import Dataset

    rows: dict[str, list] = {"input_ids": [], "attention_mask": [], "labels": []}
    for w in wins:
        ids = [tok.cls_id, *(p.token_id for p in w.pieces), tok.sep_id]
        rows["input_ids"].append(ids)
        rows["attention_mask"].append([1] * len(ids))
        rows["labels"].append([-100, *(label2id[lab] for lab in (w.labels or ())), -100])
    return Dataset.from_dict(rows)
