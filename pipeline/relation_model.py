"""Learned relation linkers over the candidate pairs of pipeline.relations.

Two variants share the base encoder family of the NER model (lower layers of a BERT checkpoint):

- ``marker``: one encoder pass per candidate pair. Typed markers ([H:VALUE] … [/H],
  [T:INDICATOR] … [/T]) are inserted around the two spans in their window's text and the pair is
  classified from the states of the two opening markers.
- ``biaffine``: one encoder pass per document. Every paragraph is encoded once (windows as in the
  NER model), each span is the mean of its piece states plus a type embedding, and every candidate
  pair is scored by a per-relation biaffine form plus small pair features (distance, same sentence,
  spans in between, rank of the tail in the window).

Both are trained with ``Trainer`` on gold entities, negatives being the other candidates, with
early stopping on dev pair F1. Deadlines reach later sentences through the separate rule step
``relations.inherit_deadlines``, never through the model.
"""

from __future__ import annotations

import json
import logging
import random
import time
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from pipeline.annotations import AnnotatedDoc, Relation, Span, load_gold_dir, write_atomic
from pipeline.dataset import Piece, PieceTokenizer, windows
from pipeline.documents import is_heading, paragraphs, to_simplified
from pipeline.relations import RELATION_TYPES, Candidate, SentenceIndex, candidate_pairs, inherit_deadlines

log = logging.getLogger(__name__)
REL_META = "planie-rel.json"
RELATION_LABELS = tuple(RELATION_TYPES)
ENTITY_LABELS = ("AGENCY", "INDICATOR", "VALUE", "DEADLINE", "ACTION")
HEAD_MARKERS = tuple(f"[H:{lab}]" for lab in ("VALUE", "DEADLINE", "AGENCY"))
TAIL_MARKERS = tuple(f"[T:{lab}]" for lab in ("INDICATOR", "VALUE", "ACTION"))
MARKERS = (*HEAD_MARKERS, "[/H]", *TAIL_MARKERS, "[/T]")


@dataclass
class RelConfig:
    variant: str = "biaffine"  # biaffine (one pass per document) | marker (one pass per pair)
    base: str = "models/base/e5-small-zh"
    annotations: str = "annotations"
    splits: str = "configs/splits.yaml"
    output_dir: str = "runs/rel"
    num_layers: int = 4  # keep only the lower N encoder layers of the base
    max_length: int = 128  # pieces per encoder input, [CLS]/[SEP] included
    stride: int = 96  # biaffine: window step inside long paragraphs
    chunk_windows: int = 12  # biaffine: at most this many windows per training example
    epochs: float = 10
    batch_size: int = 16  # marker: pairs per step; biaffine: one chunk per step
    learning_rate: float = 1e-4
    head_learning_rate: float = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    negative_share: float = 1.0  # marker: share of responsible_for negatives kept for training
    pair_dim: int = 128
    dropout: float = 0.1
    freeze_embeddings: bool = True  # marker rows stay trainable
    bf16: bool = True
    early_stopping_patience: int = 3
    seed: int = 13
    max_steps: int = -1
    threshold: float = 0.5
    train_docs: list[str] = field(default_factory=list)
    test_docs: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: str | Path, **overrides: Any) -> RelConfig:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        unknown = set(raw) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"{path}: unknown config field(s): {', '.join(sorted(unknown))}")
        raw.update({k: v for k, v in overrides.items() if v is not None})
        cfg = cls(**raw)
        if cfg.variant not in ("biaffine", "marker"):
            raise ValueError(f"variant must be 'biaffine' or 'marker', got {cfg.variant!r}")
        return cfg


# ------------------------------------------------------------------------------------------ data


def with_relations(part: AnnotatedDoc, full: AnnotatedDoc) -> AnnotatedDoc:
    """``part`` (a train or dev block of ``full``) with the relations whose two ends it holds."""
    from dataclasses import replace

    ids = {s.id for s in part.spans}
    return replace(part, relations=tuple(r for r in full.relations if r.head in ids and r.tail in ids))


def relation_splits(cfg: RelConfig) -> tuple[list[AnnotatedDoc], list[AnnotatedDoc], list[AnnotatedDoc]]:
    """train / dev / test documents as for the NER model (pipeline.ner.make_splits), relations kept."""
    from pipeline.ner import NerConfig, make_splits

    full = {d.doc_id: d for d in load_gold_dir([cfg.annotations])}
    ner_cfg = NerConfig(
        annotations=cfg.annotations, splits=cfg.splits, train_docs=cfg.train_docs, test_docs=cfg.test_docs
    )
    splits = make_splits(ner_cfg)
    train = [with_relations(d, full[d.doc_id]) for d in splits.train]
    dev = [with_relations(d, full[d.doc_id]) for d in splits.dev]
    return train, dev, list(splits.test)


