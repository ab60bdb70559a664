"""The Python API: ``pipeline.load().extract(text)`` gives the record ``planie extract`` writes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import pipeline
from pipeline.cli.main import main
from pipeline.core.errors import MissingModelError
from pipeline.extractors.extract import DEFAULT_MODEL

SENTENCES = ["到2015年，全省产品质量合格率达到95%以上。", "各市人民政府要加强质量监管。"]


def test_import_pipeline_is_cheap() -> None:
    code = "import sys, pipeline; print(sorted(m for m in ('torch', 'transformers', 'numpy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_shipped_model_gives_the_extract_record(seeds_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    seed = sorted(seeds_dir.glob("*.txt"))[1]
    assert main(["extract", str(seed), "--out", str(tmp_path), "--quiet"]) == 0
    expected = json.loads((tmp_path / "extractions.jsonl").read_text(encoding="utf-8").splitlines()[0])
    ex = pipeline.load()
    assert ex.extract(seed.read_text(encoding="utf-8"), doc_id=seed.stem, source=str(seed)) == expected
    assert expected["entities"] and expected["model"]["ner"].startswith("planie-ner")


def test_extract_many_batches_like_single_calls() -> None:
    ex = pipeline.load("rules")
    ex.batch_docs = 1
    many = ex.extract_many(SENTENCES)
    assert [r["doc_id"] for r in many] == ["doc1", "doc2"]
    assert many[0] == ex.extract(SENTENCES[0], doc_id="doc1")
    assert many[0]["targets"] == [
        {"indicator": "产品质量合格率", "value": "95%以上", "deadline": "到2015年", "sentence": SENTENCES[0]}
    ]
    assert many[0]["model"] == {"ner": "rules", "relations": "rules-linker"}
    with pytest.raises(ValueError, match="give one of each"):
        ex.extract_many(SENTENCES, doc_ids=["only-one"])


def test_load_takes_a_folder_and_names_a_missing_one(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    assert pipeline.load(DEFAULT_MODEL).extract(SENTENCES[0])["model"]["ner"].startswith("planie-ner")
    with pytest.raises(MissingModelError, match="neither 'rules' nor a model folder"):
        pipeline.load(tmp_path / "nothing")
