"""Files: the repository root, atomic writes (never half-written outputs), stale temporary files."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

REPO = Path(__file__).resolve().parents[2]  # the checkout: configs/, models/ and .ls-venv/ live here
TEMP_GLOB = ".*.tmp"  # what atomic_writer leaves behind when its process is killed
_UMASK = os.umask(0)
os.umask(_UMASK)


def json_files(paths: Iterable[str | Path]) -> list[Path]:
    """Each path as given, a folder replaced by every *.json in it (sorted)."""
    files: list[Path] = []
    for p in map(Path, paths):
        files.extend(sorted(p.glob("*.json")) if p.is_dir() else [p])
    return files


@contextmanager
def atomic_writer(path: str | Path) -> Iterator[TextIO]:
    """A text file handle on a temporary file in the same directory, renamed to ``path`` when the
    block ends without an exception (removed otherwise): readers never see a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; outputs are ordinary files
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            yield fh
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: str | Path, content: str) -> None:
    """Write via a temporary file in the same directory and rename: never half-written."""
    with atomic_writer(path) as fh:
        fh.write(content)


def remove_stale_temps(folder: Path) -> list[Path]:
    """Delete the temporary files a killed writer left in ``folder`` and its subfolders; return them."""
    stale = [p for p in Path(folder).rglob(TEMP_GLOB) if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def fsync_dir(folder: Path) -> None:
    """Make a rename inside ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
