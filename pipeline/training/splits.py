"""Train / dev / test documents from a splits config (dev = the last block of each train document)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pydantic import Field

from pipeline.core.annotations import AnnotatedDoc, load_gold_dir
from pipeline.core.config import Config
from pipeline.core.documents import paragraphs
from pipeline.core.errors import InputError


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
    return Splits(tuple(train), tuple(dev), tuple(docs[i] for i in test_ids))


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
