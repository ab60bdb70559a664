"""`planie extract --group-indicators embeddings`: a real encoder loaded from a folder merges groups."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import pipeline.apps.embeddings  # noqa: E402
from pipeline.apps.embeddings import load_embedder
from pipeline.cli.main import main
from tests.tiny_bert import build_tiny_bert, build_tiny_ner  # noqa: E402

PAIR = ("生活性服务业顾客满意度", "生产性服务业顾客满意度")  # both in the rules' targets of the seeds


@pytest.fixture(scope="module")
def seed_texts(seeds_dir: Path) -> list[str]:
    return [p.read_text(encoding="utf-8") for p in sorted(seeds_dir.glob("*.txt"))]


@pytest.fixture(scope="module")
def encoder(tmp_path_factory, seed_texts) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("encoder"), seed_texts)


def _indicators(out: Path) -> list[dict[str, str]]:
    with (out / "indicators.csv").open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _extract(seeds_dir: Path, out: Path, *options: str) -> int:
    return main(["extract", str(seeds_dir), "--out", str(out), "--model", "rules", "--quiet", *options])


def test_embedder_mean_pools_normalised_vectors(encoder) -> None:
    embed = load_embedder(encoder)
    names = ["产品质量合格率", "制造业产品质量合格率", "产品质量合格率", "亿元"]
    vecs = embed(names)
    assert vecs.shape == (4, 32)
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert np.allclose(vecs[0], vecs[2], atol=1e-6)
    assert np.allclose(embed(names[:1]), vecs[:1], atol=1e-5)  # padding in a batch changes nothing
    assert embed([]).shape == (0, 32)


def test_cli_loads_the_encoder_from_disk_and_merges(seeds_dir, encoder, tmp_path) -> None:
    assert _extract(seeds_dir, tmp_path / "strings") == 0
    strings = _indicators(tmp_path / "strings")
    assert len({r["indicator_group"] for r in strings}) > 5 and {r["match"] for r in strings} == {"string"}
    # every cosine is >= -1: all groups join the largest one, through the real model's embeddings
    opts = ["--group-indicators", "embeddings", "--embed-model", str(encoder), "--group-threshold", "-1"]
    assert _extract(seeds_dir, tmp_path / "all", *opts) == 0
    merged = _indicators(tmp_path / "all")
    assert len({r["indicator_group"] for r in merged}) == 1
    assert "embedding" in {r["match"] for r in merged} and len(merged) == len(strings)
    # above any cosine: nothing merges, the same table as the string rules
    opts[-1] = "1.01"
    assert _extract(seeds_dir, tmp_path / "none", *opts) == 0
    assert (tmp_path / "none" / "indicators.csv").read_bytes() == (tmp_path / "strings" / "indicators.csv").read_bytes()


def test_threshold_and_embeddings_reach_the_grouping(seeds_dir, encoder, tmp_path, monkeypatch) -> None:
    """A deterministic fake embedding: the two service-sector satisfaction indicators close, the rest apart."""
    calls: dict[str, object] = {}

    def fake_loader(folder, device="cpu"):  # noqa: ANN001, ANN202
        calls["folder"] = str(folder)

        def embed(names: list[str]) -> np.ndarray:
            calls["names"] = list(names)
            vecs = np.eye(len(names), len(names) + 1)  # orthogonal, with a spare last axis
            for i, name in enumerate(names):
                if name in PAIR:
                    vecs[i] = 0.0
                    vecs[i, -1] = 1.0
                    vecs[i, i] = 0.6 if name == PAIR[1] else 0.0  # cosine 0.857
            return vecs

        return embed

    monkeypatch.setattr(pipeline.apps.embeddings, "load_embedder", fake_loader)
    opts = ["--group-indicators", "embeddings", "--embed-model", str(encoder)]
    assert _extract(seeds_dir, tmp_path / "a", *opts, "--group-threshold", "0.85") == 0
    assert calls["folder"] == str(encoder)
    assert set(PAIR) <= set(calls["names"])
    rows = _indicators(tmp_path / "a")
    joined = [r for r in rows if r["match"] == "embedding"]
    assert len(joined) == 1 and {joined[0]["indicator_group"], joined[0]["indicator"]} == set(PAIR)
    assert len({r["indicator_group"] for r in rows}) == len(calls["names"]) - 1
    assert _extract(seeds_dir, tmp_path / "b", *opts, "--group-threshold", "0.9") == 0
    assert {r["match"] for r in _indicators(tmp_path / "b")} == {"string"}


def test_default_embedding_model_is_the_extraction_model(seeds_dir, seed_texts, tmp_path, monkeypatch) -> None:
    model = build_tiny_ner(tmp_path / "ner", seed_texts)
    seen = []

    def spy(folder, device="cpu"):  # noqa: ANN001, ANN202
        seen.append(str(folder))
        return load_embedder(folder, device)

    monkeypatch.setattr(pipeline.apps.embeddings, "load_embedder", spy)
    doc = sorted(seeds_dir.glob("*.txt"))[1]
    args = ["extract", str(doc), "--out", str(tmp_path / "out"), "--model", str(model), "--quiet"]
    assert main([*args, "--group-indicators", "embeddings", "--precision", "fp32"]) == 0
    assert seen == [str(model)]  # a token-classification folder: its encoder is loaded with AutoModel


def test_rules_without_embed_model_is_a_clear_error(seeds_dir, tmp_path, capsys) -> None:
    assert _extract(seeds_dir, tmp_path / "out", "--group-indicators", "embeddings") == 2
    assert "--embed-model" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_missing_embed_model_folder_is_a_clear_error(seeds_dir, tmp_path, capsys) -> None:
    # exit code 3 (environment: a missing model), one line on stderr, no traceback
    opts = ("--group-indicators", "embeddings", "--embed-model", str(tmp_path))
    assert _extract(seeds_dir, tmp_path / "out", *opts) == 3
    err = capsys.readouterr().err
    assert "cannot load the embedding model" in err and "Traceback" not in err
