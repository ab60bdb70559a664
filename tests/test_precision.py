"""Encoder forward per precision (pipeline.extractors.precision): same decoding, cached ONNX export."""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path

import pytest

from tests.tiny_bert import build_tiny_ner

TEXT = "到2025年，全省制造业产品质量合格率达到94%以上。省市场监管局负责组织实施质量提升行动。\n第二段：加强标准化建设。"
HAS_ORT = importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnx") is not None


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_ner(tmp_path_factory.mktemp("tiny_precision"), [TEXT])


def _spans(model_dir: Path, precision: str) -> list[tuple[int, int, str]]:
    from pipeline.extractors.ner import NerModel

    (spans,) = NerModel(model_dir, precision=precision).predict([TEXT])
    return [(s.start, s.end, s.label) for s in spans]


def test_unknown_precision_is_a_clear_error(tiny: Path) -> None:
    from pipeline.extractors.ner import NerModel

    with pytest.raises(ValueError, match="fp32, bf16, int8, onnx, onnx-int8"):
        NerModel(tiny, precision="fp8")


def test_tokenizer_files_match_autotokenizer(tiny: Path) -> None:
    from transformers import AutoTokenizer

    from pipeline.core.alignment import PieceTokenizer
    from pipeline.extractors.precision import TokenizerFiles, load_tokenizer

    a, b = PieceTokenizer(AutoTokenizer.from_pretrained(str(tiny))), PieceTokenizer(load_tokenizer(tiny))
    assert isinstance(b.tokenizer, TokenizerFiles)
    assert (a.unk_id, a.cls_id, a.sep_id, a.pad_id) == (b.unk_id, b.cls_id, b.sep_id, b.pad_id)
    assert a.pieces(TEXT) == b.pieces(TEXT)


def test_int8_runs_and_keeps_the_decoding(tiny: Path) -> None:
    spans = _spans(tiny, "int8")
    assert all(0 <= s < e <= len(TEXT) for s, e, _ in spans)


def test_onnx_falls_back_to_bf16_with_one_message(
    tiny: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from pipeline.extractors import precision
    from pipeline.extractors.ner import NerModel

    monkeypatch.setattr(precision, "onnxruntime_available", lambda: False)
    with caplog.at_level(logging.WARNING):
        model = NerModel(tiny, precision="onnx")
    assert model.precision == "bf16"
    (message,) = [r.getMessage() for r in caplog.records]
    assert "onnxruntime" in message and "not installed" in message and "bf16" in message
    assert "\n" not in message


@pytest.mark.skipif(not HAS_ORT, reason="needs the 'onnx' extra (onnxruntime, onnx)")
def test_onnx_is_built_once_cached_and_rebuilt_when_stale(tiny: Path) -> None:
    import os

    from pipeline.extractors import precision

    assert _spans(tiny, "onnx") == _spans(tiny, "fp32")  # same weights, same decoding: same spans
    onnx, meta = tiny / "onnx" / "model.onnx", tiny / "onnx" / "model.onnx.json"
    built = onnx.stat().st_mtime_ns
    assert json.loads(meta.read_text())["weights_sha256"] == precision.weights_sha256(tiny)
    _spans(tiny, "onnx")
    assert onnx.stat().st_mtime_ns == built  # cached: not rebuilt
    os.utime(tiny / "config.json")  # touched, same content: still fresh (hash compared), not rebuilt
    _spans(tiny, "onnx")
    assert onnx.stat().st_mtime_ns == built
    weights = tiny / "model.safetensors"
    data = weights.read_bytes()
    try:
        weights.write_bytes(data[:-4] + bytes(4))  # other weights: stale, rebuilt
        _spans(tiny, "onnx")
        assert onnx.stat().st_mtime_ns != built
    finally:
        weights.write_bytes(data)
    int8 = _spans(tiny, "onnx-int8")
    assert (tiny / "onnx" / "model-int8.onnx").is_file()
    assert all(0 <= s < e <= len(TEXT) for s, e, _ in int8)
    assert not list((tiny / "onnx").glob("*.tmp"))  # written atomically
