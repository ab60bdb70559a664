"""Train / dev / test documents from a splits config (dev = the last block of each train document),
and grouped K-fold assignments for cross-validation."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pydantic import Field

from pipeline.core.annotations import AnnotatedDoc, load_gold, load_gold_dir
from pipeline.core.config import Config
from pipeline.core.documents import paragraphs
from pipeline.core.errors import InputError, UsageError
from pipeline.core.files import json_files


class SplitsConfig(Config):
    """configs/splits.yaml: documents by id (the file stems of the gold exports)."""

    train: list[str]
    test: list[str] = []
    dev_block: float = Field(0.15, ge=0, lt=1)  # share of each train document's last paragraphs kept for dev


class SplitSource(Protocol):
    """What a run config says about its documents (NER and relation configs both have these fields)."""

    annotations: str
    splits: str
    train_docs: Sequence[str]  # non-empty: overrides the splits file (cross-validation folds)
    test_docs: Sequence[str]


@dataclass(frozen=True)
class Splits:
    train: tuple[AnnotatedDoc, ...]
    dev: tuple[AnnotatedDoc, ...]
    test: tuple[AnnotatedDoc, ...]
    dev_block: float = 0.0  # the share asked for: 0 means no dev set (no early stopping)


def cut_dev_block(doc: AnnotatedDoc, share: float) -> tuple[AnnotatedDoc, AnnotatedDoc | None]:
    """Split a document into (train part, dev part): the dev part is its last ``share`` of paragraphs.
    Both keep the full text; spans are divided at the cut, so offsets stay file offsets."""
    paras = paragraphs(doc.text)
    n_dev = int(len(paras) * share)
    if n_dev == 0:
        return doc, None
    cut = paras[-n_dev].start
    train = AnnotatedDoc(
        doc.doc_id,
        doc.text,
        tuple(s for s in doc.spans if s.end <= cut),
        (),
        doc.source,
        {**doc.meta, "region": (0, cut)},
    )
    dev = AnnotatedDoc(
        doc.doc_id,
        doc.text,
        tuple(s for s in doc.spans if s.start >= cut),
        (),
        doc.source,
        {**doc.meta, "region": (cut, len(doc.text))},
    )
    return train, dev


def make_splits(cfg: SplitSource) -> Splits:
    if not Path(cfg.annotations).exists():
        raise InputError(f"annotations {cfg.annotations}: not found")
    docs = {d.doc_id: d for d in load_gold_dir([cfg.annotations])}
    split_cfg = SplitsConfig.load(cfg.splits)
    train_ids = cfg.train_docs or split_cfg.train
    test_ids = cfg.test_docs or split_cfg.test
    missing = [i for i in [*train_ids, *test_ids] if i not in docs]
    if missing:
        raise ValueError(f"{cfg.splits}: no gold annotations for {', '.join(missing)} in {cfg.annotations}/")
    if set(train_ids) & set(test_ids):
        raise ValueError(f"{cfg.splits}: documents in both train and test: {set(train_ids) & set(test_ids)}")
    train, dev = [], []
    for i in train_ids:
        t, d = cut_dev_block(docs[i], split_cfg.dev_block)
        train.append(t)
        if d is not None:
            dev.append(d)
    return Splits(tuple(train), tuple(dev), tuple(docs[i] for i in test_ids), split_cfg.dev_block)


def with_relations(part: AnnotatedDoc, full: AnnotatedDoc) -> AnnotatedDoc:
    """``part`` (a train or dev block of ``full``) with the relations whose two ends it holds."""
    from dataclasses import replace

    ids = {s.id for s in part.spans}
    return replace(part, relations=tuple(r for r in full.relations if r.head in ids and r.tail in ids))


def relation_splits(cfg: SplitSource) -> tuple[list[AnnotatedDoc], list[AnnotatedDoc], list[AnnotatedDoc]]:
    """train / dev / test documents as for the NER model (make_splits), relations kept."""
    full = {d.doc_id: d for d in load_gold_dir([cfg.annotations])}
    splits = make_splits(cfg)
    train = [with_relations(d, full[d.doc_id]) for d in splits.train]
    dev = [with_relations(d, full[d.doc_id]) for d in splits.dev]
    return train, dev, list(splits.test)


@dataclass(frozen=True)
class Fold:
    name: str
    groups: tuple[str, ...]
    train: tuple[str, ...]  # doc ids
    test: tuple[str, ...]


def assign_folds(doc_groups: Mapping[str, str], doc_chars: Mapping[str, int], k: int, seed: int) -> list[Fold]:
    """Grouped K-fold: every document of a group in the same fold, folds balanced by characters.
    The groups are shuffled with ``seed``, then placed largest first (a stable sort, so the seed
    orders groups of equal size) into the fold with the fewest characters so far (the first on a tie)."""
    groups = sorted(set(doc_groups.values()))
    if not 2 <= k <= len(groups):
        raise UsageError(f"{k} folds need between 2 and {len(groups)} groups (the gold has {len(groups)})")
    chars = {g: 0 for g in groups}
    for doc_id, g in doc_groups.items():
        chars[g] += doc_chars[doc_id]
    random.Random(seed).shuffle(groups)
    groups.sort(key=lambda g: -chars[g])
    members: list[list[str]] = [[] for _ in range(k)]
    load = [0] * k
    for g in groups:
        i = min(range(k), key=lambda j: (load[j], j))
        members[i].append(g)
        load[i] += chars[g]
    return [
        Fold(
            f"fold{i + 1}",
            tuple(sorted(gs)),
            tuple(sorted(d for d, g in doc_groups.items() if g not in gs)),
            tuple(sorted(d for d, g in doc_groups.items() if g in gs)),
        )
        for i, gs in enumerate(members)
    ]


def gold_groups(annotations: str | Path, group: str) -> tuple[dict[str, AnnotatedDoc], dict[str, str]]:
    """The gold documents by id and the group of each: its own id (``doc``) or ``data.meta.<group>``."""
    docs: dict[str, AnnotatedDoc] = {}
    groups: dict[str, str] = {}
    for path in json_files([annotations]):
        for doc in load_gold(path):
            value = doc.doc_id if group == "doc" else doc.meta.get(group)
            if not value:
                raise InputError(f"{path}: document {doc.doc_id} has no data.meta.{group} (needed to group by {group})")
            docs[doc.doc_id] = doc
            groups[doc.doc_id] = str(value)
    return docs, groups
