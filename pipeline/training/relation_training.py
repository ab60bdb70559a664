"""Relation linker training (both variants) with Trainer, and per-label threshold tuning on dev."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from pipeline.core.alignment import PieceTokenizer, windows
from pipeline.core.annotations import AnnotatedDoc
from pipeline.core.config import Config
from pipeline.core.documents import is_heading, paragraphs, to_simplified
from pipeline.core.files import json_files, write_atomic
from pipeline.core.metrics import PRF, set_prf
from pipeline.extractors.relation_inputs import RELATION_LABELS, biaffine_tensors, marked_input
from pipeline.extractors.relation_model import REL_META, RelationModel, decode, linker_scheme
from pipeline.extractors.relations import candidate_pairs
from pipeline.training.runs import keep_lower_layers, train_resumable, training_arguments, write_run_record
from pipeline.training.splits import relation_splits

log = logging.getLogger(__name__)


class RelConfig(Config):
    """One relation linker run (configs/relations.yaml)."""

    variant: Literal["biaffine", "marker"] = "biaffine"  # biaffine (one pass per document) | marker (one pass per pair)
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
    train_docs: list[str] = []
    test_docs: list[str] = []


def gold_keys(doc: AnnotatedDoc) -> set[tuple[str, str, str]]:
    return {(r.head, r.tail, r.label) for r in doc.relations}


def _encoder(base: str, num_layers: int, dropout: float):  # noqa: ANN202
    from transformers import AutoModel

    enc = AutoModel.from_pretrained(base, hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    if num_layers and num_layers < len(enc.encoder.layer):
        keep_lower_layers(enc, num_layers)
    return enc


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


def biaffine_examples(
    docs: Sequence[AnnotatedDoc],
    tok: PieceTokenizer,
    marker_ids: dict[str, int],  # unused: no markers (the ExampleBuilder interface)
    cfg: RelConfig,
    sample: bool,  # unused: every chunk is kept
) -> list[dict[str, Any]]:
    """One example per paragraph group of the train/dev region: all its candidate pairs at once."""
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


ExampleBuilder = Callable[
    [Sequence[AnnotatedDoc], PieceTokenizer, dict[str, int], RelConfig, bool], list[dict[str, Any]]
]
# The training examples of each linker scheme (pipeline.extractors.relation_model.SCHEMES); ``sample``
# (True for the training set) lets the marker scheme drop a share of the responsible_for negatives.
EXAMPLES: dict[str, ExampleBuilder] = {"biaffine": biaffine_examples, "marker": marker_examples}


class _ListDataset:
    def __init__(self, items: list) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):  # noqa: ANN204
        return self.items[i]


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
    tp = int((p & g).sum())
    scores = PRF(tp, int(p.sum()) - tp, int(g.sum()) - tp)
    return {"precision": scores.precision, "recall": scores.recall, "f1": scores.f1}


def train_relations(cfg: RelConfig, resume: bool = False) -> Path:
    """Train the configured variant; save the best (dev pair F1) to ``output_dir/model``."""
    import torch
    from transformers import AutoTokenizer, EarlyStoppingCallback, Trainer, set_seed

    set_seed(cfg.seed)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    train_docs, dev_docs, test_docs = relation_splits(cfg)
    tokenizer = AutoTokenizer.from_pretrained(cfg.base)
    tok = PieceTokenizer(tokenizer)
    encoder = _encoder(cfg.base, cfg.num_layers, cfg.dropout)
    scheme = linker_scheme(cfg.variant)
    vocab = encoder.config.vocab_size
    marker_ids = scheme.marker_ids(vocab)
    if marker_ids:
        encoder.resize_token_embeddings(vocab + len(marker_ids))
    examples = EXAMPLES[scheme.name]
    train_set = examples(train_docs, tok, marker_ids, cfg, True)
    dev_set = examples(dev_docs, tok, marker_ids, cfg, False)
    collate = scheme.collate(tok.pad_id)
    batch = scheme.batch_size(cfg.batch_size)
    log.info("%s: %d train and %d dev examples", cfg.variant, len(train_set), len(dev_set))
    model = scheme.network(encoder, cfg.pair_dim, cfg.dropout)
    if cfg.freeze_embeddings:
        emb = encoder.embeddings.word_embeddings.weight
        if marker_ids:  # only the marker rows learn
            emb.register_hook(lambda g: torch.cat([torch.zeros_like(g[:vocab]), g[vocab:]]))
        else:
            emb.requires_grad_(False)
    enc_params = [p for n, p in model.named_parameters() if n.startswith("encoder.") and p.requires_grad]
    head_params = [p for n, p in model.named_parameters() if not n.startswith("encoder.")]
    optimizer = torch.optim.AdamW(
        [{"params": enc_params, "lr": cfg.learning_rate}, {"params": head_params, "lr": cfg.head_learning_rate}],
        weight_decay=cfg.weight_decay,
    )
    args = training_arguments(
        out / "checkpoints",
        epochs=cfg.epochs,
        batch_size=batch,
        seed=cfg.seed,
        bf16=cfg.bf16,
        use_cpu=True,
        max_steps=cfg.max_steps,
        per_device_eval_batch_size=batch * (2 if batch > 1 else 1),
        warmup_steps=cfg.warmup_ratio,
        lr_scheduler_type="linear",
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
    seconds = train_resumable(trainer, out / "checkpoints", resume)
    model_dir = save_relation_model(model, tokenizer, out / "model", cfg, marker_ids)
    meta_extra = {"train_docs": [d.doc_id for d in train_docs], "test_docs": [d.doc_id for d in test_docs]}
    meta = json.loads((model_dir / REL_META).read_text(encoding="utf-8"))
    write_atomic(model_dir / REL_META, json.dumps({**meta, **meta_extra}, ensure_ascii=False, indent=2) + "\n")
    thresholds = tune_thresholds(model_dir, dev_docs) if dev_docs else {}
    write_run_record(
        out / "run.json",
        cfg,
        json_files([cfg.annotations]),
        seconds,
        examples={"train": len(train_set), "dev": len(dev_set)},
        log_history=trainer.state.log_history,
        best_dev=trainer.state.best_metric,
        thresholds=thresholds,
    )
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
            return set_prf(gold, pred).f1

        chosen[lab] = max(THRESHOLD_GRID, key=lambda t: (f1(t), -abs(t - 0.5))) if gold else 0.5
    meta = json.loads((model_dir / REL_META).read_text(encoding="utf-8"))
    write_atomic(model_dir / REL_META, json.dumps({**meta, "thresholds": chosen}, ensure_ascii=False, indent=2) + "\n")
    return chosen
