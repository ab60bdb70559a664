"""Peer: a plain token-classification fine-tune as transformers' run_ner.py example does it.

Same local encoder as the project (a copy whose tokenizer gives one piece per character, see
common.char_encoder_copy), AutoModelForTokenClassification, cross-entropy over BIO tags on the first piece of
each word (here: each character), Trainer with a linear schedule, softmax + argmax at prediction: no CRF, no
rules, no dev selection, no frozen embeddings. Budget: --epochs, --max-steps, and --max-minutes of training
per fold. Runs in the project's .venv (transformers 5) or .peers/plain; it never imports the `pipeline`
package.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    Peer,
    Segment,
    Span,
    base_parser,
    bio_labels,
    bio_tags,
    char_encoder_copy,
    run_folds,
    set_threads,
    spans_from_bio,
    visible,
)

REPO = Path(__file__).resolve().parents[2]
LABELS = bio_labels()
LABEL2ID = {lab: i for i, lab in enumerate(LABELS)}


def encode(tokenizer: Any, segments: list[Segment], max_length: int) -> list[dict[str, list[int]]]:
    """run_ner.py's tokenize_and_align_labels: the label on each word's first piece, -100 elsewhere."""
    rows = []
    for seg in segments:
        enc = tokenizer(list(visible(seg.text)), is_split_into_words=True, truncation=True, max_length=max_length)
        tags, labels, previous = bio_tags(seg), [], None
        for word in enc.word_ids():
            labels.append(-100 if word is None or word == previous else LABEL2ID[tags[word]])
            previous = word
        rows.append({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": labels})
    return rows


def deadline_callback(minutes: float) -> Any:
    from transformers import TrainerCallback

    class Deadline(TrainerCallback):
        def __init__(self) -> None:
            self.deadline = time.monotonic() + minutes * 60
            self.cut = False

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if time.monotonic() > self.deadline:
                control.should_training_stop = self.cut = True
            return control

    return Deadline()


def training_arguments(args: argparse.Namespace, workdir: Path) -> Any:
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(workdir / "trainer"),
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        weight_decay=args.weight_decay,
        warmup_steps=args.warmup_ratio,  # transformers 5: a float < 1 is a share of the steps
        lr_scheduler_type="linear",
        num_train_epochs=args.epochs,
        max_steps=args.max_steps,
        seed=args.seed,
        bf16=args.bf16,
        use_cpu=True,
        save_strategy="no",
        eval_strategy="no",
        logging_steps=10,
        report_to=[],
        dataloader_num_workers=0,
        disable_tqdm=True,
    )


def keep_lower_layers(model: Any, n: int) -> None:
    """The lower n encoder layers, as the project's NER model keeps them (configs/ner.yaml num_layers)."""
    layers = model.base_model.encoder.layer
    if not 0 < n <= len(layers):
        raise SystemExit(f"--num-layers must be between 1 and {len(layers)}, got {n}")
    model.base_model.encoder.layer = layers[:n]
    model.config.num_hidden_layers = n


def train_model(segments: list[Segment], workdir: Path, args: argparse.Namespace, settings: dict) -> Any:
    import torch
    from transformers import (
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForTokenClassification,
        Trainer,
        set_seed,
    )

    torch.set_num_threads(args.threads)
    set_seed(args.seed)
    encoder = char_encoder_copy(args.encoder, workdir / "encoder")
    tokenizer = AutoTokenizer.from_pretrained(str(encoder))
    model = AutoModelForTokenClassification.from_pretrained(
        str(encoder), num_labels=len(LABELS), id2label=dict(enumerate(LABELS)), label2id=LABEL2ID
    )
    if args.num_layers:
        keep_lower_layers(model, args.num_layers)
    budget = deadline_callback(args.max_minutes)
    trainer = Trainer(
        model=model,
        args=training_arguments(args, workdir),
        train_dataset=encode(tokenizer, segments, args.max_length),
        data_collator=DataCollatorForTokenClassification(tokenizer),
        callbacks=[budget],
    )
    result = trainer.train()
    settings.update(steps_done=trainer.state.global_step, cut_by_budget=budget.cut, train_loss=result.training_loss)
    model.eval()
    return tokenizer, model


def predict_texts(tok_model: Any, texts: list[str], args: argparse.Namespace) -> list[list[Span]]:
    """Softmax + argmax per character (its first piece), BIO read back into spans."""
    import torch

    tokenizer, model = tok_model
    out = []
    for i in range(0, len(texts), args.batch_size):
        words = [list(visible(t)) for t in texts[i : i + args.batch_size]]
        enc = tokenizer(
            words,
            is_split_into_words=True,
            truncation=True,
            max_length=args.max_length,
            padding=True,
            return_tensors="pt",
        )
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            ids = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits.argmax(-1)
        for row, chars in enumerate(words):
            tags, seen = ["O"] * len(chars), set()
            for pos, word in enumerate(enc.word_ids(row)):
                if word is not None and word not in seen:
                    seen.add(word)
                    tags[word] = LABELS[int(ids[row, pos])]
            out.append(spans_from_bio(tags))
    return out


def make_peer(args: argparse.Namespace) -> Peer:
    settings: dict[str, Any] = {
        "encoder": str(args.encoder),
        "encoder_tokenizer": "prepend_scheme never (one piece per character)",
        "head": "AutoModelForTokenClassification (linear), softmax + argmax, labels on first pieces",
        "epochs": args.epochs,
        "max_steps": args.max_steps,
        "max_minutes": args.max_minutes,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "weight_decay": args.weight_decay,
        "warmup_ratio": args.warmup_ratio,
        "max_length": args.max_length,
        "num_layers": args.num_layers or "all",
        "bf16": args.bf16,
    }
    return Peer(
        "plain",
        lambda segments, workdir: train_model(segments, workdir, args, settings),
        lambda tok_model, texts: predict_texts(tok_model, texts, args),
        settings,
        ("transformers", "tokenizers", "torch", "accelerate"),
    )


def main(argv: list[str] | None = None) -> int:
    p = base_parser("plain", __doc__.splitlines()[0])
    p.add_argument("--encoder", default=str(REPO / "models/base/e5-small-zh"), help="local encoder folder")
    p.add_argument("--epochs", type=float, default=20)
    p.add_argument("--max-steps", type=int, default=-1, help="optimizer steps per fold (-1: --epochs decides)")
    p.add_argument("--max-minutes", type=float, default=60.0, help="training time budget per fold")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--learning-rate", type=float, default=1e-4)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--warmup-ratio", type=float, default=0.1)
    p.add_argument("--max-length", type=int, default=512, help="pieces per segment, [CLS]/[SEP] included")
    p.add_argument("--num-layers", type=int, default=0, help="keep the lower N encoder layers (0: all)")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast on CPU (faster; weights stay fp32)")
    args = p.parse_args(argv)
    set_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return run_folds(make_peer(args), args)


if __name__ == "__main__":
    sys.exit(main())
