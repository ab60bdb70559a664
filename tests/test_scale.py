"""Ray Data extraction (pipeline.apps.scale) gives the records of the single-process run.

Needs ``ray[data]`` (in the ``test`` and ``scale`` extras); without it the tests skip, unless
PLANIE_REQUIRE_RAY=1 (set by .ci/run), which makes a missing Ray a failure.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

if os.environ.get("PLANIE_REQUIRE_RAY") == "1":
    import ray  # noqa: F401  (CI: a missing Ray fails here instead of skipping)
ray = pytest.importorskip("ray", reason='ray[data] not installed (pip install -e ".[scale]")')

from pipeline.apps.batch import run_extraction  # noqa: E402
from pipeline.apps.scale import run_extraction_ray  # noqa: E402
from pipeline.extractors.extract import load_extractor  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance with two CPUs for the module (run_extraction_ray reuses it)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, seeds_dir: Path) -> list[Path]:
    """The seeds, one short .html and an unreadable file (reported, not fatal)."""
    folder = tmp_path_factory.mktemp("corpus")
    paths = []
    for seed in sorted(seeds_dir.glob("*.txt")):
        paths.append(folder / seed.name)
        paths[-1].write_bytes(seed.read_bytes())
    html = folder / "page.html"
    html.write_text("<p>到2020年，全省产品质量合格率达到95%以上。</p>", encoding="utf-8")
    broken = folder / "broken.txt"
    broken.write_bytes(b"\x00\xff" * 50)
    return [*paths[:2], html, broken, *paths[2:]]


def _lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "extractions.jsonl").read_text(encoding="utf-8").splitlines()]


def _same_outputs(single: Path, scaled: Path) -> None:
    assert _lines(scaled) == _lines(single)  # record for record, in input order
    for name in ("targets.csv", "tasks.csv", "indicators.csv", "index.html", "summary.html"):
        assert (scaled / name).read_bytes() == (single / name).read_bytes(), name


@pytest.mark.parametrize("kind", ["rules", "tiny-model"])
def test_ray_with_two_workers_gives_the_single_process_records(kind, local_ray, corpus, tmp_path, seeds_dir) -> None:
    if kind == "rules":
        model, options = "rules", {}
    else:
        from tests.tiny_bert import build_tiny_ner

        texts = [p.read_text(encoding="utf-8") for p in sorted(seeds_dir.glob("*.txt"))]
        model, options = str(build_tiny_ner(tmp_path / "tiny", texts)), {"precision": "fp32", "batch_size": 8}
    single = run_extraction(corpus, tmp_path / "single", load_extractor(model, **options), batch_docs=3, progress=False)
    scaled = run_extraction_ray(
        corpus, tmp_path / "ray", model, options=options, workers=2, batch_docs=3, progress=False
    )
    assert ray.is_initialized()  # the fixture's instance was used, not a new one
    assert scaled.extracted == single.extracted == len(corpus) - 1
    assert scaled.errors == single.errors and "broken.txt" in scaled.errors[0]
    assert scaled.chars == single.chars
    _same_outputs(tmp_path / "single", tmp_path / "ray")
    if kind == "tiny-model":
        assert any(r["entities"] for r in _lines(tmp_path / "ray"))
        assert _lines(tmp_path / "ray")[0]["model"]["ner"].startswith("model:")


def test_ray_resume_keeps_done_documents(local_ray, corpus, tmp_path) -> None:
    out = tmp_path / "out"
    first = run_extraction_ray(corpus[:3], out, "rules", workers=2, progress=False)
    assert first.extracted == 3
    again = run_extraction_ray(corpus, out, "rules", workers=2, resume=True, progress=False)
    assert again.skipped == 3 and again.extracted == len(corpus) - 4
    run_extraction(corpus, tmp_path / "single", load_extractor("rules"), progress=False)
    assert _lines(out) == _lines(tmp_path / "single")


def test_unknown_model_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(ValueError, match="neither 'rules' nor a model folder"):
        run_extraction_ray([tmp_path / "a.txt"], tmp_path / "out", str(tmp_path / "missing"))


def test_cli_ray_switch(local_ray, corpus, tmp_path, capsys) -> None:
    from pipeline.cli.main import main

    args = ["extract", *map(str, corpus), "--model", "rules", "--quiet", "--ray", "local", "--ray-workers", "2"]
    assert main([*args, "--out", str(tmp_path / "ray")]) == 1  # broken.txt is reported, the rest extracted
    assert "broken.txt" in capsys.readouterr().err
    run_extraction(corpus, tmp_path / "single", load_extractor("rules"), progress=False)
    assert _lines(tmp_path / "ray") == _lines(tmp_path / "single")
