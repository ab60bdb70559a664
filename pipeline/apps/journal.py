"""The journal of an extraction run: ``OUT/extractions.jsonl.journal``, one record per line.

Each finished document (``run_extraction``; a whole batch with Ray) is appended, flushed and fsync'ed,
so a run killed at any moment (kill -9, power loss) keeps every document finished before it. A line
cut off by the kill is dropped when the journal is reopened. ``--resume`` reopens the journal of an
interrupted run, or starts it from a finished ``extractions.jsonl``; without ``--resume`` a run starts
an empty journal. When the run ends the journal is renamed to ``extractions.jsonl`` (one atomic step),
then the tables and views are rebuilt from it.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pipeline.core.errors import InputError
from pipeline.core.files import fsync_dir

JSONL = "extractions.jsonl"
JOURNAL = JSONL + ".journal"


def iter_records(jsonl: Path) -> Iterator[dict[str, Any]]:
    """The records of a JSONL file, one at a time; an InputError naming the line if one is not JSON."""
    with open(jsonl, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{jsonl}: line {n}: not JSON ({exc.msg})") from exc


def record_key(record: dict[str, Any]) -> str:
    """What identifies a document across runs: its real path."""
    return os.path.realpath(str(record.get("source") or record.get("doc_id")))


def _cut_partial_line(path: Path) -> None:
    """Drop a last line without its newline (the write a kill interrupted)."""
    with open(path, "rb+") as fh:
        size = fh.seek(0, os.SEEK_END)
        keep = size
        while keep > 0:
            step = min(keep, 1 << 16)
            fh.seek(keep - step)
            chunk = fh.read(step)
            at = chunk.rfind(b"\n")
            if at >= 0:
                keep = keep - step + at + 1
                break
            keep -= step
        if keep != size:
            fh.truncate(keep)


class Journal:
    """Append-only records of one run in ``out_dir`` (the caller holds the folder's lock)."""

    def __init__(self, out_dir: Path, resume: bool) -> None:
        self.path = Path(out_dir) / JOURNAL
        final = Path(out_dir) / JSONL
        if resume and self.path.exists():
            _cut_partial_line(self.path)
        elif resume and final.exists():
            shutil.copyfile(final, self.path)
            _cut_partial_line(self.path)
        else:
            self.path.write_bytes(b"")
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed by commit/close

    def keys(self) -> Iterator[str]:
        """The real path of every document in the journal, read from the file (not held in memory)."""
        return (record_key(r) for r in iter_records(self.path))

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        """Write these records (a document, or a batch) and make them durable."""
        for record in records:
            self._fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()

    def commit(self) -> Path:
        """Rename the journal to extractions.jsonl; return that path."""
        self.close()
        final = self.path.with_name(JSONL)
        os.replace(self.path, final)
        fsync_dir(final.parent)
        return final
