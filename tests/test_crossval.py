"""Grouped K-fold: the fold assignment, province from the gold, and one tiny cross-validation run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.core.annotations import AnnotatedDoc, Span, load_gold, write_export
from pipeline.core.errors import InputError, UsageError
from pipeline.training.splits import assign_folds, gold_groups

GROUPS = {f"d{i}": g for i, g in enumerate("AAABBCDDEFGH")}
CHARS = {f"d{i}": n for i, n in enumerate([900, 50, 50, 400, 300, 650, 100, 100, 500, 200, 250, 80])}


def test_folds_keep_groups_whole_balance_characters_and_are_deterministic():
    folds = assign_folds(GROUPS, CHARS, 4, seed=3)
    assert [f.name for f in folds] == ["fold1", "fold2", "fold3", "fold4"]
    assert sorted(d for f in folds for d in f.test) == sorted(GROUPS)  # every document tested once
    for f in folds:
        assert set(f.train) | set(f.test) == set(GROUPS) and not set(f.train) & set(f.test)
        assert {GROUPS[d] for d in f.test} == set(f.groups)
        assert not {GROUPS[d] for d in f.train} & set(f.groups)  # a group is never split
    loads = [sum(CHARS[d] for d in f.test) for f in folds]
    assert max(loads) - min(loads) <= max(sum(CHARS[d] for d in GROUPS if GROUPS[d] == g) for g in "ABCDEFGH")
    assert max(loads) < 1.3 * sum(CHARS.values()) / 4
    assert folds == assign_folds(GROUPS, CHARS, 4, seed=3)
    assert folds == assign_folds(dict(reversed(GROUPS.items())), CHARS, 4, seed=3)  # input order does not matter
    # the seed orders groups of equal size
    ties = {f"e{i}": g for i, g in enumerate("PQRSTU")}
    seen = {tuple(f.groups for f in assign_folds(ties, dict.fromkeys(ties, 10), 3, s)) for s in range(10)}
    assert len(seen) > 1
    with pytest.raises(UsageError):
        assign_folds(GROUPS, CHARS, 9, seed=3)  # more folds than groups


def test_province_comes_from_data_meta_and_survives_a_round_trip(tmp_path):
    doc = AnnotatedDoc("x", "文本", (), meta={"province": "河北省", "place": ""})
    write_export(tmp_path / "x.json", [doc])
    task = json.loads((tmp_path / "x.json").read_text(encoding="utf-8"))[0]
    assert task["data"]["meta"] == {"province": "河北省", "place": ""}
    (loaded,) = load_gold(tmp_path / "x.json")
    assert loaded.meta["province"] == "河北省"
    write_export(tmp_path / "y.json", [AnnotatedDoc("y", "文本", ())])
    with pytest.raises(InputError, match=r"y\.json.*province"):
        gold_groups(tmp_path, "province")
    docs, groups = gold_groups(tmp_path, "doc")
    assert groups == {"x": "x", "y": "y"}


TEXT = "到2015年，主要农产品质量安全抽检合格率稳定在96%以上，省质监局负责。"


def _spans(text: str) -> tuple[Span, ...]:
    out = []
    for sid, piece, label in (
        ("d", "到2015年", "DEADLINE"),
        ("i", "主要农产品质量安全抽检合格率", "INDICATOR"),
        ("v", "96%以上", "VALUE"),
    ):
        start = text.index(piece)
        out.append(Span(sid, start, start + len(piece), label, piece))
    return tuple(out)


def tiny_cv_config(tmp_path: Path, provinces: dict[str, str], copies: dict[str, int] | None = None):
    """Gold exports of TEXT (two copies per document unless ``copies`` says otherwise), one per doc_id
    with its province, and a one-epoch NER config on a tiny BERT built in ``tmp_path``."""
    from pipeline.training.ner_training import NerConfig
    from tests.tiny_bert import build_tiny_bert

    gold = tmp_path / "gold"
    for doc_id, province in provinces.items():
        text = (TEXT + "\n") * (copies or {}).get(doc_id, 2)
        write_export(gold / f"{doc_id}.json", [AnnotatedDoc(doc_id, text, _spans(text), meta={"province": province})])
    (tmp_path / "splits.yaml").write_text("train: [a]\ndev_block: 0.5\n", encoding="utf-8")
    return NerConfig(
        base=str(build_tiny_bert(tmp_path / "base", [TEXT])),
        annotations=str(gold),
        splits=str(tmp_path / "splits.yaml"),
        max_length=32,
        stride=24,
        epochs=1,
        batch_size=4,
        bf16=False,
    )


def test_cv_by_province_on_a_tiny_model(tmp_path, capsys):
    pytest.importorskip("torch")
    from pipeline.evaluation.crossval import CvPlan, cross_validate

    provinces = {"a": "河北省", "b": "河北省", "c": "河南省", "d": "海南省"}
    cfg = tiny_cv_config(tmp_path, provinces, copies={"a": 3})
    out = tmp_path / "cv"
    summary = cross_validate(cfg, out, CvPlan(group="province", k=3))
    folds = json.loads((out / "folds.json").read_text(encoding="utf-8"))
    assert folds["group"] == "province" and folds["k"] == 3 and folds["seed"] == cfg.seed
    assert {tuple(f["test"]) for f in folds["folds"]} == {("a", "b"), ("c",), ("d",)}
    assert [f["name"] for f in summary["folds"]] == ["fold1", "fold2", "fold3"]
    assert "fold 1/3 fold1 (河北省): train 2 docs" in capsys.readouterr().err
    pooled = summary["pooled"]["model"]
    assert set(summary["systems"]) == {"model", "rules"} and set(pooled) == {"entities", "relations", "targets"}
    fold_tp = sum(f["scores"]["rules"]["entities"]["micro"]["tp"] for f in summary["folds"])
    assert summary["pooled"]["rules"]["entities"]["micro"]["tp"] == fold_tp
    assert {"precision", "recall", "f1"} <= set(pooled["entities"]["VALUE"])
    assert "## Pooled over folds" in (out / "cv.md").read_text(encoding="utf-8")
    assert not any((out / f["name"] / "model").exists() for f in folds["folds"])
    # resume: every fold done, nothing is trained again; other folds in the same folder are refused
    cross_validate(cfg, out, CvPlan(group="province", k=3))
    assert "done before, skipped" in capsys.readouterr().err
    with pytest.raises(UsageError, match="folds.json"):
        cross_validate(cfg, out, CvPlan(group="doc"))


def test_kept_fold_models_are_rescored_without_training_and_a_sample_trains_fewer_documents(tmp_path, capsys):
    pytest.importorskip("torch")
    from pipeline.evaluation.crossval import CvPlan, cross_validate, rescore_folds
    from pipeline.extractors.extract import ModelExtractor

    cfg = tiny_cv_config(tmp_path, {"a": "河北省", "b": "河南省", "c": "河南省", "d": "海南省"})
    out = tmp_path / "cv"
    summary = cross_validate(cfg, out, CvPlan(group="province", k=2, keep_models=True, train_docs=1))
    assert summary["train_docs"] == 1
    for fold in json.loads((out / "folds.json").read_text(encoding="utf-8"))["folds"]:
        run = json.loads((out / fold["name"] / "run.json").read_text(encoding="utf-8"))
        assert len(run["config"]["train_docs"]) == 1 and run["config"]["train_docs"][0] in fold["train"]
        assert (out / fold["name"] / "model" / "planie.json").exists()
    rescored = rescore_folds(
        out, tmp_path / "re", cfg.annotations, lambda m: ModelExtractor(m, section_rules=True), "re", traditional=True
    )
    assert set(rescored["systems"]) == {"model", "rules", "traditional"}
    assert rescored["rescored_from"] == str(out) and (tmp_path / "re" / "cv.md").exists()
    assert rescored["train_docs"] == 1
    pooled = rescored["pooled"]["rules"]["entities"]["micro"]
    assert pooled == summary["pooled"]["rules"]["entities"]["micro"]  # same documents, same rules