def gold_keys(doc: AnnotatedDoc) -> set[tuple[str, str, str]]:
    return {(r.head, r.tail, r.label) for r in doc.relations}


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
    from pipeline.documents import task_items
    from pipeline.relations import assignment_regions

    simplified = to_simplified(text)
    return [r for item in task_items(simplified) for r in assignment_regions(simplified, item)]


def label_starts(spans: Sequence[Span]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for s in sorted(spans, key=lambda s: s.start):
        out.setdefault(s.label, []).append(s.start)
    return out


# ------------------------------------------------------------------------------- marker inputs


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


# ------------------------------------------------------------------------------------- models


def _encoder(base: str, num_layers: int, dropout: float):  # noqa: ANN202
    from transformers import AutoModel

    enc = AutoModel.from_pretrained(base, hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    if num_layers and num_layers < len(enc.encoder.layer):
        enc.encoder.layer = enc.encoder.layer[:num_layers]
        enc.config.num_hidden_layers = num_layers
    return enc


def balanced_bce(logits, labels, relation):  # noqa: ANN001, ANN201
    """Binary cross-entropy averaged per relation label, then over the labels present: the rare
    value_of / deadline_of pairs weigh as much as the many responsible_for pairs."""
    import torch

    per = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels.float(), reduction="none")
    return torch.stack([per[relation == k].mean() for k in relation.unique()]).mean()


def build_model(variant: str, encoder, pair_dim: int = 128, dropout: float = 0.1):  # noqa: ANN001, ANN201
    import torch
    from torch import nn

    hidden = encoder.config.hidden_size

    class MarkerClassifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder
            self.head = nn.Sequential(
                nn.Dropout(dropout), nn.Linear(2 * hidden, pair_dim), nn.GELU(), nn.Linear(pair_dim, 1)
            )

        def forward(self, input_ids, attention_mask, head_pos, tail_pos, relation, labels=None):  # noqa: ANN001, ANN202
            states = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            rows = torch.arange(states.shape[0], device=states.device)
            pair = torch.cat([states[rows, head_pos], states[rows, tail_pos]], -1).float()
            logits = self.head(pair).squeeze(-1)
            out = {"logits": logits}
            if labels is not None:
                out["loss"] = balanced_bce(logits, labels, relation)
            return out

    class BiaffinePairScorer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder
            n_lab = len(RELATION_LABELS)
            self.type_emb = nn.Embedding(len(ENTITY_LABELS), hidden)
            self.head_mlp = nn.Sequential(nn.Linear(hidden, pair_dim), nn.GELU(), nn.Dropout(dropout))
            self.tail_mlp = nn.Sequential(nn.Linear(hidden, pair_dim), nn.GELU(), nn.Dropout(dropout))
            self.bilinear = nn.Parameter(torch.zeros(n_lab, pair_dim + 1, pair_dim + 1))
            self.dist = nn.Embedding(PairFeatures.N_DIST, n_lab)
            self.same = nn.Embedding(2, n_lab)
            self.between = nn.Embedding(4, n_lab)
            self.rank = nn.Embedding(4, n_lab)
            self.cue = nn.Embedding(2, n_lab)

        def encode(self, input_ids, attention_mask):  # noqa: ANN001, ANN202
            return self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

        def span_reps(self, states, span_win, span_a, span_b, span_type):  # noqa: ANN001, ANN202
            """Mean of the span's piece states ([a, b) in its window, +1 for [CLS]) plus its type."""
            cs = torch.nn.functional.pad(states.float().cumsum(1), (0, 0, 1, 0))  # cs[:, k] = sum of states[:, :k]
            summed = cs[span_win, span_b + 1] - cs[span_win, span_a + 1]
            return summed / (span_b - span_a).clamp(min=1)[:, None].float() + self.type_emb(span_type)

        def pair_logits(self, reps, pair_head, pair_tail, feats):  # noqa: ANN001, ANN202
            h = self.head_mlp(reps[pair_head]).float()
            t = self.tail_mlp(reps[pair_tail]).float()
            ones = torch.ones_like(h[:, :1])
            h, t = torch.cat([h, ones], -1), torch.cat([t, ones], -1)
            lab = feats[:, 0]
            score = torch.zeros(len(lab), device=h.device)
            for k in range(self.bilinear.shape[0]):  # one matmul per relation label
                rows_k = (lab == k).nonzero(as_tuple=True)[0]
                if len(rows_k):
                    score = score.index_put(
                        (rows_k,), ((h[rows_k] @ self.bilinear[k].float()) * t[rows_k]).sum(-1).float()
                    )
            rows = torch.arange(len(lab), device=lab.device)
            for emb, col in ((self.dist, 1), (self.same, 2), (self.between, 3), (self.rank, 4), (self.cue, 5)):
                score = score + emb(feats[:, col])[rows, lab]
            return score

        def forward(  # noqa: ANN202
            self,
            input_ids,
            attention_mask,
            span_win,
            span_a,
            span_b,
            span_type,
            pair_head,
            pair_tail,
            feats,
            labels=None,  # noqa: ANN001
        ):
            states = self.encode(input_ids, attention_mask)
            reps = self.span_reps(states, span_win, span_a, span_b, span_type)
            logits = self.pair_logits(reps, pair_head, pair_tail, feats)
            out = {"logits": logits}
            if labels is not None:
                out["loss"] = balanced_bce(logits, labels, feats[:, 0])
            return out

    return MarkerClassifier() if variant == "marker" else BiaffinePairScorer()


# --------------------------------------------------------------------------- biaffine examples


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


def chunks(text: str, max_windows: int, max_length: int, stride: int, tok: PieceTokenizer) -> list[list]:
    """Paragraph groups for training: a new group at each heading line or when it gets too long."""
    groups: list[list] = [[]]
    size = 0
    max_pieces = max_length - 2
    for para in paragraphs(text):
        n = max(1, len(list(windows(tok.pieces(text, para.start, para.end), max_pieces, min(stride, max_pieces)))))
        if groups[-1] and (is_heading(to_simplified(para.text)) or size + n > max_windows):
            groups.append([])
            size = 0
        groups[-1].append(para)
        size += n
    return [g for g in groups if g]


def biaffine_examples(docs: Sequence[AnnotatedDoc], tok: PieceTokenizer, cfg: RelConfig) -> list[dict[str, Any]]:
    examples = []
    for doc in docs:
        lo, hi = doc.meta.get("region", (0, len(doc.text)))
        gold = gold_keys(doc)
        cands = candidate_pairs(doc.text, doc.spans)
        for group in chunks(doc.text, cfg.chunk_windows, cfg.max_length, cfg.stride, tok):
            if not lo <= group[0].start < hi:
                continue
            a, b = group[0].start, group[-1].end
            spans = [s for s in doc.spans if a <= s.start < b]
            ex = biaffine_tensors(doc.text, group, spans, cands, tok, cfg.max_length, cfg.stride, gold)
            if ex is not None:
                examples.append(ex[0])
    return examples


def marker_examples(
    docs: Sequence[AnnotatedDoc], tok: PieceTokenizer, marker_ids: dict[str, int], cfg: RelConfig, sample: bool
) -> list[dict[str, Any]]:
    rng = random.Random(cfg.seed)
    rows = []
    for doc in docs:
        gold = gold_keys(doc)
        for c in candidate_pairs(doc.text, doc.spans):
            y = (c.head.id, c.tail.id, c.label) in gold
            if sample and not y and c.label == "responsible_for" and rng.random() > cfg.negative_share:
                continue
            m = marked_input(doc.text, c, tok, marker_ids, cfg.max_length)
            rows.append(
                {
                    "input_ids": m.ids,
                    "head_pos": m.head_pos,
                    "tail_pos": m.tail_pos,
                    "relation": RELATION_LABELS.index(c.label),
                    "labels": float(y),
                }
            )
    return rows


class _ListDataset:
    def __init__(self, items: list) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):  # noqa: ANN204
        return self.items[i]


