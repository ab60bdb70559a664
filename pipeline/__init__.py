"""planie: structured commitments from Chinese quality-development plan documents.

The Python API: ``pipeline.load()`` returns an extractor whose ``extract(text, doc_id=...)`` gives the
record of one line of ``extractions.jsonl`` (see ``pipeline.apps.api``). Importing the package is cheap:
torch and the model load only in ``load()``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.apps.api import Planie

__version__ = "0.1.0"
__all__ = ["__version__", "load"]


def load(model: str | Path | None = None, **options: Any) -> Planie:
    """The shipped model by default, a trained model folder, or ``"rules"``; ``options``: ``relations``,
    ``device``, ``batch_size``, ``precision`` as for ``planie extract``."""
    from pipeline.apps.api import load as load_planie

    return load_planie(model, **options)
