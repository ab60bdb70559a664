"""A trained relation linker (typed-marker or one-pass biaffine) linking the entity spans of documents."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from pipeline.core.alignment import PieceTokenizer
from pipeline.core.annotations import Relation, Span
from pipeline.core.documents import paragraphs
from pipeline.core.errors import MissingModelError
from pipeline.extractors.relation_inputs import (
    MARKERS,
    RELATION_LABELS,
    biaffine_tensors,
    collate_marker,
    marked_input,
)
from pipeline.extractors.relations import Candidate, candidate_pairs, inherit_deadlines

REL_META = "planie-rel.json"


class LinkerScheme(ABC):
    """How one variant of the learned linker marks pairs, builds its network and scores candidates.

    One subclass per variant (SCHEMES); training and RelationModel go through this interface."""

    name: ClassVar[str]
    markers: ClassVar[tuple[str, ...]] = ()  # tokens added to the encoder vocabulary (their rows learn)

    def marker_ids(self, vocab_size: int) -> dict[str, int]:
        """The ids of the added marker tokens, after the encoder's own vocabulary."""
        return {m: vocab_size + i for i, m in enumerate(self.markers)}

    @abstractmethod
    def network(self, encoder: Any, pair_dim: int = 128, dropout: float = 0.1) -> Any:
        """The torch module (encoder + head) of this variant."""

    @abstractmethod
    def collate(self, pad_id: int) -> Callable[[list[dict[str, Any]]], dict[str, Any]]:
        """Training / evaluation batches from examples."""

    @abstractmethod
    def batch_size(self, requested: int) -> int:
        """Examples per training step for the configured batch size."""

    @abstractmethod
    def probabilities(
        self, linker: RelationModel, text: str, spans: Sequence[Span], cands: Sequence[Candidate]
    ) -> list[float]:
        """The probability of every candidate pair of ``text`` (in the order of ``cands``)."""


class TypedMarkers(LinkerScheme):
    """Typed markers around head and tail ([H:VALUE] … [/H]); one encoder pass per candidate pair."""

    name = "marker"
    markers = MARKERS

    def network(self, encoder: Any, pair_dim: int = 128, dropout: float = 0.1) -> Any:
        from pipeline.extractors.relation_nets import MarkerClassifier

        return MarkerClassifier(encoder, pair_dim, dropout)

    def collate(self, pad_id: int) -> Callable[[list[dict[str, Any]]], dict[str, Any]]:
        return collate_marker(pad_id)

    def batch_size(self, requested: int) -> int:
        return requested

    def probabilities(
        self, linker: RelationModel, text: str, spans: Sequence[Span], cands: Sequence[Candidate]
    ) -> list[float]:
        import torch

        marker_ids = linker.meta["marker_ids"]
        inputs = [marked_input(text, c, linker.tok, marker_ids, linker.meta["max_length"]) for c in cands]
        order = sorted(range(len(inputs)), key=lambda i: len(inputs[i].ids))
        probs = [0.0] * len(inputs)
        collate = collate_marker(linker.tok.pad_id)
        for k in range(0, len(order), linker.batch_size):
            rows = order[k : k + linker.batch_size]
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
                logits = linker.model(**batch)["logits"]
            for i, p in zip(rows, torch.sigmoid(logits.float()).tolist(), strict=True):
                probs[i] = p
        return probs


def collate_single(features: list[dict[str, Any]]) -> dict[str, Any]:
    """A batch of one (biaffine examples are already whole tensors)."""
    return features[0]


class Biaffine(LinkerScheme):
    """No markers: one encoder pass per document region, a biaffine score for every pair of its spans."""

    name = "biaffine"

    def network(self, encoder: Any, pair_dim: int = 128, dropout: float = 0.1) -> Any:
        from pipeline.extractors.relation_nets import BiaffinePairScorer

        return BiaffinePairScorer(encoder, pair_dim, dropout)

    def collate(self, pad_id: int) -> Callable[[list[dict[str, Any]]], dict[str, Any]]:
        return collate_single

    def batch_size(self, requested: int) -> int:
        return 1

    def probabilities(
        self, linker: RelationModel, text: str, spans: Sequence[Span], cands: Sequence[Candidate]
    ) -> list[float]:
        import torch

        built = biaffine_tensors(
            text, paragraphs(text), spans, cands, linker.tok, linker.meta["max_length"], linker.meta["stride"]
        )
        if built is None:
            return [0.0] * len(cands)
        x, scored = built
        model = linker.model
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            ids, mask = x["input_ids"], x["attention_mask"]
            order = sorted(range(len(ids)), key=lambda i: int(mask[i].sum()))
            states = torch.zeros((*ids.shape, model.encoder.config.hidden_size))
            for k in range(0, len(order), linker.batch_size):
                rows = order[k : k + linker.batch_size]
                width = int(mask[rows].sum(-1).max())
                states[rows, :width] = model.encode(ids[rows, :width], mask[rows, :width]).float()
            reps = model.span_reps(states, x["span_win"], x["span_a"], x["span_b"], x["span_type"])
            logits = model.pair_logits(reps, x["pair_head"], x["pair_tail"], x["feats"])
        got = {id(c): p for c, p in zip(scored, torch.sigmoid(logits.float()).tolist(), strict=True)}
        return [got.get(id(c), 0.0) for c in cands]


SCHEMES: dict[str, LinkerScheme] = {s.name: s for s in (Biaffine(), TypedMarkers())}


def linker_scheme(variant: str) -> LinkerScheme:
    if variant not in SCHEMES:
        raise ValueError(f"unknown relation linker variant {variant!r} (known: {', '.join(SCHEMES)})")
    return SCHEMES[variant]


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
        from safetensors.torch import load_file
        from transformers import AutoModel, AutoTokenizer

        self.model_dir = Path(model_dir)
        meta_path = self.model_dir / REL_META
        if not meta_path.exists():
            raise MissingModelError(f"{self.model_dir}: not a planie relation model ({REL_META} missing)")
        self.meta = json.loads(meta_path.read_text(encoding="utf-8"))
        self.variant = self.meta["variant"]
        self.scheme = linker_scheme(self.variant)
        self.tok = PieceTokenizer(AutoTokenizer.from_pretrained(str(self.model_dir / "encoder")))
        encoder = AutoModel.from_pretrained(str(self.model_dir / "encoder")).float()
        self.model = self.scheme.network(encoder, self.meta["pair_dim"])
        head = {k: v.float() for k, v in load_file(str(self.model_dir / "head.safetensors")).items()}
        missing = self.model.load_state_dict(head, strict=False).missing_keys
        if any(not k.startswith("encoder.") for k in missing):
            raise ValueError(f"{self.model_dir}: head weights missing: {missing}")
        self.model.eval()
        self.batch_size = batch_size
        self.inherit = inherit
        self.threshold: float | dict[str, float] = self.meta.get("thresholds") or float(self.meta.get("threshold", 0.5))

    @property
    def name(self) -> str:
        return f"{self.variant}:{self.model_dir.name}" + ("+inherit" if self.inherit else "")

    def probabilities(self, text: str, spans: Sequence[Span]) -> tuple[list[Candidate], list[float]]:
        cands = candidate_pairs(text, spans)
        if not cands:
            return [], []
        return cands, self.scheme.probabilities(self, text, spans, cands)

    def link(self, text: str, spans: Sequence[Span]) -> list[Relation]:
        cands, probs = self.probabilities(text, spans)
        rels = decode(cands, probs, self.threshold)
        return inherit_deadlines(text, spans, rels) if self.inherit else rels
