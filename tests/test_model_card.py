"""The model card's metadata header: the standard keys, and every reported number quoted from its source."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("scripts/results/cv-province/shipped/cv.md",)


def card_metadata() -> dict:
    text = (REPO / "models" / "planie-ner" / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n", 2)[1])


def test_model_card_has_the_standard_header() -> None:
    meta = card_metadata()
    assert meta["language"] == ["zh"] and meta["license"] == "mit"
    assert meta["pipeline_tag"] == "token-classification" and "ner" in meta["tags"]
    assert meta["model-index"][0]["name"] == "planie-ner"


def test_model_card_numbers_come_from_the_reports() -> None:
    reports = "\n".join((REPO / s).read_text(encoding="utf-8") for s in SOURCES)
    values = [m["value"] for r in card_metadata()["model-index"][0]["results"] for m in r["metrics"]]
    assert len(values) == 5
    assert [v for v in values if f"{v:.3f}" not in reports] == []
