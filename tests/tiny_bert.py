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


def build_tiny_ner(folder: Path, texts: list[str], max_length: int = 64, stride: int = 48, seed: int = 0) -> Path:
    """A randomly initialised token-classification model saved as a planie NER model folder
    (weights, tokenizer, planie.json), with the schema's BIO labels."""
    import json

    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from pipeline.core.schema import load_schema

    torch.manual_seed(seed)
    base = build_tiny_bert(folder / "base", texts)
    labels = load_schema().bio_labels()
    model = AutoModelForTokenClassification.from_pretrained(
        str(base),
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={x: i for i, x in enumerate(labels)},
    )
    out = folder / "model"
    model.save_pretrained(str(out))
    AutoTokenizer.from_pretrained(str(base)).save_pretrained(str(out))
    meta = {"labels": labels, "max_length": max_length, "stride": stride, "base": "tiny"}
    (out / "planie.json").write_text(json.dumps(meta), encoding="utf-8")
    return out
