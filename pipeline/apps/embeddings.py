"""Sentence embeddings for indicator grouping (``planie extract --group-indicators embeddings``).

``load_embedder(folder)`` loads the encoder of any HuggingFace model folder with ``AutoModel`` (for
a planie NER model that is its encoder, the token-classification head is left out) and returns an
``Embed`` for ``pipeline.apps.indicators.group_indicators``: each name is tokenised, run through the encoder
and its last hidden states are mean-pooled over the real tokens (attention mask), then L2-normalised.
Nothing is downloaded: the folder must hold the weights and the tokenizer.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from pipeline.apps.indicators import Embed
from pipeline.core.errors import MissingModelError


class Embedder:
    def __init__(self, folder: str | Path, device: str = "cpu", batch_size: int = 64, max_length: int = 64) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        folder = Path(folder)
        if not (folder / "config.json").is_file():
            raise MissingModelError(f"{folder}: not a model folder (config.json missing)")
        from transformers.utils import logging as hf_logging

        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # a task model's head is expected to be left out: no load report
        try:
            self.model = AutoModel.from_pretrained(str(folder)).float().to(device).eval()
        finally:
            hf_logging.set_verbosity(verbosity)
        self.device, self.batch_size, self.max_length = device, batch_size, max_length
        self._torch = torch

    def __call__(self, names: Sequence[str]) -> np.ndarray:
        import numpy as np

        torch = self._torch
        out = []
        for i in range(0, len(names), self.batch_size):
            enc = self.tokenizer(
                list(names[i : i + self.batch_size]),
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            ).to(self.device)
            with torch.inference_mode():
                hidden = self.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            out.append(torch.nn.functional.normalize(mean, dim=-1).cpu().numpy())
        dim = self.model.config.hidden_size
        return np.concatenate(out) if out else np.zeros((0, dim), dtype=np.float32)


def load_embedder(folder: str | Path, device: str = "cpu") -> Embed:
    """Mean-pooled encoder embeddings from a local model folder (ValueError/OSError if it is not one)."""
    return Embedder(folder, device=device)