def _collate_single(features: list[dict[str, Any]]) -> dict[str, Any]:
    return features[0]


def _collate_marker(pad_id: int):  # noqa: ANN202
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


def _pair_f1(pred) -> dict[str, float]:  # noqa: ANN001
    import numpy as np

    logits, labels = pred
    logits, labels = (
        np.concatenate([np.ravel(x) for x in np.atleast_1d(logits)])
        if isinstance(logits, (list, tuple))
        else np.ravel(logits),
        np.ravel(labels),
    )
    keep = labels != -100
    p, g = logits[keep] > 0, labels[keep] > 0.5
    tp = float((p & g).sum())
    prec = tp / max(p.sum(), 1)
    rec = tp / max(g.sum(), 1)
    return {"precision": prec, "recall": rec, "f1": 2 * prec * rec / (prec + rec) if prec + rec else 0.0}


# ----------------------------------------------------------------------------------- training


def train_relations(cfg: RelConfig, resume: bool = False) -> Path:
    """Train the configured variant; save the best (dev pair F1) to ``output_dir/model``."""
    import torch
    from transformers import AutoTokenizer, EarlyStoppingCallback, Trainer, TrainingArguments, set_seed

    from pipeline.ner import EPOCHS_KEEP_BEST_DEV_F1, _last_checkpoint, file_sha256, git_commit

    set_seed(cfg.seed)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    train_docs, dev_docs, test_docs = relation_splits(cfg)
    tokenizer = AutoTokenizer.from_pretrained(cfg.base)
    tok = PieceTokenizer(tokenizer)
    encoder = _encoder(cfg.base, cfg.num_layers, cfg.dropout)
    vocab = encoder.config.vocab_size
    marker_ids: dict[str, int] = {}
    if cfg.variant == "marker":
        encoder.resize_token_embeddings(vocab + len(MARKERS))
        marker_ids = {m: vocab + i for i, m in enumerate(MARKERS)}
        train_set = marker_examples(train_docs, tok, marker_ids, cfg, sample=True)
        dev_set = marker_examples(dev_docs, tok, marker_ids, cfg, sample=False)
        collate = _collate_marker(tok.pad_id)
        batch = cfg.batch_size
    else:
        train_set = biaffine_examples(train_docs, tok, cfg)
        dev_set = biaffine_examples(dev_docs, tok, cfg)
        collate = _collate_single
        batch = 1
    log.info("%s: %d train and %d dev examples", cfg.variant, len(train_set), len(dev_set))
    model = build_model(cfg.variant, encoder, cfg.pair_dim, cfg.dropout)
    if cfg.freeze_embeddings:
        emb = encoder.embeddings.word_embeddings.weight
        if cfg.variant == "marker":  # only the marker rows learn
            emb.register_hook(lambda g: torch.cat([torch.zeros_like(g[:vocab]), g[vocab:]]))
        else:
            emb.requires_grad_(False)
    enc_params = [p for n, p in model.named_parameters() if n.startswith("encoder.") and p.requires_grad]
    head_params = [p for n, p in model.named_parameters() if not n.startswith("encoder.")]
    optimizer = torch.optim.AdamW(
        [{"params": enc_params, "lr": cfg.learning_rate}, {"params": head_params, "lr": cfg.head_learning_rate}],
        weight_decay=cfg.weight_decay,
    )
    args = TrainingArguments(
        output_dir=str(out / "checkpoints"),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=batch,
        per_device_eval_batch_size=batch * (2 if batch > 1 else 1),
        warmup_steps=cfg.warmup_ratio,
        lr_scheduler_type="linear",
        **EPOCHS_KEEP_BEST_DEV_F1,
        seed=cfg.seed,
        use_cpu=True,
        dataloader_num_workers=0,
        bf16=cfg.bf16,
        remove_unused_columns=False,
        label_names=["labels"],
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=_ListDataset(train_set),
        eval_dataset=_ListDataset(dev_set),
        data_collator=collate,
        compute_metrics=_pair_f1,
        optimizers=(optimizer, None),
        callbacks=[EarlyStoppingCallback(early_stopping_patience=cfg.early_stopping_patience)],
    )
    started = time.time()
    last = _last_checkpoint(out / "checkpoints") if resume else None
    trainer.train(resume_from_checkpoint=str(last) if last else None)
    seconds = time.time() - started
    model_dir = save_relation_model(model, tokenizer, out / "model", cfg, marker_ids)
    meta_extra = {"train_docs": [d.doc_id for d in train_docs], "test_docs": [d.doc_id for d in test_docs]}
    meta = json.loads((model_dir / REL_META).read_text(encoding="utf-8"))
    write_atomic(model_dir / REL_META, json.dumps({**meta, **meta_extra}, ensure_ascii=False, indent=2) + "\n")
    thresholds = tune_thresholds(model_dir, dev_docs) if dev_docs else {}
    run = {
        "config": asdict(cfg),
        "git_commit": git_commit(),
        "data": {f.name: file_sha256(f) for f in sorted(Path(cfg.annotations).glob("*.json"))},
        "train_seconds": round(seconds, 1),
        "examples": {"train": len(train_set), "dev": len(dev_set)},
        "log_history": trainer.state.log_history,
        "best_dev": trainer.state.best_metric,
        "thresholds": thresholds,
    }
    write_atomic(out / "run.json", json.dumps(run, ensure_ascii=False, indent=2) + "\n")
    return model_dir


