"""Precision / recall / F1: the one implementation every score in planie goes through."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class PRF:
    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def support(self) -> int:
        return self.tp + self.fn

    def as_dict(self) -> dict[str, float | int]:
        return {
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "support": self.support,
        }


def set_prf(gold: set, pred: set) -> PRF:
    return PRF(len(gold & pred), len(pred - gold), len(gold - pred))


def score_sets(gold: Iterable[tuple], pred: Iterable[tuple], labels: Sequence[str]) -> dict[str, PRF]:
    """Per-label and micro PRF over items whose last element is their label."""
    gold, pred = set(gold), set(pred)
    scores = {lab: set_prf({g for g in gold if g[-1] == lab}, {p for p in pred if p[-1] == lab}) for lab in labels}
    scores["micro"] = set_prf(gold, pred)
    return scores
