"""The two relation linker networks (typed-marker pair classifier, one-pass biaffine pair scorer).

Their attribute names are the keys of the saved ``head.safetensors``: renaming one breaks the
shipped models. This module imports torch; ``relation_model`` imports it only when a network is built.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pipeline.extractors.relation_inputs import ENTITY_LABELS, RELATION_LABELS, PairFeatures


def balanced_bce(logits: torch.Tensor, labels: torch.Tensor, relation: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy averaged per relation label, then over the labels present: the rare
    value_of / deadline_of pairs weigh as much as the many responsible_for pairs."""
    per = nn.functional.binary_cross_entropy_with_logits(logits, labels.float(), reduction="none")
    return torch.stack([per[relation == k].mean() for k in relation.unique()]).mean()


class MarkerClassifier(nn.Module):
    """One encoder pass per candidate pair: the states of the two opening markers → one logit."""

    def __init__(self, encoder: Any, pair_dim: int = 128, dropout: float = 0.1) -> None:
        super().__init__()
        hidden = encoder.config.hidden_size
        self.encoder = encoder
        self.head = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(2 * hidden, pair_dim), nn.GELU(), nn.Linear(pair_dim, 1)
        )

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        head_pos: torch.Tensor,
        tail_pos: torch.Tensor,
        relation: torch.Tensor,
        labels: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        states = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        rows = torch.arange(states.shape[0], device=states.device)
        pair = torch.cat([states[rows, head_pos], states[rows, tail_pos]], -1).float()
        logits = self.head(pair).squeeze(-1)
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = balanced_bce(logits, labels, relation)
        return out


class BiaffinePairScorer(nn.Module):
    """One encoder pass per document region: span representations → biaffine score per pair,
    plus learned biases of the discrete pair features."""

    def __init__(self, encoder: Any, pair_dim: int = 128, dropout: float = 0.1) -> None:
        super().__init__()
        hidden = encoder.config.hidden_size
        n_lab = len(RELATION_LABELS)
        self.encoder = encoder
        self.type_emb = nn.Embedding(len(ENTITY_LABELS), hidden)
        self.head_mlp = nn.Sequential(nn.Linear(hidden, pair_dim), nn.GELU(), nn.Dropout(dropout))
        self.tail_mlp = nn.Sequential(nn.Linear(hidden, pair_dim), nn.GELU(), nn.Dropout(dropout))
        self.bilinear = nn.Parameter(torch.zeros(n_lab, pair_dim + 1, pair_dim + 1))
        self.dist = nn.Embedding(PairFeatures.N_DIST, n_lab)
        self.same = nn.Embedding(2, n_lab)
        self.between = nn.Embedding(4, n_lab)
        self.rank = nn.Embedding(4, n_lab)
        self.cue = nn.Embedding(2, n_lab)

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def span_reps(
        self,
        states: torch.Tensor,
        span_win: torch.Tensor,
        span_a: torch.Tensor,
        span_b: torch.Tensor,
        span_type: torch.Tensor,
    ) -> torch.Tensor:
        """Mean of the span's piece states ([a, b) in its window, +1 for [CLS]) plus its type."""
        cs = nn.functional.pad(states.float().cumsum(1), (0, 0, 1, 0))  # cs[:, k] = sum of states[:, :k]
        summed = cs[span_win, span_b + 1] - cs[span_win, span_a + 1]
        return summed / (span_b - span_a).clamp(min=1)[:, None].float() + self.type_emb(span_type)

    def pair_logits(
        self, reps: torch.Tensor, pair_head: torch.Tensor, pair_tail: torch.Tensor, feats: torch.Tensor
    ) -> torch.Tensor:
        h = self.head_mlp(reps[pair_head]).float()
        t = self.tail_mlp(reps[pair_tail]).float()
        ones = torch.ones_like(h[:, :1])
        h, t = torch.cat([h, ones], -1), torch.cat([t, ones], -1)
        lab = feats[:, 0]
        score = torch.zeros(len(lab), device=h.device)
        for k in range(self.bilinear.shape[0]):  # one matmul per relation label
            rows_k = (lab == k).nonzero(as_tuple=True)[0]
            if len(rows_k):
                score = score.index_put((rows_k,), ((h[rows_k] @ self.bilinear[k].float()) * t[rows_k]).sum(-1).float())
        rows = torch.arange(len(lab), device=lab.device)
        for emb, col in ((self.dist, 1), (self.same, 2), (self.between, 3), (self.rank, 4), (self.cue, 5)):
            score = score + emb(feats[:, col])[rows, lab]
        return score

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        span_win: torch.Tensor,
        span_a: torch.Tensor,
        span_b: torch.Tensor,
        span_type: torch.Tensor,
        pair_head: torch.Tensor,
        pair_tail: torch.Tensor,
        feats: torch.Tensor,
        labels: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        states = self.encode(input_ids, attention_mask)
        reps = self.span_reps(states, span_win, span_a, span_b, span_type)
        logits = self.pair_logits(reps, pair_head, pair_tail, feats)
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = balanced_bce(logits, labels, feats[:, 0])
        return out