def save_relation_model(
    model,
    tokenizer,
    model_dir: Path,
    cfg: RelConfig,
    marker_ids: dict[str, int],  # noqa: ANN001
    fp16: bool = False,
) -> Path:
    import torch
    from safetensors.torch import save_file

    model_dir.mkdir(parents=True, exist_ok=True)
    enc = model.encoder.half() if fp16 else model.encoder
    enc.save_pretrained(str(model_dir / "encoder"))
    tokenizer.save_pretrained(str(model_dir / "encoder"))
    head = {
        k: v.detach().to(torch.float16 if fp16 else torch.float32).contiguous()
        for k, v in model.state_dict().items()
        if not k.startswith("encoder.")
    }
    save_file(head, str(model_dir / "head.safetensors"))
    meta = {
        "variant": cfg.variant,
        "max_length": cfg.max_length,
        "stride": cfg.stride,
        "pair_dim": cfg.pair_dim,
        "threshold": cfg.threshold,
        "marker_ids": marker_ids,
        "base": cfg.base,
        "num_layers": cfg.num_layers,
        "torch": torch.__version__,
    }
    write_atomic(model_dir / REL_META, json.dumps(meta, ensure_ascii=False, indent=2) + "\n")
    return model_dir


# ---------------------------------------------------------------------------------- inference


