"""The documents of a run: files, folders and globs → one entry per real file, each with a unique doc_id.

- An argument that exists is taken literally (``报告[1].txt`` is that file, never a glob); only an
  argument that does not exist is expanded as a glob (``**`` recursive).
- Folders are searched recursively for document files; symlinked folders are not followed.
- A document is identified by its real path (symlinks and ``..`` resolved), so one file reached
  twice is one document.
- ``doc_id`` is the file stem; documents whose stems collide get the path relative to their input
  root without the suffix (``a/report``, ``b/report``), and ``-2``, ``-3`` … if that still collides.
"""

from __future__ import annotations

import glob
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

DOCUMENT_SUFFIXES = (".txt", ".docx", ".html", ".htm", ".pdf")


@dataclass(frozen=True)
class DocInput:
    """One document of a run: its real path, the folder its doc_id is relative to, and the doc_id."""

    path: str
    root: str
    doc_id: str = ""


def _is_document(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in DOCUMENT_SUFFIXES


def _walk(folder: str) -> Iterator[str]:
    """Document files under ``folder`` as the file system lists them (no list of a whole folder is
    built: ``DocumentSet`` orders them), symlinked folders not followed."""
    with os.scandir(folder) as it:
        for entry in it:
            if entry.is_dir(follow_symlinks=False):
                yield from _walk(entry.path)
            elif _is_document(entry.name) and entry.is_file():
                yield entry.path


def _glob_root(pattern: str) -> str:
    """The leading folder of a glob pattern that has no wildcard in it."""
    parts = Path(pattern).parts
    fixed = parts[: next((i for i, p in enumerate(parts) if glob.has_magic(p)), len(parts))]
    return str(Path(*fixed)) if fixed else "."


def _expand(item: str) -> Iterator[tuple[str, str]]:
    """(file, root) for one argument."""
    if os.path.exists(item):
        matches, root = [item], None
    else:
        matches, root = glob.iglob(item, recursive=True), _glob_root(item)
    for match in matches:
        if os.path.isdir(match):
            yield from ((f, match) for f in _walk(match))
        else:
            yield match, root or os.path.dirname(match) or "."


def _relative_id(path: str, root: str) -> str:
    rel = os.path.relpath(path, root)
    return str(PurePosixPath(*Path(rel).parts).with_suffix("")) if not rel.startswith("..") else Path(path).stem


_SCHEMA = """
PRAGMA journal_mode = OFF;
PRAGMA synchronous = OFF;
PRAGMA cache_size = -512;
CREATE TABLE docs(rank INTEGER PRIMARY KEY, item INTEGER, sortkey TEXT, path TEXT UNIQUE, root TEXT, stem TEXT,
                  doc_id TEXT, done INTEGER DEFAULT 0);
CREATE INDEX docs_order ON docs(item, sortkey);
CREATE INDEX docs_id ON docs(doc_id);
CREATE INDEX docs_stem ON docs(stem);
"""


class DocumentSet:
    """The documents of a run in SQLite (``path``: a file, or ':memory:'), so a run over a million
    documents does not hold them in memory: each real path once, in the order added, with doc_ids."""

    def __init__(self, path: str = ":memory:") -> None:
        self.db = sqlite3.connect(path)
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    def add(self, file: str, root: str, item: int = 0) -> None:
        """A document of input argument number ``item``; ordered by item, then by path (files and
        folders sorted together by name); a second path to the same real file is ignored."""
        real = os.path.realpath(file)
        sortkey = file.replace(os.sep, "\0")  # "a/x.txt" before "a.txt", as path parts compare
        row = (item, sortkey, real, root, Path(real).stem)
        self.db.execute("INSERT OR IGNORE INTO docs(item, sortkey, path, root, stem) VALUES (?, ?, ?, ?, ?)", row)

    def add_inputs(self, items: Sequence[str | Path]) -> DocumentSet:
        """Every document named by files, folders and globs; then the doc_ids."""
        for n, item in enumerate(items):
            for file, root in _expand(str(item)):
                self.add(file, os.path.realpath(root), n)
        return self.assign_ids()

    def _taken(self, doc_id: str) -> bool:
        return self.db.execute("SELECT 1 FROM docs WHERE doc_id = ?", (doc_id,)).fetchone() is not None

    def assign_ids(self) -> DocumentSet:
        """doc_id = the stem, or the root-relative path where stems collide, made unique (module docstring)."""
        shared = "stem IN (SELECT stem FROM docs GROUP BY stem HAVING COUNT(*) > 1)"
        self.db.execute(f"UPDATE docs SET doc_id = stem WHERE NOT {shared}")
        colliding = self.db.execute(
            f"SELECT rank, path, root FROM docs WHERE {shared} ORDER BY item, sortkey"
        ).fetchall()
        for rank, path, root in colliding:  # only the colliding few are held
            base = doc_id = _relative_id(path, root)
            n = 1
            while self._taken(doc_id):
                n += 1
                doc_id = f"{base}-{n}"
            self.db.execute("UPDATE docs SET doc_id = ? WHERE rank = ?", (doc_id, rank))
        return self

    def mark_done(self, paths: Iterable[str]) -> None:
        self.db.executemany("UPDATE docs SET done = 1 WHERE path = ?", ((p,) for p in paths))

    def count(self, done: bool | None = None) -> int:
        where = "" if done is None else f" WHERE done = {int(done)}"
        return self.db.execute(f"SELECT COUNT(*) FROM docs{where}").fetchone()[0]

    def pending(self) -> Iterator[DocInput]:
        """The documents not marked done, in order, one at a time."""
        cursor = self.db.cursor()  # its own cursor: other statements may run while this one is read
        for path, root, doc_id in cursor.execute(
            "SELECT path, root, doc_id FROM docs WHERE done = 0 ORDER BY item, sortkey"
        ):
            yield DocInput(path, root, doc_id)

    def __iter__(self) -> Iterator[DocInput]:
        cursor = self.db.cursor()
        for path, root, doc_id in cursor.execute("SELECT path, root, doc_id FROM docs ORDER BY item, sortkey"):
            yield DocInput(path, root, doc_id)


def assign_doc_ids(docs: Iterable[DocInput]) -> list[DocInput]:
    """Each document once (by real path), with its doc_id (``DocumentSet.assign_ids``)."""
    docset = DocumentSet()
    try:
        for n, d in enumerate(docs):
            docset.add(d.path, d.root, n)
        return list(docset.assign_ids())
    finally:
        docset.close()


def document_inputs(items: Sequence[str | Path]) -> list[DocInput]:
    """The documents named by files, folders and globs, in a stable order, each real file once."""
    docset = DocumentSet()
    try:
        return list(docset.add_inputs(items))
    finally:
        docset.close()


def collect_documents(items: Sequence[str | Path]) -> list[Path]:
    """The real paths of ``document_inputs``."""
    return [Path(d.path) for d in document_inputs(items)]
