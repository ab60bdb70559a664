"""NER: train a token-classification model on gold windows and predict character spans.

The flow follows HuggingFace's run_ner.py: config → data → alignment (pipeline.dataset) → model →
Trainer → saved model with its planie.json (labels, window settings) → evaluation.
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from pipeline.annotations import AnnotatedDoc, Span, load_gold_dir, write_atomic
from pipeline.dataset import (
    PieceTokenizer,
    Window,
    boundary_violations,
    decode_spans,
    document_windows,
    to_hf_dataset,
)
from pipeline.documents import Segment, paragraphs
from pipeline.schema import DEFAULT_SCHEMA_PATH, load_schema

log = logging.getLogger(__name__)
MODEL_META = "planie.json"


@dataclass
class NerConfig:
    base: str = "models/base/e5-small-zh"
    annotations: str = "annotations"
    splits: str = "configs/splits.yaml"
    output_dir: str = "runs/ner"
    max_length: int = 128
    stride: int = 96
    epochs: int = 20
    batch_size: int = 16
    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    lr_scheduler: str = "linear"
    label_smoothing: float = 0.0  # softmax loss only; ignored with crf
    dropout: float = 0.1
    crf: bool = False  # a linear-chain CRF (pytorch-crf) over the token logits, Viterbi-decoded
    rule_labels: list[str] = field(default_factory=list)  # labels taken from pipeline.rules at prediction time
    freeze_embeddings: bool = True
    bf16: bool = True  # bfloat16 autocast (CPU and recent GPUs); weights stay fp32
    num_layers: int = 0  # >0: keep only the lower N encoder layers of the base (a faster student)
    early_stopping_patience: int = 4
    seed: int = 13
    device: str = "cpu"
    schema: str = str(DEFAULT_SCHEMA_PATH)
    max_steps: int = -1  # for smoke tests
    train_docs: list[str] = field(default_factory=list)  # overrides the split (cross-validation)
    test_docs: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: str | Path, **overrides: Any) -> NerConfig:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        known = {f.name for f in fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"{path}: unknown config field(s): {', '.join(sorted(unknown))}")
        raw.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**raw)


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


def make_splits(cfg: NerConfig) -> Splits:
    docs = {d.doc_id: d for d in load_gold_dir([cfg.annotations])}
    split_cfg = yaml.safe_load(Path(cfg.splits).read_text(encoding="utf-8"))
    train_ids = cfg.train_docs or split_cfg["train"]
    test_ids = cfg.test_docs or split_cfg["test"]
    missing = [i for i in [*train_ids, *test_ids] if i not in docs]
    if missing:
        raise ValueError(f"{cfg.splits}: no gold annotations for {', '.join(missing)} in {cfg.annotations}/")
    if set(train_ids) & set(test_ids):
        raise ValueError(f"{cfg.splits}: documents in both train and test: {set(train_ids) & set(test_ids)}")
    train, dev = [], []
    for i in train_ids:
        t, d = cut_dev_block(docs[i], float(split_cfg.get("dev_block", 0.15)))
        train.append(t)
        if d is not None:
            dev.append(d)
    return Splits(tuple(train), tuple(dev), tuple(docs[i] for i in test_ids))


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


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


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


class Decoder:
    """The best label sequence of one paragraph from its emission scores [pieces, labels]: Viterbi
    over the CRF's transition scores (zeros for a softmax model) under the BIO constraint that
    ``I-X`` only follows ``B-X`` or ``I-X``."""

    FORBIDDEN = -1.0e4

    def __init__(self, labels: Sequence[str], crf: dict[str, Any] | None = None) -> None:
        import numpy as np

        n = len(labels)

        def weights(name: str, shape: tuple[int, ...]) -> Any:
            return np.asarray(crf[name], dtype=np.float32) if crf else np.zeros(shape, dtype=np.float32)

        def may_follow(prev: str, cur: str) -> bool:
            return not cur.startswith("I-") or prev in (f"B-{cur[2:]}", cur)

        allowed = np.array([[may_follow(a, b) for b in labels] for a in labels])
        can_start = np.array([not lab.startswith("I-") for lab in labels])
        self.transitions = weights("crf.transitions", (n, n)) + np.where(allowed, 0, self.FORBIDDEN)
        self.start = weights("crf.start_transitions", (n,)) + np.where(can_start, 0, self.FORBIDDEN)
        self.end = weights("crf.end_transitions", (n,))

    def __call__(self, emissions: Any) -> list[int]:
        import numpy as np

        if len(emissions) == 0:
            return []
        score = self.start + emissions[0]
        back = np.zeros(emissions.shape, dtype=np.int64)
        for t in range(1, len(emissions)):
            candidates = score[:, None] + self.transitions  # [previous label, current label]
            back[t] = candidates.argmax(0)
            score = candidates.max(0) + emissions[t]
        path = [int((score + self.end).argmax())]
        for t in range(len(emissions) - 1, 0, -1):
            path.append(int(back[t, path[-1]]))
        return path[::-1]


def attach_crf(model: Any, num_labels: int, weights: dict[str, Any] | None = None) -> None:
    """Give a token-classification model a ``crf`` submodule (saved with it as ``crf.*`` tensors)."""
    import torch
    from torchcrf import CRF

    model.crf = CRF(num_labels, batch_first=True)
    if weights:
        model.crf.load_state_dict({k.removeprefix("crf."): torch.as_tensor(v).float() for k, v in weights.items()})


def crf_weights(model_dir: Path) -> dict[str, Any] | None:
    """The ``crf.*`` tensors saved with a model (numpy arrays), or None for a softmax model."""
    from safetensors import safe_open

    weights = {}
    for f in sorted(Path(model_dir).glob("*.safetensors")):
        with safe_open(str(f), "np") as tensors:  # reads only the crf.* tensors, not the encoder
            weights.update({k: tensors.get_tensor(k) for k in tensors.keys() if k.startswith("crf.")})
    return weights or None


def load_token_classifier(model_dir: Path) -> Any:
    """A saved token-classification model, with its CRF layer if it was trained with one."""
    from transformers import AutoModelForTokenClassification
    from transformers.utils import logging as hf_logging

    weights = crf_weights(model_dir)
    verbosity = hf_logging.get_verbosity()
    if weights:  # the crf.* tensors are "unexpected" to the plain class: attached below, not lost
        hf_logging.set_verbosity_error()
    try:
        model = AutoModelForTokenClassification.from_pretrained(str(model_dir))
    finally:
        hf_logging.set_verbosity(verbosity)
    if weights:
        attach_crf(model, model.config.num_labels, weights)
    return model


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


# TrainingArguments shared by the NER and relation trainers: evaluate and checkpoint every epoch,
# keep the best by dev F1 (two checkpoints on disk, so --resume always finds one).
EPOCHS_KEEP_BEST_DEV_F1: dict[str, Any] = {
    "eval_strategy": "epoch",
    "save_strategy": "epoch",
    "save_total_limit": 2,
    "load_best_model_at_end": True,
    "metric_for_best_model": "f1",
    "greater_is_better": True,
    "logging_strategy": "epoch",
    "report_to": [],
}


def train_ner(cfg: NerConfig, resume: bool = False) -> Path:
    """Train, save the best model to ``output_dir/model`` and return that path."""
    import torch
    from transformers import (
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForTokenClassification,
        EarlyStoppingCallback,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    set_seed(cfg.seed)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    schema = load_schema(cfg.schema)
    labels = schema.bio_labels()
    label2id = {lab: i for i, lab in enumerate(labels)}
    id2label = dict(enumerate(labels))

    splits = make_splits(cfg)
    tokenizer = AutoTokenizer.from_pretrained(cfg.base)
    tok = PieceTokenizer(tokenizer)
    train_w = [w for d in splits.train for w in region_windows(d, tok, cfg)]
    dev_w = [w for d in splits.dev for w in region_windows(d, tok, cfg)]
    violations = sum(
        boundary_violations(tok.pieces(d.text), d.spans) for d in (*splits.train, *splits.dev, *splits.test)
    )
    log.info("windows: %d train, %d dev; gold boundaries inside a piece: %d", len(train_w), len(dev_w), violations)
    if violations:
        raise RuntimeError(f"{violations} gold boundaries fall inside a piece: the pre-tokenisation is broken")

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
        attach_crf(model, len(labels))

    args = TrainingArguments(
        output_dir=str(out / "checkpoints"),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size * 2,
        learning_rate=cfg.learning_rate,
        weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_ratio,
        lr_scheduler_type=cfg.lr_scheduler,
        label_smoothing_factor=cfg.label_smoothing,
        **EPOCHS_KEEP_BEST_DEV_F1,
        seed=cfg.seed,
        use_cpu=cfg.device == "cpu",
        dataloader_num_workers=0,
        bf16=cfg.bf16,
        train_sampling_strategy="group_by_length",
        disable_tqdm=False,
    )
    trainer_class = _crf_trainer_class() if cfg.crf else Trainer
    trainer = trainer_class(
        model=model,
        args=args,
        train_dataset=to_hf_dataset(train_w, tok, label2id),
        eval_dataset=to_hf_dataset(dev_w, tok, label2id),
        data_collator=DataCollatorForTokenClassification(tokenizer),
        compute_metrics=_seqeval_metrics(id2label, lambda: Decoder(labels, _module_weights(model))),
        callbacks=[EarlyStoppingCallback(early_stopping_patience=cfg.early_stopping_patience)],
    )
    started = time.time()
    last = _last_checkpoint(out / "checkpoints") if resume else None
    trainer.train(resume_from_checkpoint=str(last) if last else None)
    train_seconds = time.time() - started

    model_dir = out / "model"
    trainer.save_model(str(model_dir))
    tokenizer.save_pretrained(str(model_dir))
    meta = {
        "labels": labels,
        "max_length": cfg.max_length,
        "stride": cfg.stride,
        "crf": cfg.crf,
        "rule_labels": cfg.rule_labels,
        "base": cfg.base,
        "train_docs": [d.doc_id for d in splits.train],
        "test_docs": [d.doc_id for d in splits.test],
        "torch": torch.__version__,
    }
    write_atomic(model_dir / MODEL_META, json.dumps(meta, ensure_ascii=False, indent=2) + "\n")
    run = {
        "config": asdict(cfg),
        "git_commit": git_commit(),
        "data": {f.name: file_sha256(f) for f in sorted(Path(cfg.annotations).glob("*.json"))},
        "train_seconds": round(train_seconds, 1),
        "log_history": trainer.state.log_history,
        "best_dev": trainer.state.best_metric,
    }
    write_atomic(out / "run.json", json.dumps(run, ensure_ascii=False, indent=2) + "\n")
    return model_dir


def _module_weights(model: Any) -> dict[str, Any] | None:
    crf = getattr(model, "crf", None)
    return None if crf is None else {f"crf.{k}": v.detach().float().cpu().numpy() for k, v in crf.state_dict().items()}


def keep_lower_layers(model, n: int) -> None:  # noqa: ANN001
    """Truncate a BERT-style encoder to its lower ``n`` layers (config updated, so it saves/loads)."""
    layers = model.base_model.encoder.layer
    if not 0 < n <= len(layers):
        raise ValueError(f"num_layers must be between 1 and {len(layers)}, got {n}")
    model.base_model.encoder.layer = layers[:n]
    model.config.num_hidden_layers = n


def _last_checkpoint(folder: Path) -> Path | None:
    ckpts = sorted(folder.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    return ckpts[-1] if ckpts else None


SEPARATE_WHEN_ADJACENT = {"AGENCY"}  # 党中央国务院: two bodies may touch; other labels never do in the gold
# Scope words that open an indicator's noun phrase (主要农产品…合格率, 全省名优产品…): the schema takes
# "the whole noun phrase naming the metric"; the model, trained on few of them, tends to start after them.
INDICATOR_MODIFIERS = ("主要", "重点", "全省", "全市", "全区", "全县", "全国", "城市", "城镇", "农村", "干线")
CLAUSE_BOUNDARY = set('，,；;。：:、（(）)“”"《》 \t\r\n\u3000')


def tidy_spans(text: str, spans: Sequence[Span]) -> list[Span]:
    """Schema-aware clean-up of decoded spans:
    1. touching spans of the same label (B after B: 主要|农产品…合格率) are one span, except AGENCY;
    2. one-character INDICATOR or AGENCY fragments are dropped (none in the gold);
    3. an INDICATOR needs a VALUE in its sentence (the schema's definition);
    4. an INDICATOR right after a scope word (INDICATOR_MODIFIERS) that opens its clause includes it."""
    from pipeline.relations import SentenceIndex

    merged: list[Span] = []
    for s in sorted(spans, key=lambda s: s.start):
        prev = merged[-1] if merged else None
        if prev and prev.label == s.label and prev.end == s.start and s.label not in SEPARATE_WHEN_ADJACENT:
            score = None if prev.score is None or s.score is None else round(min(prev.score, s.score), 4)
            merged[-1] = Span(prev.id, prev.start, s.end, s.label, text[prev.start : s.end], score)
        else:
            merged.append(s)
    merged = [s for s in merged if not (s.label in ("INDICATOR", "AGENCY") and s.end - s.start < 2)]
    index = SentenceIndex(text)
    with_value = {index.of(s.start) for s in merged if s.label == "VALUE"}
    kept = [s for s in merged if s.label != "INDICATOR" or index.of(s.start) in with_value]
    ends = {s.end for s in kept}  # once per text: per span it made long documents quadratic
    return [_with_modifier(text, s, ends) if s.label == "INDICATOR" else s for s in kept]


def _with_modifier(text: str, span: Span, ends: set[int]) -> Span:
    for word in INDICATOR_MODIFIERS:
        start = span.start - len(word)
        if (
            start >= 0
            and text[start : span.start] == word
            and (start == 0 or text[start - 1] in CLAUSE_BOUNDARY or start in ends)
        ):
            return Span(span.id, start, span.end, span.label, text[start : span.end], span.score)
    return span


def with_rule_spans(spans: Sequence[Span], text: str, labels: set[str]) -> list[Span]:
    """The model's spans with ``labels`` taken from the rules instead: the model's spans of those
    labels are dropped, and so is any other model span overlapping a rule span."""
    from pipeline.rules import rule_spans

    ruled = [r for r in rule_spans(text) if r.label in labels]
    kept = [s for s in spans if s.label not in labels and not any(r.start < s.end and s.start < r.end for r in ruled)]
    return sorted([*kept, *ruled], key=lambda s: s.start)


@dataclass(frozen=True)
class ParagraphProbs:
    text_index: int
    paragraph: Segment
    pieces: list
    probs: Any  # numpy array [pieces, labels]


class NerModel:
    """A trained token-classification model that predicts character spans on whole documents."""

    def __init__(
        self, model_dir: str | Path, device: str = "cpu", batch_size: int = 32, precision: str = "bf16"
    ) -> None:
        import torch
        from transformers import AutoTokenizer

        self.model_dir = Path(model_dir)
        meta_path = self.model_dir / MODEL_META
        if not meta_path.exists():
            raise FileNotFoundError(f"{self.model_dir}: not a planie NER model ({MODEL_META} missing)")
        self.meta = json.loads(meta_path.read_text(encoding="utf-8"))
        self.tok = PieceTokenizer(AutoTokenizer.from_pretrained(str(self.model_dir)))
        self.model = load_token_classifier(self.model_dir)
        self.model.to(device).eval()
        self.model.float()
        self.device = device
        self.batch_size = batch_size
        if precision not in ("bf16", "fp32"):
            raise ValueError(f"precision must be 'bf16' or 'fp32', got {precision!r}")
        self.precision = precision  # bf16: autocast for the matmuls (weights stay fp32)
        self.id2label = {int(k): v for k, v in self.model.config.id2label.items()}
        self.decoder = Decoder([self.id2label[i] for i in range(len(self.id2label))], _module_weights(self.model))
        self._torch = torch

    @property
    def name(self) -> str:
        return f"{self.model_dir.name}:{self.meta.get('base', '?')}"

    chunk_pieces = 16384  # pieces per streamed chunk of paragraphs (about 2 MB of probabilities)

    def paragraph_probabilities(self, texts: Sequence[str]) -> list[ParagraphProbs]:
        """Label probabilities per piece for every non-empty paragraph of every text. Overlapping
        windows are merged by taking, for each piece, the window in which it lies farthest from an edge."""
        return list(self.iter_paragraph_probabilities(texts))

    def iter_paragraph_probabilities(self, texts: Sequence[str]) -> Iterator[ParagraphProbs]:
        """As paragraph_probabilities, streamed: paragraphs are tokenised and run in chunks of at most
        ``chunk_pieces`` pieces (a longer paragraph is a chunk of its own), so memory is bounded by the
        chunk, not by the length of a document, as long as the caller keeps only what it needs."""
        from pipeline.dataset import windows

        max_pieces = self.meta["max_length"] - 2
        stride = min(self.meta["stride"], max_pieces)
        paras: list[tuple[int, Segment, list]] = []
        jobs: list[tuple[int, int, int]] = []  # (paragraph index in the chunk, window start, window end)
        size = 0

        def flush() -> Iterator[ParagraphProbs]:
            probs = self._run(jobs, [(ti, pieces) for ti, _, pieces in paras])
            yield from (ParagraphProbs(ti, para, pieces, p) for (ti, para, pieces), p in zip(paras, probs, strict=True))

        for ti, text in enumerate(texts):
            for para in paragraphs(text):
                pieces = self.tok.pieces(text, para.start, para.end)
                if not pieces:
                    continue
                if paras and size + len(pieces) > self.chunk_pieces:
                    yield from flush()
                    paras, jobs, size = [], [], 0
                jobs += [(len(paras), a, b) for a, b in windows(pieces, max_pieces, stride)]
                paras.append((ti, para, pieces))
                size += len(pieces)
        if paras:
            yield from flush()

    def predict(self, texts: Sequence[str], viterbi: bool = True) -> list[list[Span]]:
        """Character spans per text: label sequence per paragraph (BIO-constrained Viterbi, with the
        CRF's transitions if the model has one; ``viterbi=False``: argmax per piece), then tidy_spans."""
        import numpy as np

        results: list[list[Span]] = [[] for _ in texts]
        for para in self.iter_paragraph_probabilities(texts):
            best = self.decoder(np.log(para.probs + 1e-12)) if viterbi else para.probs.argmax(-1)
            labels = [self.id2label[int(i)] for i in best]
            scores = [float(s) for s in para.probs.max(-1)]
            results[para.text_index].extend(decode_spans(texts[para.text_index], para.pieces, labels, scores))
        rule_labels = set(self.meta.get("rule_labels", ()))
        for ti, spans in enumerate(results):
            tidy = tidy_spans(texts[ti], spans)
            if rule_labels:
                tidy = with_rule_spans(tidy, texts[ti], rule_labels)
            results[ti] = [Span(f"T{i + 1}", s.start, s.end, s.label, s.text, s.score) for i, s in enumerate(tidy)]
        return results

    def _run(self, jobs: list[tuple[int, int, int]], para_pieces: list[tuple[int, list]]) -> list:
        import numpy as np

        torch = self._torch
        n_labels = len(self.id2label)
        out = [np.zeros((len(p), n_labels), dtype=np.float32) for _, p in para_pieces]
        best_margin = [np.full(len(p), -1) for _, p in para_pieces]
        jobs = sorted(jobs, key=lambda j: j[2] - j[1])
        for i in range(0, len(jobs), self.batch_size):
            batch = jobs[i : i + self.batch_size]
            width = max(b - a for _, a, b in batch) + 2
            ids = torch.full((len(batch), width), self.tok.pad_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, (pi, a, b) in enumerate(batch):
                pieces = para_pieces[pi][1][a:b]
                seq = [self.tok.cls_id, *(p.token_id for p in pieces), self.tok.sep_id]
                ids[row, : len(seq)] = torch.tensor(seq)
                mask[row, : len(seq)] = 1
            autocast = torch.autocast(self.device, dtype=torch.bfloat16, enabled=self.precision == "bf16")
            with torch.inference_mode(), autocast:
                logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits
            p = torch.softmax(logits.float(), -1).cpu().numpy()
            for row, (pi, a, b) in enumerate(batch):
                idx = np.arange(a, b)
                margin = np.minimum(idx - a, b - 1 - idx)
                take = margin > best_margin[pi][a:b]
                out[pi][a:b][take] = p[row, 1 : 1 + (b - a)][take]
                best_margin[pi][a:b][take] = margin[take]
        return out


def cross_validate(cfg: NerConfig, out_dir: Path, folds: Sequence[str] = ()) -> dict[str, Any]:
    """Leave-one-document-out: for each annotated document, train on all the others and score it.
    Folds already scored (their metrics.json exists) are skipped, so an interrupted run resumes."""
    import shutil
    from dataclasses import replace

    from pipeline.evaluate import evaluate_extractor
    from pipeline.extract import ModelExtractor

    schema = load_schema(cfg.schema)
    docs = {d.doc_id: d for d in load_gold_dir([cfg.annotations])}
    results: dict[str, Any] = {}
    for doc_id in folds or sorted(docs):
        fold_dir = out_dir / doc_id
        metrics_file = fold_dir / "metrics.json"
        if not metrics_file.exists():
            fold_cfg = replace(
                cfg, output_dir=str(fold_dir), train_docs=[d for d in docs if d != doc_id], test_docs=[doc_id]
            )
            model_dir = train_ner(fold_cfg)
            report = evaluate_extractor([docs[doc_id]], ModelExtractor(model_dir), schema, f"fold {doc_id}")
            report.write(fold_dir)
            shutil.rmtree(fold_dir / "checkpoints", ignore_errors=True)
            shutil.rmtree(model_dir, ignore_errors=True)
        results[doc_id] = json.loads(metrics_file.read_text(encoding="utf-8"))
    summary = summarise_folds(results, list(schema.entity_labels))
    write_atomic(out_dir / "cv.json", json.dumps(summary, ensure_ascii=False, indent=2) + "\n")
    write_atomic(out_dir / "cv.md", cv_markdown(summary))
    return summary


def summarise_folds(results: dict[str, Any], labels: list[str]) -> dict[str, Any]:
    """Per-fold F1 (model and rules), the mean over folds that have the label, and the pooled
    scores (tp/fp/fn summed over all folds, i.e. every document scored by a model that never saw it)."""
    keys = [*labels, "micro"]
    rows = {}
    for doc_id, m in results.items():
        rows[doc_id] = {
            "model": {lab: m["entities"][lab]["f1"] for lab in keys},
            "rules": {lab: m["rules_baseline"]["entities"][lab]["f1"] for lab in keys},
            "support": {lab: m["entities"][lab]["support"] for lab in keys},
            "relations_micro": m["relations"]["micro"]["f1"],
            "rules_relations_micro": m["rules_baseline"]["relations"]["micro"]["f1"],
            "relations_support": m["relations"]["micro"]["support"],
        }

    def mean(key: str, lab: str) -> float:
        vals = [r[key][lab] for r in rows.values() if r["support"][lab] > 0]
        return round(sum(vals) / len(vals), 4) if vals else 0.0

    def pooled(section: str, lab: str) -> float:
        tp = fp = fn = 0
        for m in results.values():
            scores = (m if section == "model" else m["rules_baseline"])["entities"][lab]
            tp, fp, fn = tp + scores["tp"], fp + scores["fp"], fn + scores["fn"]
        return round(2 * tp / (2 * tp + fp + fn), 4) if tp + fp + fn else 0.0

    return {
        "folds": rows,
        "mean": {k: {lab: mean(k, lab) for lab in keys} for k in ("model", "rules")},
        "pooled": {k: {lab: pooled(k, lab) for lab in keys} for k in ("model", "rules")},
        "note": "mean: over folds whose document has at least one gold span of that label; "
        "pooled: true/false positives and negatives summed over all folds",
    }


def cv_markdown(summary: dict[str, Any]) -> str:
    labels = list(summary["mean"]["model"])
    lines = ["# Leave-one-document-out (strict entity F1: model / rules)", ""]
    lines += ["| fold | " + " | ".join(labels) + " | relations micro |", "|---" * (len(labels) + 2) + "|"]
    for doc_id, r in summary["folds"].items():
        cells = [f"{r['model'][lab]:.2f} / {r['rules'][lab]:.2f}" if r["support"][lab] else "-" for lab in labels]
        rel = f"{r['relations_micro']:.2f} / {r['rules_relations_micro']:.2f}" if r.get("relations_support") else "-"
        lines.append(f"| {doc_id} | " + " | ".join(cells) + f" | {rel} |")
    for key in ("mean", "pooled"):
        agg = summary[key]
        lines.append(
            f"| **{key}** | "
            + " | ".join(f"{agg['model'][lab]:.3f} / {agg['rules'][lab]:.3f}" for lab in labels)
            + " | |"
        )
    return "\n".join(lines) + f"\n\n{summary['note']}.\n"


def export_model(src: Path, dst: Path, fp16: bool = True) -> Path:
    """Copy a trained model for shipping: weights stored in fp16 (computed in fp32 at load time),
    tokenizer and planie.json alongside. Written to a temporary folder and renamed into place."""
    import shutil
    import tempfile

    from transformers import AutoTokenizer

    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", dir=dst.parent))
    try:
        model = load_token_classifier(Path(src))
        if fp16:
            model = model.half()
        model.save_pretrained(str(tmp))
        AutoTokenizer.from_pretrained(str(src)).save_pretrained(str(tmp))
        shutil.copy2(Path(src) / MODEL_META, tmp / MODEL_META)
        tmp.chmod(0o755)
        for f in tmp.iterdir():
            f.chmod(0o644)
        if dst.exists():
            shutil.rmtree(dst)
        tmp.rename(dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dst