def decode(cands: Sequence[Candidate], probs: Sequence[float], threshold: float | dict[str, float]) -> list[Relation]:
    """Pairs above the threshold (one number, or one per relation label), with the schema's
    functional constraints: one deadline per VALUE or ACTION, one VALUE per INDICATOR, one ACTION
    per AGENCY (the highest-scoring pair wins)."""
    best: dict[tuple[str, str], tuple[float, Candidate]] = {}
    for c, p in zip(cands, probs, strict=True):
        if p < (threshold.get(c.label, 0.5) if isinstance(threshold, dict) else threshold):
            continue
        key = (c.label, c.head.id) if c.label == "responsible_for" else (c.label, c.tail.id)
        if key not in best or p > best[key][0]:
            best[key] = (p, c)
    rels = [Relation(c.head.id, c.tail.id, c.label, round(p, 4)) for p, c in best.values()]
    return sorted(rels, key=lambda r: (RELATION_LABELS.index(r.label), r.head, r.tail))


class RelationModel:
    """A trained relation linker (either variant) that links entity spans of whole documents."""

    def __init__(self, model_dir: str | Path, batch_size: int = 32, inherit: bool = True) -> None:
        import torch
        from safetensors.torch import load_file
        from transformers import AutoModel, AutoTokenizer

        self.model_dir = Path(model_dir)
        meta_path = self.model_dir / REL_META
        if not meta_path.exists():
            raise FileNotFoundError(f"{self.model_dir}: not a planie relation model ({REL_META} missing)")
        self.meta = json.loads(meta_path.read_text(encoding="utf-8"))
        self.variant = self.meta["variant"]
        self.tok = PieceTokenizer(AutoTokenizer.from_pretrained(str(self.model_dir / "encoder")))
        encoder = AutoModel.from_pretrained(str(self.model_dir / "encoder")).float()
        self.model = build_model(self.variant, encoder, self.meta["pair_dim"])
        head = {k: v.float() for k, v in load_file(str(self.model_dir / "head.safetensors")).items()}
        missing = self.model.load_state_dict(head, strict=False).missing_keys
        if any(not k.startswith("encoder.") for k in missing):
            raise ValueError(f"{self.model_dir}: head weights missing: {missing}")
        self.model.eval()
        self.batch_size = batch_size
        self.inherit = inherit
        self.threshold: float | dict[str, float] = self.meta.get("thresholds") or float(self.meta.get("threshold", 0.5))
        self._torch = torch

    @property
    def name(self) -> str:
        return f"{self.variant}:{self.model_dir.name}" + ("+inherit" if self.inherit else "")

    def probabilities(self, text: str, spans: Sequence[Span]) -> tuple[list[Candidate], list[float]]:
        cands = candidate_pairs(text, spans)
        if not cands:
            return [], []
        if self.variant == "marker":
            return cands, self._marker_probs(text, cands)
        return cands, self._biaffine_probs(text, spans, cands)

    def link(self, text: str, spans: Sequence[Span]) -> list[Relation]:
        cands, probs = self.probabilities(text, spans)
        rels = decode(cands, probs, self.threshold)
        return inherit_deadlines(text, spans, rels) if self.inherit else rels

    def _marker_probs(self, text: str, cands: Sequence[Candidate]) -> list[float]:
        torch = self._torch
        marker_ids = self.meta["marker_ids"]
        inputs = [marked_input(text, c, self.tok, marker_ids, self.meta["max_length"]) for c in cands]
        order = sorted(range(len(inputs)), key=lambda i: len(inputs[i].ids))
        probs = [0.0] * len(inputs)
        collate = _collate_marker(self.tok.pad_id)
        for k in range(0, len(order), self.batch_size):
            rows = order[k : k + self.batch_size]
            feats = [
                {
                    "input_ids": inputs[i].ids,
                    "head_pos": inputs[i].head_pos,
                    "tail_pos": inputs[i].tail_pos,
                    "relation": RELATION_LABELS.index(cands[i].label),
                    "labels": 0.0,
                }
                for i in rows
            ]
            batch = collate(feats)
            batch.pop("labels")
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
                logits = self.model(**batch)["logits"]
            for i, p in zip(rows, torch.sigmoid(logits.float()).tolist(), strict=True):
                probs[i] = p
        return probs

    def _biaffine_probs(self, text: str, spans: Sequence[Span], cands: Sequence[Candidate]) -> list[float]:
        torch = self._torch
        built = biaffine_tensors(
            text, paragraphs(text), spans, cands, self.tok, self.meta["max_length"], self.meta["stride"]
        )
        if built is None:
            return [0.0] * len(cands)
        x, scored = built
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            ids, mask = x["input_ids"], x["attention_mask"]
            order = sorted(range(len(ids)), key=lambda i: int(mask[i].sum()))
            states = torch.zeros((*ids.shape, self.model.encoder.config.hidden_size))
            for k in range(0, len(order), self.batch_size):
                rows = order[k : k + self.batch_size]
                width = int(mask[rows].sum(-1).max())
                states[rows, :width] = self.model.encode(ids[rows, :width], mask[rows, :width]).float()
            reps = self.model.span_reps(states, x["span_win"], x["span_a"], x["span_b"], x["span_type"])
            logits = self.model.pair_logits(reps, x["pair_head"], x["pair_tail"], x["feats"])
        got = {id(c): p for c, p in zip(scored, torch.sigmoid(logits.float()).tolist(), strict=True)}
        return [got.get(id(c), 0.0) for c in cands]


