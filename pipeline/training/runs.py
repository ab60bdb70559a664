"""The run harness shared by NER, relation and pretraining runs.

A run is: a typed config (``Config.load``) → the Trainer arguments of a planie run
(``training_arguments``) → ``train_resumable`` (the one place that picks the checkpoint a
``--resume`` starts from and measures the training seconds) → ``write_run_record`` (config, git
commit, data hashes, train_seconds and what the run adds). ``keep_lower_layers`` cuts an encoder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pipeline.core.config import Config
from pipeline.core.files import write_atomic

log = logging.getLogger(__name__)


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


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
# Pretraining has no dev set: checkpoint every epoch, keep the last one.
EPOCHS_KEEP_LAST: dict[str, Any] = {
    "save_strategy": "epoch",
    "save_total_limit": 1,
    "report_to": [],
}


def training_arguments(
    checkpoints: Path,
    *,
    epochs: float,
    batch_size: int,
    seed: int,
    bf16: bool,
    use_cpu: bool,
    keep_best_dev_f1: bool = True,
    **options: Any,
) -> Any:
    """The TrainingArguments of a planie run, checkpoints in ``checkpoints``: with ``keep_best_dev_f1``
    evaluate and checkpoint every epoch and keep the best by dev F1 (EPOCHS_KEEP_BEST_DEV_F1), else
    keep the last epoch (EPOCHS_KEEP_LAST); ``options`` are the run's own (learning rate, scheduler…)."""
    from transformers import TrainingArguments

    schedule = EPOCHS_KEEP_BEST_DEV_F1 if keep_best_dev_f1 else EPOCHS_KEEP_LAST
    return TrainingArguments(
        output_dir=str(checkpoints),
        num_train_epochs=epochs,
        per_device_train_batch_size=batch_size,
        seed=seed,
        use_cpu=use_cpu,
        dataloader_num_workers=0,
        bf16=bf16,
        **schedule,
        **options,
    )


SECONDS_FILE = "planie_seconds.json"  # training seconds up to a checkpoint, across resumes
CHECKPOINT_FILES = ("trainer_state.json", "optimizer.pt", "scheduler.pt")


def checkpoint_complete(ckpt: Path) -> bool:
    """Everything a resume needs is there and whole (a kill during a save leaves a partial folder)."""
    from pipeline.extractors.model_files import safetensors_problem

    if not all((ckpt / name).is_file() for name in CHECKPOINT_FILES):
        return False
    try:
        json.loads((ckpt / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    weights = list(ckpt.glob("*.safetensors"))
    return bool(weights) and not any(safetensors_problem(w) for w in weights)


def last_checkpoint(folder: Path) -> Path | None:
    """The newest complete ``checkpoint-N`` in ``folder``; incomplete ones are skipped with a warning."""
    ckpts = [p for p in folder.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
    for ckpt in sorted(ckpts, key=lambda p: int(p.name.split("-")[-1]), reverse=True):
        if checkpoint_complete(ckpt):
            return ckpt
        log.warning("skipping incomplete checkpoint %s", ckpt)
    return None


def _seconds_callback(before: float, started: float):  # noqa: ANN202
    from transformers import TrainerCallback

    class Seconds(TrainerCallback):
        """Writes the training seconds so far into each checkpoint, so a resume can add to them."""

        def on_save(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003, ANN201, ARG002
            ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if ckpt.is_dir():
                seconds = {"train_seconds": before + time.time() - started}
                (ckpt / SECONDS_FILE).write_text(json.dumps(seconds) + "\n", encoding="utf-8")

    return Seconds()


def train_resumable(trainer: Any, checkpoints: Path, resume: bool) -> float:
    """``trainer.train()``, from the last complete checkpoint in ``checkpoints`` with ``resume``; returns
    the training seconds of the whole run, those before the checkpoint included (each checkpoint
    records the seconds so far). The one place where a resume picks its checkpoint and the time is
    measured."""
    last = last_checkpoint(checkpoints) if resume else None
    before = 0.0
    if last is not None and (last / SECONDS_FILE).is_file():
        before = float(json.loads((last / SECONDS_FILE).read_text(encoding="utf-8"))["train_seconds"])
    started = time.time()
    trainer.add_callback(_seconds_callback(before, started))
    trainer.train(resume_from_checkpoint=str(last) if last else None)
    return before + time.time() - started


def write_run_record(
    path: Path, cfg: Config, data: Iterable[Path], train_seconds: float, **extra: Any
) -> dict[str, Any]:
    """The run record (run.json): config, git commit, sha256 of every data file, training seconds,
    then ``extra`` (log history, best dev score, …)."""
    record = {
        "config": cfg.model_dump(),
        "git_commit": git_commit(),
        "data": {f.name: file_sha256(f) for f in data},
        "train_seconds": round(train_seconds, 1),
        **extra,
    }
    write_atomic(path, json.dumps(record, ensure_ascii=False, indent=2) + "\n")
    return record


def keep_lower_layers(model, n: int) -> None:  # noqa: ANN001
    """Truncate a BERT-style encoder to its lower ``n`` layers (config updated, so it saves/loads)."""
    layers = model.base_model.encoder.layer
    if not 0 < n <= len(layers):
        raise ValueError(f"num_layers must be between 1 and {len(layers)}, got {n}")
    model.base_model.encoder.layer = layers[:n]
    model.config.num_hidden_layers = n
