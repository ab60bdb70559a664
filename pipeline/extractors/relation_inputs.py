"""Inputs of the learned relation linkers: pair features, typed-marker inputs, biaffine tensors."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.core.alignment import Piece, PieceTokenizer, windows
from pipeline.core.annotations import Span
from pipeline.core.documents import SentenceIndex, to_simplified
from pipeline.core.schema import load_schema
from pipeline.extractors.relations import RELATION_TYPES, Candidate

# From configs/schema.yaml; their order indexes the saved models' embeddings, so the schema's order is fixed.
RELATION_LABELS = tuple(RELATION_TYPES)
ENTITY_LABELS = load_schema().entity_labels
HEAD_MARKERS = tuple(f"[H:{lab}]" for lab in dict.fromkeys(head for head, _ in RELATION_TYPES.values()))
TAIL_MARKERS = tuple(f"[T:{lab}]" for lab in dict.fromkeys(t for _, tails in RELATION_TYPES.values() for t in tails))
MARKERS = (*HEAD_MARKERS, "[/H]", *TAIL_MARKERS, "[/T]")


def _bucket(n: int, edges: Sequence[int]) -> int:
    return next((i for i, e in enumerate(edges) if n <= e), len(edges))


DIST_EDGES = (0, 2, 4, 8, 16, 32, 64, 128, 256)


@dataclass(frozen=True)
class PairFeatures:
    """Discrete features of a candidate pair (biaffine variant)."""

    label: int
    distance: int  # signed bucket of tail.start - head.start
    same_sentence: int
    between: int  # spans of the head's label between head and tail (bucketed 0..3)
    tail_rank: int  # spans of the tail's label before the tail in the window (bucketed 0..3)
    cue: int  # responsible_for: the AGENCY lies in an explicit assignment (牵头/负责/配合…, 责任单位：)

    N_DIST = 2 * (len(DIST_EDGES) + 1)


def pair_features(
    c: Candidate, starts: dict[str, list[int]], index: SentenceIndex, regions: Sequence[tuple[int, int]] = ()
) -> PairFeatures:
    """``starts``: sorted span starts per entity label (see label_starts); ``regions``: the
    assignment regions of the text (see assignment_spans)."""
    d = c.tail.start - c.head.start
    dist = _bucket(abs(d), DIST_EDGES) + (len(DIST_EDGES) + 1 if d < 0 else 0)
    if c.label == "responsible_for":  # the schema links to the item's FIRST ACTION wherever it is: rank, not distance
        dist = 0
    lo, hi = sorted((c.head.start, c.tail.start))
    heads = starts.get(c.head.label, [])
    between = max(0, bisect_left(heads, hi) - bisect_right(heads, lo))
    tails = starts.get(c.tail.label, [])
    rank = max(0, bisect_left(tails, c.tail.start) - bisect_left(tails, c.window[0]))
    return PairFeatures(
        RELATION_LABELS.index(c.label),
        dist,
        int(index.of(c.head.start) == index.of(c.tail.start)),
        min(between, 3),
        min(rank, 3),
        int(c.label == "responsible_for" and any(a <= c.head.start and c.head.end <= b for a, b in regions)),
    )


def assignment_spans(text: str) -> list[tuple[int, int]]:
    """Character ranges that assign responsibility, by the rules linker's patterns (a feature here)."""
    from pipeline.core.documents import task_items
    from pipeline.extractors.relations import assignment_regions

    simplified = to_simplified(text)
    return [r for item in task_items(simplified) for r in assignment_regions(simplified, item)]


