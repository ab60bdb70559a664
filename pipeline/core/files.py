"""Files: the repository root, atomic writes (never half-written outputs)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # the checkout: configs/, models/ and .ls-venv/ live here
_UMASK = os.umask(0)
os.umask(_UMASK)


def json_files(paths: Iterable[str | Path]) -> list[Path]:
    """Each path as given, a folder replaced by every *.json in it (sorted)."""
    files: list[Path] = []
    for p in map(Path, paths):
        files.extend(sorted(p.glob("*.json")) if p.is_dir() else [p])
    return files


def write_atomic(path: str | Path, content: str) -> None:
    """Write via a temporary file in the same directory and rename: never half-written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; outputs are ordinary files
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(content)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
