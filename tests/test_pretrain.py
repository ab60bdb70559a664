from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")


def test_pretrain_from_scratch_builds_a_char_vocab_and_lowers_the_loss(tmp_path):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from pipeline.training.pretrain import PretrainConfig, pretrain

    corpus = tmp_path / "corpus.txt"
    corpus.write_text(
        "到2015年，主要农产品质量安全抽检合格率稳定在96%以上。\n加强质量监督管理。\n" * 20, encoding="utf-8"
    )
    cfg = PretrainConfig(
        out=str(tmp_path / "run"),
        epochs=10,
        batch_size=8,
        max_length=32,
        learning_rate=3e-3,
        hidden_size=32,
        num_layers=1,
        num_heads=2,
        bf16=False,
    )
    model_dir = pretrain(cfg, [corpus])
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    assert tok.convert_tokens_to_ids("质") != tok.unk_token_id
    assert tok.unk_token_id not in tok("2015年96%")["input_ids"]
    AutoModelForMaskedLM.from_pretrained(str(model_dir))
    log = json.loads((tmp_path / "run" / "pretrain.json").read_text(encoding="utf-8"))["log_history"]
    losses = [h["loss"] for h in log if "loss" in h]
    assert losses[-1] < losses[0]


def test_empty_corpus_is_an_error(tmp_path):
    from pipeline.training.pretrain import PretrainConfig, pretrain

    (tmp_path / "empty.txt").write_text("\n\n", encoding="utf-8")
    with pytest.raises(ValueError, match="empty"):
        pretrain(PretrainConfig(out=str(tmp_path / "run")), [tmp_path / "empty.txt"])