THRESHOLD_GRID = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


def tune_thresholds(model_dir: Path, dev_docs: Sequence[AnnotatedDoc]) -> dict[str, float]:
    """Per relation label, the threshold with the best strict F1 (after decoding) on the dev
    blocks; stored in the model's planie-rel.json (``thresholds``) and used by RelationModel."""
    model = RelationModel(model_dir, inherit=False)
    scored = [(d, *model.probabilities(d.text, d.spans)) for d in dev_docs]
    chosen: dict[str, float] = {}
    for lab in RELATION_LABELS:
        gold = {(d.doc_id, r.head, r.tail) for d in dev_docs for r in d.relations if r.label == lab}

        def f1(t: float, lab: str = lab, gold: set = gold) -> float:
            pred = {
                (d.doc_id, r.head, r.tail)
                for d, cands, probs in scored
                for r in decode(cands, probs, t)
                if r.label == lab
            }
            tp = len(pred & gold)
            return 2 * tp / (len(pred) + len(gold)) if pred or gold else 0.0

        chosen[lab] = max(THRESHOLD_GRID, key=lambda t: (f1(t), -abs(t - 0.5))) if gold else 0.5
    meta = json.loads((model_dir / REL_META).read_text(encoding="utf-8"))
    write_atomic(model_dir / REL_META, json.dumps({**meta, "thresholds": chosen}, ensure_ascii=False, indent=2) + "\n")
    return chosen

