"""NER training: config → windows → Trainer (softmax or CRF loss) → saved model with planie.json.

The flow follows HuggingFace's run_ner.py."""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.core.alignment import (
    PieceTokenizer,
    Window,
    boundary_violations,
    document_windows,
    to_hf_dataset,
)
from pipeline.core.annotations import AnnotatedDoc
from pipeline.core.config import Config
from pipeline.core.errors import InputError
from pipeline.core.files import json_files, write_atomic
from pipeline.core.schema import DEFAULT_SCHEMA_PATH, load_schema
from pipeline.extractors.ner import MODEL_META, Decoder, attach_crf, crf_weights, module_weights
from pipeline.training.base_model import ensure_base
from pipeline.training.runs import keep_lower_layers, train_resumable, training_arguments, write_run_record
from pipeline.training.splits import Splits, make_splits

log = logging.getLogger(__name__)


# pydantic warns that the field "schema" shadows BaseModel.schema (a deprecated classmethod); the
# config key is older than the typed config and stays.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message='Field name "schema"', category=UserWarning)

    class NerConfig(Config):
        """One NER run (configs/ner.yaml)."""

        base: str = "models/base/e5-small-zh"
        annotations: str = "annotations"
        splits: str = "configs/splits.yaml"
        output_dir: str = "runs/ner"
        max_length: int = 128
        stride: int = 96
        epochs: float = 20
        batch_size: int = 16
        learning_rate: float = 1e-4
        weight_decay: float = 0.01
        warmup_ratio: float = 0.1
        lr_scheduler: str = "linear"
        label_smoothing: float = 0.0  # softmax loss only; ignored with crf
        dropout: float = 0.1
        crf: bool = False  # a linear-chain CRF (pytorch-crf) over the token logits, Viterbi-decoded
        rule_labels: list[str] = []  # labels taken from pipeline.rules at prediction time
        section_rules: bool = False  # drop spans in the section kinds the schema rules out (absent_in)
        freeze_embeddings: bool = True
        bf16: bool = True  # bfloat16 autocast (CPU and recent GPUs); weights stay fp32
        num_layers: int = 0  # >0: keep only the lower N encoder layers of the base (a faster student)
        early_stopping_patience: int = 4
        augment_places: int = 0  # >0: place-replaced copies of the training windows naming a division in an AGENCY
        seed: int = 13
        device: str = "cpu"
        schema: str = str(DEFAULT_SCHEMA_PATH)
        max_steps: int = -1  # for smoke tests
        train_docs: list[str] = []  # overrides the split (cross-validation)
        test_docs: list[str] = []


def region_windows(doc: AnnotatedDoc, tok: PieceTokenizer, cfg: NerConfig) -> list[Window]:
    """Windows of the document inside its train/dev region (see cut_dev_block) and, for a file
    built from paragraph tasks, inside the paragraphs that were actually annotated."""
    lo, hi = doc.meta.get("region", (0, len(doc.text)))
    annotated = doc.meta.get("regions") or [(0, len(doc.text))]
    return [
        w
        for w in document_windows(doc, tok, cfg.max_length, cfg.stride)
        if lo <= w.pieces[0].start < hi and any(a <= w.pieces[0].start < b for a, b in annotated)
    ]


def place_augmented_windows(splits: Splits, tok: PieceTokenizer, cfg: NerConfig) -> list[Window]:
    """Windows of the place-replaced training copies (pipeline.training.augment) that hold a replaced
    name inside an AGENCY span; the dev blocks are never augmented."""
    from pipeline.training.augment import augment_places

    out = []
    for doc in augment_places(splits.train, cfg.augment_places, cfg.seed):
        replaced = doc.meta["replaced_in_agency"]
        for w in region_windows(doc, tok, cfg):
            lo, hi = w.pieces[0].start, w.pieces[-1].end
            if any(lo <= a and b <= hi for a, b in replaced):
                out.append(w)
    return out


def _seqeval_metrics(id2label: dict[int, str], decoder: Callable[[], Decoder]):  # noqa: ANN202
    from seqeval.metrics import f1_score, precision_score, recall_score

    def compute(pred) -> dict[str, float]:  # noqa: ANN001
        logits, gold = pred
        decode = decoder()  # built at each evaluation: a CRF's transitions change while training
        y_true, y_pred = [], []
        for l_row, g_row in zip(logits, gold, strict=True):
            keep = g_row != -100
            y_pred.append([id2label[int(p)] for p in decode(l_row[keep])])
            y_true.append([id2label[int(g)] for g in g_row[keep]])
        return {
            "precision": precision_score(y_true, y_pred, zero_division=0),
            "recall": recall_score(y_true, y_pred, zero_division=0),
            "f1": f1_score(y_true, y_pred, zero_division=0),
        }

    return compute


def crf_loss(crf: Any, logits: Any, labels: Any) -> Any:
    """Mean negative log-likelihood of the gold label paths ([CLS], [SEP] and padding masked out)."""
    tags = labels[:, 1:]
    mask = tags != -100
    return -crf(logits[:, 1:].float(), tags.clamp(min=0), mask, reduction="mean")


def _crf_trainer_class() -> type:
    from transformers import Trainer

    class CrfTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # noqa: ANN001, ANN202
            labels = inputs.pop("labels")
            outputs = model(**inputs)
            loss = crf_loss(model.crf, outputs.logits, labels)
            return (loss, outputs) if return_outputs else loss

    return CrfTrainer


