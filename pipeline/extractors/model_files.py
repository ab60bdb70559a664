"""Checks of a model folder and a device before anything loads: one clear error instead of a traceback.

A planie NER model folder holds ``planie.json``, ``config.json``, a tokenizer (``tokenizer.json``
or ``vocab.txt``) and weights (``*.safetensors`` or ``pytorch_model.bin``). A safetensors file is
checked without loading it: its header must be JSON and every tensor must lie inside the file (a
copy cut short, as an interrupted download or save leaves, fails here).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from pipeline.core.errors import MissingModelError, SetupError

MODEL_META = "planie.json"


def safetensors_problem(path: Path) -> str | None:
    """Why ``path`` is not a complete safetensors file, or None."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            return "shorter than its header"
        (n,) = struct.unpack("<Q", head)
        if n > size - 8:
            return f"header of {n} bytes in a file of {size}: truncated"
        try:
            header = json.loads(fh.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError):
            return "header is not JSON"
    ends = [t["data_offsets"][1] for k, t in header.items() if k != "__metadata__" and isinstance(t, dict)]
    if 8 + n + max(ends, default=0) > size:
        return f"tensors end at byte {8 + n + max(ends)} but the file has {size}: truncated"
    return None


def check_weights(folder: Path) -> None:
    """A MissingModelError naming the file if a safetensors file in ``folder`` is incomplete."""
    for f in sorted(folder.glob("*.safetensors")):
        problem = safetensors_problem(f)
        if problem:
            raise MissingModelError(f"{f}: not a complete model file ({problem})")


def check_model_dir(folder: str | Path) -> Path:
    """The folder if it holds a complete planie NER model, else a MissingModelError naming what is missing."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingModelError(f"model {str(folder)!r} is neither 'rules' nor a model folder")
    missing = [name for name in (MODEL_META, "config.json") if not (folder / name).is_file()]
    if not any((folder / name).is_file() for name in ("tokenizer.json", "vocab.txt")):
        missing.append("tokenizer.json")
    if not list(folder.glob("*.safetensors")) and not (folder / "pytorch_model.bin").is_file():
        missing.append("model.safetensors")
    if missing:
        raise MissingModelError(f"{folder}: not a planie model folder ({', '.join(missing)} missing)")
    try:
        json.loads((folder / MODEL_META).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MissingModelError(f"{folder / MODEL_META}: not readable JSON ({exc})") from exc
    check_weights(folder)
    return folder


def check_device(device: str) -> None:
    """A SetupError if ``device`` is not available in this torch build."""
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise SetupError(f"device {device!r} is not available (this torch build has no usable CUDA); use cpu")
