"""The run harness shared by NER, relation and pretraining runs: run record, checkpoints, encoder layers."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any


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


def keep_lower_layers(model, n: int) -> None:  # noqa: ANN001
    """Truncate a BERT-style encoder to its lower ``n`` layers (config updated, so it saves/loads)."""
    layers = model.base_model.encoder.layer
    if not 0 < n <= len(layers):
        raise ValueError(f"num_layers must be between 1 and {len(layers)}, got {n}")
    model.base_model.encoder.layer = layers[:n]
    model.config.num_hidden_layers = n


def last_checkpoint(folder: Path) -> Path | None:
    ckpts = sorted(folder.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    return ckpts[-1] if ckpts else None