def refuse_untrainable(splits: Splits, train_w: list[Window], dev_w: list[Window], cfg: NerConfig) -> None:
    """An InputError before the first step if the data cannot train or early-stop a model."""
    if not any(d.spans for d in splits.train):
        raise InputError(f"{cfg.annotations}: the training documents have no gold spans: nothing to learn")
    if not train_w:
        raise InputError(f"{cfg.annotations}: no training windows in the training documents")
    if not dev_w and splits.dev_block > 0:  # dev_block: 0 trains without early stopping
        raise InputError(
            f"{cfg.splits}: no dev windows (dev = the last dev_block share of paragraphs of each "
            "training document): add documents or paragraphs, or raise dev_block"
        )


def train_ner(cfg: NerConfig, resume: bool = False) -> Path:
    """Train, save the best model to ``output_dir/model`` and return that path."""
    import torch
    from transformers import (
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForTokenClassification,
        EarlyStoppingCallback,
        Trainer,
        set_seed,
    )

    set_seed(cfg.seed)
    out = Path(cfg.output_dir)
    schema = load_schema(cfg.schema)
    labels = schema.bio_labels()
    label2id = {lab: i for i, lab in enumerate(labels)}
    id2label = dict(enumerate(labels))

    ensure_base(cfg.base)
    splits = make_splits(cfg)
    tokenizer = AutoTokenizer.from_pretrained(cfg.base)
    tok = PieceTokenizer(tokenizer)
    train_w = [w for d in splits.train for w in region_windows(d, tok, cfg)]
    dev_w = [w for d in splits.dev for w in region_windows(d, tok, cfg)]
    if cfg.augment_places:
        augmented = place_augmented_windows(splits, tok, cfg)
        log.info("place augmentation: %d windows added to %d", len(augmented), len(train_w))
        train_w += augmented
    violations = sum(
        boundary_violations(tok.pieces(d.text), d.spans) for d in (*splits.train, *splits.dev, *splits.test)
    )
    log.info("windows: %d train, %d dev; gold boundaries inside a piece: %d", len(train_w), len(dev_w), violations)
    if violations:
        raise RuntimeError(f"{violations} gold boundaries fall inside a piece: the pre-tokenisation is broken")
    refuse_untrainable(splits, train_w, dev_w, cfg)
    out.mkdir(parents=True, exist_ok=True)

    model = AutoModelForTokenClassification.from_pretrained(
        cfg.base,
        num_labels=len(labels),
        id2label=id2label,
        label2id=label2id,
        hidden_dropout_prob=cfg.dropout,
        attention_probs_dropout_prob=cfg.dropout,
    )
    if cfg.num_layers:
        keep_lower_layers(model, cfg.num_layers)
    if cfg.freeze_embeddings:
        model.base_model.embeddings.word_embeddings.weight.requires_grad_(False)
    if cfg.crf:
        # fine-tuning a planie CRF model (the ML backend's training rounds) keeps its transitions
        attach_crf(model, len(labels), crf_weights(Path(cfg.base)) if Path(cfg.base).is_dir() else None)

    args = training_arguments(
        out / "checkpoints",
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        bf16=cfg.bf16,
        use_cpu=cfg.device == "cpu",
        max_steps=cfg.max_steps,
        per_device_eval_batch_size=cfg.batch_size * 2,
        learning_rate=cfg.learning_rate,
        weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_ratio,
        lr_scheduler_type=cfg.lr_scheduler,
        label_smoothing_factor=cfg.label_smoothing,
        keep_best_dev_f1=bool(dev_w),
        train_sampling_strategy="group_by_length",
        disable_tqdm=False,
    )
    trainer_class = _crf_trainer_class() if cfg.crf else Trainer
    trainer = trainer_class(
        model=model,
        args=args,
        train_dataset=to_hf_dataset(train_w, tok, label2id),
        eval_dataset=to_hf_dataset(dev_w, tok, label2id) if dev_w else None,
        data_collator=DataCollatorForTokenClassification(tokenizer),
        compute_metrics=_seqeval_metrics(id2label, lambda: Decoder(labels, module_weights(model))),
        callbacks=[EarlyStoppingCallback(early_stopping_patience=cfg.early_stopping_patience)] if dev_w else [],
    )
    train_seconds = train_resumable(trainer, out / "checkpoints", resume)

    model_dir = out / "model"
    trainer.save_model(str(model_dir))
    tokenizer.save_pretrained(str(model_dir))
    meta = {
        "labels": labels,
        "max_length": cfg.max_length,
        "stride": cfg.stride,
        "crf": cfg.crf,
        "rule_labels": cfg.rule_labels,
        "section_rules": cfg.section_rules,
        "base": cfg.base,
        "train_docs": [d.doc_id for d in splits.train],
        "test_docs": [d.doc_id for d in splits.test],
        "torch": torch.__version__,
    }
    write_atomic(model_dir / MODEL_META, json.dumps(meta, ensure_ascii=False, indent=2) + "\n")
    write_run_record(
        out / "run.json",
        cfg,
        json_files([cfg.annotations]),
        train_seconds,
        log_history=trainer.state.log_history,
        best_dev=trainer.state.best_metric,
    )
    return model_dir
