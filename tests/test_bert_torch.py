"""The plain-torch BERT (pipeline.extractors.bert_torch) gives transformers' outputs bit for bit, reads
the weights once, and leaves models it does not reproduce to transformers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.tiny_bert import build_tiny_ner

TEXTS = ["到2025年，全省制造业产品质量合格率达到94%以上。", "省市场监管局负责组织实施质量提升行动。"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_ner(tmp_path_factory.mktemp("tiny_bert_torch"), TEXTS)


def _batch(vocab: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    ids = rng.integers(5, vocab, size=(3, 20)).astype(np.int64)
    mask = np.ones_like(ids)
    mask[1, 14:] = 0
    mask[2, 5:] = 0
    ids[mask == 0] = 0
    return ids, mask


@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8"])
def test_same_outputs_as_transformers(tiny: Path, precision: str) -> None:
    from pipeline.extractors.bert_torch import load_bert_token_classifier
    from pipeline.extractors.ner import load_token_classifier
    from pipeline.extractors.precision import TorchForward

    loaded = load_bert_token_classifier(tiny)
    assert loaded is not None
    fast, crf = loaded
    assert crf == {}  # a softmax model
    reference = load_token_classifier(tiny).eval().float()
    ids, mask = _batch(fast.config["vocab_size"])
    for m in (mask, np.ones_like(mask)):  # with padding (a boolean mask) and without (no mask, as transformers)
        a = TorchForward(reference, precision)(ids, m)
        b = TorchForward(fast, precision)(ids, m)
        assert np.array_equal(a, b)


def test_crf_tensors_come_from_the_same_read(tiny: Path, tmp_path: Path) -> None:
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    from pipeline.extractors.bert_torch import load_bert_token_classifier
    from pipeline.extractors.ner import Decoder, NerModel, crf_weights

    model = tmp_path / "crf"
    shutil.copytree(tiny, model)
    tensors = load_file(str(model / "model.safetensors"))
    n = len(json.loads((model / "config.json").read_text())["id2label"])
    tensors.update({f"crf.{k}": torch.randn(*s) for k, s in [("transitions", (n, n)), ("start_transitions", (n,))]})
    tensors["crf.end_transitions"] = torch.randn(n)
    save_file(tensors, str(model / "model.safetensors"), metadata={"format": "pt"})
    _, crf = load_bert_token_classifier(model)  # type: ignore[misc]
    expected = crf_weights(model)
    assert expected is not None and sorted(crf) == sorted(expected)
    assert all(np.array_equal(crf[k], expected[k]) for k in crf)
    ner = NerModel(model, precision="fp32")  # its decoder takes the CRF from the model's read
    reference = Decoder([ner.id2label[i] for i in range(n)], expected)
    assert np.array_equal(ner.decoder.transitions, reference.transitions)
    assert np.array_equal(ner.decoder.start, reference.start) and np.array_equal(ner.decoder.end, reference.end)


def test_other_models_are_left_to_transformers(tiny: Path, tmp_path: Path) -> None:
    import shutil

    from pipeline.extractors.bert_torch import load_bert_token_classifier, supports
    from pipeline.extractors.ner import NerModel

    config = json.loads((tiny / "config.json").read_text())
    assert supports(config)
    assert not supports({**config, "position_embedding_type": "relative_key"})
    assert not supports({**config, "model_type": "roberta"})
    other = tmp_path / "relative"
    shutil.copytree(tiny, other)
    (other / "config.json").write_text(json.dumps({**config, "position_embedding_type": "relative_key"}))
    assert load_bert_token_classifier(other) is None
    model = NerModel(other, precision="fp32")
    model.predict(TEXTS)
    assert type(model.model).__name__ == "BertForTokenClassification"  # transformers' class
