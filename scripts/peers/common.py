"""Shared plumbing of the peer NER systems (standard library only: every peer venv imports it).

Contract (the project's scorer reads the output of every peer the same way):
- input: a folds file ``{"folds": [{"name": "fold1", "train": [doc_id, ...], "test": [doc_id, ...]}, ...]}``
  and a folder of gold Label Studio exports (``*.json``, one task each, ``data.doc_id``, ``data.text``,
  ``labels`` result items; ``data.regions`` = ``[[start, end], ...]`` when only those regions are annotated);
- output: ``OUT/<peer>/<fold>/predictions.jsonl`` (one ``{"doc_id", "entities": [{"start", "end", "label"}]}``
  per test document, character offsets into the original text) and ``OUT/<peer>/<fold>/info.json``.

A peer supplies ``train(segments, workdir) -> model`` and ``predict(model, texts) -> spans per text``;
:func:`run_folds` does the rest (segmenting, offsets, timing, writing).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

LABELS = ("AGENCY", "INDICATOR", "VALUE", "DEADLINE", "ACTION")
MAX_CHARS = 250  # longest segment fed to a model; longer lines are cut at sentence ends
SENTENCE_END = re.compile(r"[。！？；!?;]")
PLACEHOLDER = "_"  # stands for a whitespace character where a peer cannot take one (same length: offsets hold)


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    label: str


@dataclass
class GoldDoc:
    doc_id: str
    text: str
    spans: list[Span]
    regions: list[tuple[int, int]] | None = None  # None: the whole text is annotated


@dataclass(frozen=True)
class Segment:
    """A piece of one line of a document: ``text == doc.text[start:start + len(text)]``."""

    doc_id: str
    start: int
    text: str
    spans: tuple[Span, ...] = ()  # gold spans, relative to the segment

    @property
    def end(self) -> int:
        return self.start + len(self.text)


@dataclass
class Fold:
    name: str
    train: list[str]
    test: list[str]


@dataclass
class Peer:
    """What one peer system supplies to :func:`run_folds`."""

    name: str
    train: Callable[[list[Segment], Path], Any]  # training segments, work folder -> model
    predict: Callable[[Any, list[str]], list[list[Span]]]  # model, texts -> spans relative to each text
    settings: dict[str, Any] = field(default_factory=dict)
    distributions: tuple[str, ...] = ()  # package names whose versions go to info.json


# ---------------------------------------------------------------- reading


def load_folds(path: str | Path) -> list[Fold]:
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    return [Fold(str(f["name"]), [str(d) for d in f["train"]], [str(d) for d in f["test"]]) for f in raw["folds"]]


def _pick_annotation(task: dict[str, Any]) -> dict[str, Any] | None:
    """The latest completed, non-cancelled annotation (as the project's loader picks it)."""
    done = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
    if not done:
        return None
    return max(done, key=lambda a: (str(a.get("updated_at") or ""), a.get("id") or 0))


def _task_doc(task: dict[str, Any], path: Path) -> GoldDoc:
    ann = _pick_annotation(task) or {}
    spans = []
    for item in ann.get("result") or []:
        value = item.get("value") or {}
        if item.get("type") == "labels" and value.get("labels"):
            spans.append(Span(int(value["start"]), int(value["end"]), str(value["labels"][0])))
    data = task["data"]
    regions = data.get("regions")
    return GoldDoc(
        doc_id=str(data.get("doc_id") or f"{path.stem}#{task.get('id')}"),
        text=data["text"],
        spans=sorted(spans, key=lambda s: (s.start, s.end)),
        regions=None if regions is None else [(int(a), int(b)) for a, b in regions],
    )


def load_gold(folder: str | Path) -> dict[str, GoldDoc]:
    """doc_id -> document, from every ``*.json`` export directly inside ``folder``."""
    docs: dict[str, GoldDoc] = {}
    for path in sorted(Path(folder).glob("*.json")):
        raw = json.loads(path.read_text(encoding="utf-8-sig"))
        for task in raw if isinstance(raw, list) else [raw]:
            if isinstance(task, dict) and isinstance(task.get("data"), dict) and "text" in task["data"]:
                doc = _task_doc(task, path)
                docs[doc.doc_id] = doc
    return docs


def select(gold: dict[str, GoldDoc], ids: Iterable[str]) -> list[GoldDoc]:
    ids = list(ids)
    missing = [i for i in ids if i not in gold]
    if missing:
        raise SystemExit(f"doc_id(s) of the folds file not found among the annotations: {', '.join(missing)}")
    return [gold[i] for i in ids]


# ---------------------------------------------------------------- segmenting and tags


def _line_bounds(text: str) -> list[tuple[int, int]]:
    """Non-blank lines as (start, end), the line break and a trailing carriage return left out."""
    bounds, pos = [], 0
    for line in text.split("\n"):
        end = pos + len(line.rstrip("\r"))
        if line.strip():
            bounds.append((pos, end))
        pos += len(line) + 1
    return bounds


def _cut_points(text: str, start: int, end: int, max_chars: int, blocked: set[int]) -> list[int]:
    """Cut positions of text[start:end] into pieces of at most max_chars: after sentence ends where possible,
    never at a position in ``blocked`` (inside a gold span) unless nothing else is left."""
    ends = [m.end() for m in SENTENCE_END.finditer(text, start, end)]
    cuts, last = [], start
    while end - last > max_chars:
        limit = last + max_chars
        options = [p for p in ends if last < p <= limit and p not in blocked]
        if not options:
            options = [p for p in range(limit, last, -1) if p not in blocked][:1] or [limit]
        cuts.append(options[-1])
        last = cuts[-1]
    return cuts


def segment_bounds(text: str, max_chars: int = MAX_CHARS, spans: Sequence[Span] = ()) -> list[tuple[int, int]]:
    """Lines of ``text``, lines longer than ``max_chars`` cut after sentence ends (not inside ``spans``)."""
    blocked = {p for s in spans for p in range(s.start + 1, s.end)}
    out = []
    for start, end in _line_bounds(text):
        points = [start, *_cut_points(text, start, end, max_chars, blocked), end]
        out += [(a, b) for a, b in zip(points, points[1:], strict=False) if text[a:b].strip()]
    return out


def _clip(bounds: list[tuple[int, int]], regions: list[tuple[int, int]] | None) -> list[tuple[int, int]]:
    if regions is None:
        return bounds
    clipped = [(max(a, ra), min(b, rb)) for a, b in bounds for ra, rb in regions]
    return sorted({(a, b) for a, b in clipped if a < b})


def training_segments(docs: Sequence[GoldDoc], max_chars: int = MAX_CHARS) -> list[Segment]:
    """Segments of the annotated part of each document (only ``regions`` where a document has them),
    with their gold spans; a span cut by a region edge is dropped."""
    segments = []
    for doc in docs:
        for a, b in _clip(segment_bounds(doc.text, max_chars, doc.spans), doc.regions):
            inside = tuple(Span(s.start - a, s.end - a, s.label) for s in doc.spans if a <= s.start and s.end <= b)
            if doc.text[a:b].strip():
                segments.append(Segment(doc.doc_id, a, doc.text[a:b], inside))
    return segments


def predict_segments(doc: GoldDoc, max_chars: int = MAX_CHARS) -> list[Segment]:
    """Segments of the whole text of a test document (no gold used)."""
    return [Segment(doc.doc_id, a, doc.text[a:b]) for a, b in segment_bounds(doc.text, max_chars)]


def visible(text: str) -> str:
    """``text`` with every whitespace character replaced by PLACEHOLDER (same length)."""
    return "".join(PLACEHOLDER if ch.isspace() else ch for ch in text)


def bio_tags(segment: Segment) -> list[str]:
    tags = ["O"] * len(segment.text)
    for s in segment.spans:
        tags[s.start] = f"B-{s.label}"
        for i in range(s.start + 1, s.end):
            tags[i] = f"I-{s.label}"
    return tags


def spans_from_bio(tags: Sequence[str]) -> list[Span]:
    """Spans of a BIO sequence (an I- tag that does not continue its label opens a span, as conlleval reads it)."""
    spans: list[Span] = []
    start, label = -1, ""
    for i, tag in enumerate([*tags, "O"]):
        prefix, _, name = tag.partition("-")
        if label and not (prefix == "I" and name == label):
            spans.append(Span(start, i, label))
            label = ""
        if prefix in ("B", "I") and not label:
            start, label = i, name
    return spans


def bio_labels() -> list[str]:
    return ["O"] + [f"{p}-{lab}" for lab in LABELS for p in ("B", "I")]


def holdout(segments: list[Segment], fraction: float, seed: int) -> tuple[list[Segment], list[Segment]]:
    """(train, dev): a seeded random ``fraction`` of the segments for a peer's own model selection."""
    order = list(range(len(segments)))
    random.Random(seed).shuffle(order)
    n_dev = max(1, round(len(segments) * fraction)) if fraction > 0 and len(segments) > 1 else 0
    dev = set(order[:n_dev])
    return [s for i, s in enumerate(segments) if i not in dev], [s for i, s in enumerate(segments) if i in dev]


# ---------------------------------------------------------------- the encoder, one character a token


def _never_prepend(node: Any) -> int:
    """Set every ``prepend_scheme`` in a tokenizer.json subtree to "never"; return how many were set."""
    if isinstance(node, dict):
        hits = 0
        if "prepend_scheme" in node:
            node["prepend_scheme"], hits = "never", 1
        return hits + sum(_never_prepend(v) for v in node.values())
    if isinstance(node, list):
        return sum(_never_prepend(v) for v in node)
    return 0


def char_encoder_copy(src: str | Path, dst: str | Path) -> Path:
    """A copy of a local encoder folder whose tokenizer does not prepend the word marker to each word.

    Fed one character at a time (HanLP, run_ner.py-style word lists), the SentencePiece/Metaspace tokenizer
    turns each character into the marker piece plus the character, and a tagger that keeps the first piece of
    every word sees the same marker id for every character (training runs, F1 sticks near 0.5). With
    ``prepend_scheme: "never"`` in the pre-tokenizer and the decoder every character is its own piece.
    The weights and other files are symbolic links; only tokenizer.json is rewritten. Nothing is downloaded."""
    src, dst = Path(src).resolve(), Path(dst)
    if not (src / "tokenizer.json").is_file() or not (src / "config.json").is_file():
        raise SystemExit(f"{src}: not a local encoder folder (config.json and tokenizer.json needed)")
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.name != "tokenizer.json" and f.is_file() and not (dst / f.name).exists():
            (dst / f.name).symlink_to(f)
    tok = json.loads((src / "tokenizer.json").read_text(encoding="utf-8"))
    hits = _never_prepend(tok.get("pre_tokenizer")) + _never_prepend(tok.get("decoder"))
    if not hits:
        raise SystemExit(f"{src}/tokenizer.json: no prepend_scheme to turn off (not a Metaspace tokenizer?)")
    (dst / "tokenizer.json").write_text(json.dumps(tok, ensure_ascii=False), encoding="utf-8")
    return dst


# ---------------------------------------------------------------- writing and running


def versions(names: Iterable[str]) -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def write_predictions(path: Path, rows: list[tuple[str, list[Span]]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".jsonl.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for doc_id, spans in rows:
            ents = [{"start": s.start, "end": s.end, "label": s.label} for s in sorted(spans, key=lambda s: s.start)]
            fh.write(json.dumps({"doc_id": doc_id, "entities": ents}, ensure_ascii=False) + "\n")
    tmp.replace(path)


def base_parser(peer: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"peer_{peer}.py", description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--folds", required=True, help="folds JSON: {'folds': [{'name', 'train': [...], 'test': [...]}]}")
    p.add_argument("--annotations", required=True, help="folder of gold Label Studio exports (*.json)")
    p.add_argument("--out", required=True, help=f"output root: writes OUT/{peer}/<fold>/predictions.jsonl, info.json")
    p.add_argument("--only", nargs="*", default=[], help="run only these folds (names)")
    p.add_argument("--max-chars", type=int, default=MAX_CHARS, help="longest segment (lines are cut at sentence ends)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--threads", type=int, default=1, help="CPU threads (2 threads ran 4x slower than 1 on the loaded shared box)"
    )
    p.add_argument("--work-dir", help="where models are written while a fold runs (default: a temporary folder)")
    p.add_argument("--keep-model", action="store_true", help="keep each fold's trained model under --work-dir")
    return p


def set_threads(n: int) -> None:
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(n)


def _predict_doc(peer: Peer, model: Any, doc: GoldDoc, max_chars: int) -> list[Span]:
    segments = predict_segments(doc, max_chars)
    found = peer.predict(model, [s.text for s in segments])
    return [
        Span(seg.start + s.start, seg.start + s.end, s.label)
        for seg, spans in zip(segments, found, strict=True)
        for s in spans
    ]


def run_fold(peer: Peer, fold: Fold, gold: dict[str, GoldDoc], args: argparse.Namespace, workdir: Path) -> dict:
    train_docs, test_docs = select(gold, fold.train), select(gold, fold.test)
    segments = training_segments(train_docs, args.max_chars)
    t0 = time.perf_counter()
    model = peer.train(segments, workdir)
    train_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    rows = [(doc.doc_id, _predict_doc(peer, model, doc, args.max_chars)) for doc in test_docs]
    predict_seconds = time.perf_counter() - t0
    out = Path(args.out) / peer.name / fold.name
    write_predictions(out / "predictions.jsonl", rows)
    test_chars = sum(len(d.text) for d in test_docs)
    info = {
        "peer": peer.name,
        "fold": fold.name,
        "train_docs": len(train_docs),
        "train_segments": len(segments),
        "train_chars": sum(len(s.text) for s in segments),
        "train_spans": sum(len(s.spans) for s in segments),
        "test_docs": len(test_docs),
        "test_chars": test_chars,
        "train_seconds": round(train_seconds, 2),
        "predict_seconds": round(predict_seconds, 3),
        "predict_chars_per_s": round(test_chars / max(predict_seconds, 1e-9), 1),
        "predicted_spans": sum(len(r[1]) for r in rows),
        "versions": versions(peer.distributions),
        "settings": {**peer.settings, "max_chars": args.max_chars, "seed": args.seed, "threads": args.threads},
        "command": sys.argv,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    write_json(out / "info.json", info)
    return info


def run_folds(peer: Peer, args: argparse.Namespace) -> int:
    """Train and predict every fold of the folds file (or those named by --only)."""
    gold = load_gold(args.annotations)
    folds = [f for f in load_folds(args.folds) if not args.only or f.name in args.only]
    if not folds:
        raise SystemExit("no fold to run (check --only against the folds file)")
    root = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix=f"peer-{peer.name}-"))
    try:
        for fold in folds:
            _run_and_report(peer, fold, gold, args, root / peer.name / fold.name)
    finally:  # models (HanLP's model.pt is a torch pickle) never outlive the run unless asked for
        if args.keep_model:
            print(f"models kept under {root}", flush=True)
        elif args.work_dir:
            shutil.rmtree(root / peer.name, ignore_errors=True)
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0


def _run_and_report(peer: Peer, fold: Fold, gold: dict[str, GoldDoc], args: argparse.Namespace, workdir: Path) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    info = run_fold(peer, fold, gold, args, workdir)
    print(
        f"{peer.name} {fold.name}: trained on {info['train_docs']} docs in {info['train_seconds']:.1f} s, "
        f"predicted {info['test_docs']} docs at {info['predict_chars_per_s']:,.0f} chars/s",
        flush=True,
    )
    if not args.keep_model:
        shutil.rmtree(workdir, ignore_errors=True)
