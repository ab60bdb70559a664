"""An output folder: checked before any work, locked for one writer at a time.

The lock is an exclusive ``fcntl.flock`` on ``OUT/.planie.lock``; the file holds the pid of the
process that holds it, so a second run can name it. The kernel drops the lock when the holder
exits, however it exits (kill -9 too), so a lock is never left stale.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.core.errors import SetupError, UsageError
from pipeline.core.files import remove_stale_temps

LOCK_NAME = ".planie.lock"
_HELD: dict[str, int] = {}  # folders this process holds the lock of → nesting depth


class FolderBusyError(SetupError):
    """Another process writes to the same output folder."""


def prepare_out_dir(out_dir: str | Path) -> Path:
    """Create ``out_dir`` if needed; a UsageError if it is a file, a SetupError if it is not writable."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        raise SetupError(f"--out {out}: cannot write there ({exc.strerror or exc})") from exc
    return out


def _holder(lock_file: Path) -> str:
    try:
        pid = lock_file.read_text(encoding="utf-8").strip()
    except OSError:
        pid = ""
    return f"process {pid}" if pid else "another process"


@contextmanager
def locked_out_dir(out_dir: str | Path) -> Iterator[Path]:
    """``prepare_out_dir``, then hold the folder's exclusive lock for the block; a FolderBusyError at once
    (naming the folder and the other process) if another process holds it. Nested calls in the
    process that holds the lock just go on. Taking the lock removes the temporary files a killed
    run left (``remove_stale_temps``)."""
    out = prepare_out_dir(out_dir)
    key = os.path.realpath(out)
    if key in _HELD:  # nested: this process holds it already
        _HELD[key] += 1
        try:
            yield out
        finally:
            _HELD[key] -= 1
        return
    lock_file = out / LOCK_NAME
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            busy = f"{out} is in use by {_holder(lock_file)}; wait for it or pick another --out"
            raise FolderBusyError(busy) from exc
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        _HELD[key] = 1
        remove_stale_temps(out)  # what a killed holder left; nobody else writes here now
        yield out
    finally:
        _HELD.pop(key, None)
        os.close(fd)  # releases the lock
