"""A tiny randomly initialised BERT with a character vocabulary, built inside the tests."""

from __future__ import annotations

from pathlib import Path


def build_tiny_bert(folder: Path, texts: list[str], num_labels: int | None = None) -> Path:
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    chars = sorted({c for t in texts for c in t if not c.isspace()})
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    digits = [str(i) for i in range(10)] + [f"##{i}" for i in range(10)]
    vocab = specials + list(dict.fromkeys(digits + chars))
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = BertTokenizerFast(vocab={piece: i for i, piece in enumerate(vocab)}, do_lower_case=False)
    tokenizer.save_pretrained(str(folder))
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=256,
    )
    BertForMaskedLM(config).save_pretrained(str(folder))
    return folder