def label_starts(spans: Sequence[Span]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for s in sorted(spans, key=lambda s: s.start):
        out.setdefault(s.label, []).append(s.start)
    return out


@dataclass(frozen=True)
class MarkedInput:
    ids: list[int]
    head_pos: int  # index of the head's opening marker
    tail_pos: int


def insert_markers(
    pieces: Sequence[Piece], head: Span, tail: Span, marker_ids: dict[str, int]
) -> tuple[list[int], int, int]:
    """Piece ids with typed markers around the head and tail spans (by character offsets);
    returns the ids and the positions of the two opening markers."""
    opens = {"H": f"[H:{head.label}]", "T": f"[T:{tail.label}]"}
    spans = {"H": head, "T": tail}
    opened: set[str] = set()
    closed: set[str] = set()
    ids: list[int] = []
    pos = {"H": -1, "T": -1}

    def close_done(p_start: int) -> None:
        for k in ("H", "T"):
            if k in opened and k not in closed and spans[k].end <= p_start:
                ids.append(marker_ids[f"[/{k}]"])
                closed.add(k)

    for p in pieces:
        close_done(p.start)
        for k in ("H", "T"):
            if k not in opened and spans[k].start <= p.start:
                pos[k] = len(ids)
                ids.append(marker_ids[opens[k]])
                opened.add(k)
        ids.append(p.token_id)
    close_done(10**12)
    for k in ("H", "T"):  # a span after the last piece (never for spans inside the text)
        if k not in opened:
            pos[k] = len(ids)
            ids += [marker_ids[opens[k]], marker_ids[f"[/{k}]"]]
    return ids, pos["H"], pos["T"]


def trim(ids: list[int], head_pos: int, tail_pos: int, budget: int) -> tuple[list[int], int, int]:
    """At most ``budget`` ids keeping both markers: one window around both when they are close,
    else half the budget around each (the text between them is cut)."""
    if len(ids) <= budget:
        return ids, head_pos, tail_pos
    lo, hi = min(head_pos, tail_pos), max(head_pos, tail_pos)
    if hi - lo < budget - 8:
        start = max(0, min(lo - (budget - (hi - lo)) // 2, len(ids) - budget))
        return ids[start : start + budget], head_pos - start, tail_pos - start
    half = budget // 2
    a0 = max(0, lo - half // 4)
    b0 = max(a0 + half, min(len(ids), hi + half - half // 4) - (budget - half))
    first, second = ids[a0 : a0 + half], ids[b0 : b0 + budget - half]
    shift_lo, shift_hi = a0, b0 - half
    new_lo, new_hi = lo - shift_lo, hi - shift_hi
    return first + second, *((new_lo, new_hi) if head_pos <= tail_pos else (new_hi, new_lo))


def marked_input(
    text: str, c: Candidate, tok: PieceTokenizer, marker_ids: dict[str, int], max_length: int
) -> MarkedInput:
    """The pair's window text (widened to cover both spans), markers inserted, [CLS]/[SEP] added."""
    lo = min(c.window[0], c.head.start, c.tail.start)
    hi = max(c.window[1], c.head.end, c.tail.end)
    ids, h, t = insert_markers(tok.pieces(text, lo, hi), c.head, c.tail, marker_ids)
    ids, h, t = trim(ids, h, t, max_length - 2)
    return MarkedInput([tok.cls_id, *ids, tok.sep_id], h + 1, t + 1)


@dataclass
class EncodedSpans:
    """Encoder windows of a text region and, per span, (window, first piece, end piece)."""

    windows: list[list[int]]  # piece ids per window, without [CLS]/[SEP]
    where: dict[str, tuple[int, int, int]]


def encode_spans(
    text: str, paras: Sequence, spans: Sequence[Span], tok: PieceTokenizer, max_length: int, stride: int
) -> EncodedSpans:
    """Windows per paragraph (as the NER model); each span is read in the window where its first
    piece is farthest from an edge."""
    max_pieces = max_length - 2
    wins: list[list[int]] = []
    where: dict[str, tuple[int, int, int]] = {}
    spans = sorted(spans, key=lambda s: s.start)
    for para in paras:
        inside = [s for s in spans if para.start <= s.start < para.end]
        pieces = tok.pieces(text, para.start, para.end)
        if not pieces:
            continue
        ranges = list(windows(pieces, max_pieces, min(stride, max_pieces)))
        first = len(wins)
        wins += [[p.token_id for p in pieces[a:b]] for a, b in ranges]
        starts = [p.start for p in pieces]
        for s in inside:
            i = next((k for k, st in enumerate(starts) if st >= s.start), len(pieces) - 1)
            j = next((k for k, p in enumerate(pieces) if p.start >= s.end), len(pieces))
            best = max(range(len(ranges)), key=lambda w: min(i - ranges[w][0], ranges[w][1] - 1 - i))
            a, b = ranges[best]
            where[s.id] = (first + best, i - a, max(i - a + 1, min(j, b) - a))
    return EncodedSpans(wins, where)


def biaffine_tensors(
    text: str,
    paras: Sequence,
    spans: Sequence[Span],
    cands: Sequence[Candidate],
    tok: PieceTokenizer,
    cfg_max_length: int,
    stride: int,
    gold: set | None = None,
) -> tuple[dict[str, Any], list[Candidate]] | None:
    """Model inputs for one region of a document and the candidates they score (None when there is
    no candidate pair)."""
    import torch

    enc = encode_spans(text, paras, spans, tok, cfg_max_length, stride)
    cands = [c for c in cands if c.head.id in enc.where and c.tail.id in enc.where]
    if not cands or not enc.windows:
        return None
    width = max(len(w) for w in enc.windows) + 2
    ids = torch.full((len(enc.windows), width), tok.pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for r, w in enumerate(enc.windows):
        ids[r, : len(w) + 2] = torch.tensor([tok.cls_id, *w, tok.sep_id])
        mask[r, : len(w) + 2] = 1
    used = sorted({c.head.id for c in cands} | {c.tail.id for c in cands})
    row = {sid: k for k, sid in enumerate(used)}
    by_id = {s.id: s for s in spans}
    index = SentenceIndex(text)
    starts = label_starts(spans)
    regions = assignment_spans(text) if any(c.label == "responsible_for" for c in cands) else []
    feats = [pair_features(c, starts, index, regions) for c in cands]
    out = {
        "input_ids": ids,
        "attention_mask": mask,
        "span_win": torch.tensor([enc.where[s][0] for s in used]),
        "span_a": torch.tensor([enc.where[s][1] for s in used]),
        "span_b": torch.tensor([enc.where[s][2] for s in used]),
        "span_type": torch.tensor([ENTITY_LABELS.index(by_id[s].label) for s in used]),
        "pair_head": torch.tensor([row[c.head.id] for c in cands]),
        "pair_tail": torch.tensor([row[c.tail.id] for c in cands]),
        "feats": torch.tensor([[f.label, f.distance, f.same_sentence, f.between, f.tail_rank, f.cue] for f in feats]),
    }
    if gold is not None:
        out["labels"] = torch.tensor([float((c.head.id, c.tail.id, c.label) in gold) for c in cands])
    return out, cands


def collate_marker(pad_id: int):  # noqa: ANN202
    import torch

    def collate(features: list[dict[str, Any]]) -> dict[str, Any]:
        width = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), width), pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for r, f in enumerate(features):
            ids[r, : len(f["input_ids"])] = torch.tensor(f["input_ids"])
            mask[r, : len(f["input_ids"])] = 1
        return {
            "input_ids": ids,
            "attention_mask": mask,
            "head_pos": torch.tensor([f["head_pos"] for f in features]),
            "tail_pos": torch.tensor([f["tail_pos"] for f in features]),
            "relation": torch.tensor([f["relation"] for f in features]),
            "labels": torch.tensor([f["labels"] for f in features]),
        }

    return collate
