"""A trained relation linker (typed-marker or one-pass biaffine) linking the entity spans of documents."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from pipeline.core.alignment import PieceTokenizer
from pipeline.core.annotations import Relation, Span
from pipeline.core.documents import paragraphs
from pipeline.core.errors import MissingModelError
from pipeline.extractors.relation_inputs import (
    ENTITY_LABELS,
    RELATION_LABELS,
    PairFeatures,
    biaffine_tensors,
    collate_marker,
    marked_input,
)
from pipeline.extractors.relations import Candidate, candidate_pairs, inherit_deadlines

REL_META = "planie-rel.json"


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
            raise MissingModelError(f"{self.model_dir}: not a planie relation model ({REL_META} missing)")
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
        collate = collate_marker(self.tok.pad_id)
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
