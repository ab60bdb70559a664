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
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

DOCUMENT_SUFFIXES = (".txt", ".docx", ".html", ".htm")


@dataclass(frozen=True)
class DocInput:
    """One document of a run: its real path, the folder its doc_id is relative to, and the doc_id."""

    path: str
    root: str
    doc_id: str = ""


def _is_document(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in DOCUMENT_SUFFIXES


def _walk(folder: str) -> Iterator[str]:
    """Document files under ``folder`` in path order (files and folders sorted together by name),
    symlinked folders not followed."""
    with os.scandir(folder) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
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
        matches, root = sorted(glob.glob(item, recursive=True)), _glob_root(item)
    for match in matches:
        if os.path.isdir(match):
            yield from ((f, match) for f in _walk(match))
        else:
            yield match, root or os.path.dirname(match) or "."


def _relative_id(doc: DocInput) -> str:
    rel = os.path.relpath(doc.path, doc.root)
    return str(PurePosixPath(*Path(rel).parts).with_suffix("")) if not rel.startswith("..") else Path(doc.path).stem


def assign_doc_ids(docs: Sequence[DocInput]) -> list[DocInput]:
    """Each document with its doc_id: the stem, or the root-relative path where stems collide, made unique."""
    stems = Counter(Path(d.path).stem for d in docs)
    taken: set[str] = set()
    out = []
    for d in docs:
        base = Path(d.path).stem if stems[Path(d.path).stem] == 1 else _relative_id(d)
        doc_id, n = base, 1
        while doc_id in taken:
            n += 1
            doc_id = f"{base}-{n}"
        taken.add(doc_id)
        out.append(DocInput(d.path, d.root, doc_id))
    return out


def document_inputs(items: Sequence[str | Path]) -> list[DocInput]:
    """The documents named by files, folders and globs, in a stable order, each real file once."""
    seen: set[str] = set()
    docs = []
    for item in items:
        for file, root in _expand(str(item)):
            real = os.path.realpath(file)
            if real not in seen:
                seen.add(real)
                docs.append(DocInput(real, os.path.realpath(root)))
    return assign_doc_ids(docs)


def collect_documents(items: Sequence[str | Path]) -> list[Path]:
    """The real paths of ``document_inputs``."""
    return [Path(d.path) for d in document_inputs(items)]
