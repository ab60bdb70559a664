from __future__ import annotations

from pipeline.core.annotations import AnnotatedDoc, Relation, Span
from pipeline.evaluation.report import evaluation_report
from pipeline.evaluation.scoring import score_entities, score_relations, score_targets, span_errors

TEXT = "到2015年，合格率达到96%以上，满意度达到80以上。"
GOLD = AnnotatedDoc(
    "d",
    TEXT,
    (
        Span("d1", 0, 6, "DEADLINE", "到2015年"),
        Span("i1", 7, 10, "INDICATOR", "合格率"),
        Span("v1", 12, 17, "VALUE", "96%以上"),
        Span("i2", 18, 21, "INDICATOR", "满意度"),
        Span("v2", 23, 27, "VALUE", "80以上"),
    ),
    (
        Relation("v1", "i1", "value_of"),
        Relation("v2", "i2", "value_of"),
        Relation("d1", "v1", "deadline_of"),
        Relation("d1", "v2", "deadline_of"),
    ),
)
PRED = AnnotatedDoc(
    "d",
    TEXT,
    (
        Span("a", 0, 6, "DEADLINE", "到2015年"),
        Span("b", 7, 10, "INDICATOR", "合格率"),
        Span("c", 12, 15, "VALUE", "96%"),  # boundary error
        Span("e", 18, 21, "AGENCY", "满意度"),  # wrong type
        Span("f", 23, 27, "VALUE", "80以上"),
        Span("g", 11, 12, "ACTION", "到"),  # spurious
    ),
    (Relation("c", "b", "value_of"), Relation("a", "f", "deadline_of"), Relation("a", "c", "deadline_of")),
)
LABELS = ("AGENCY", "INDICATOR", "VALUE", "DEADLINE", "ACTION")


def test_entity_scores_are_exact():
    s = score_entities([GOLD], [PRED], LABELS)
    assert (s["micro"].tp, s["micro"].fp, s["micro"].fn) == (3, 3, 2)
    assert s["VALUE"].precision == 0.5 and s["VALUE"].recall == 0.5
    assert s["DEADLINE"].f1 == 1.0
    assert s["AGENCY"].precision == 0.0 and s["AGENCY"].support == 0
    assert abs(s["micro"].f1 - 2 * 0.5 * 0.6 / 1.1) < 1e-12


def test_relation_scores_need_exact_endpoints():
    s = score_relations([GOLD], [PRED], ("value_of", "deadline_of", "responsible_for"))
    assert (s["value_of"].tp, s["value_of"].fp, s["value_of"].fn) == (0, 1, 2)
    assert (s["deadline_of"].tp, s["deadline_of"].fp, s["deadline_of"].fn) == (1, 1, 1)


def test_target_triples():
    t = score_targets([GOLD], [PRED])
    assert (t.tp, t.fp, t.fn) == (0, 1, 2)
    assert score_targets([GOLD], [GOLD]).f1 == 1.0


def test_error_kinds():
    kinds = sorted(e.kind for e in span_errors(GOLD, PRED))
    assert kinds == ["boundary", "spurious", "wrong_type"]
    missed = AnnotatedDoc("d", TEXT, PRED.spans[:2])
    assert sorted(e.kind for e in span_errors(GOLD, missed)) == ["missed", "missed", "missed"]


def test_report_markdown_and_files(tmp_path, schema):
    report = evaluation_report([GOLD], [PRED], schema, title="t")
    md = report.markdown()
    assert "| VALUE | 0.500 | 0.500 | 0.500 | 2 |" in md
    report.write(tmp_path)
    assert (tmp_path / "metrics.json").exists() and (tmp_path / "report.md").read_text(encoding="utf-8") == md


def test_cv_summary_averages_only_folds_with_support():
    from pipeline.evaluation.crossval import cv_markdown, summarise
    from pipeline.training.splits import Fold

    def cell(f1, support, tp, fp, fn):
        return {"precision": 0.0, "recall": 0.0, "f1": f1, "support": support, "tp": tp, "fp": fp, "fn": fn}

    def scores(f1_value, support_value, f1_rules):
        model = {
            lab: cell(f1_value, support_value, 2, 1, 1) if lab == "VALUE" else cell(1.0, 1, 2, 1, 1)
            for lab in (*LABELS, "micro")
        }
        rules = {lab: cell(f1_rules, 1, 1, 0, 0) for lab in (*LABELS, "micro")}
        return {"model": {"entities": model}, "rules": {"entities": rules}}

    folds = [Fold("a", ("ga",), ("d2",), ("d1",)), Fold("b", ("gb",), ("d1",), ("d2",))]
    plan = {"group": "doc", "k": 2, "seed": 1}
    summary = summarise(folds, {"a": scores(0.8, 3, 0.5), "b": scores(0.0, 0, 0.7)}, plan)
    assert summary["mean"]["model"]["entities"]["VALUE"] == 0.8  # fold b has no VALUE in its gold
    assert summary["mean"]["rules"]["entities"]["ACTION"] == 0.6
    assert summary["pooled"]["model"]["entities"]["ACTION"]["f1"] == round(2 * 4 / (2 * 4 + 2 + 2), 4)
    assert summary["pooled"]["model"]["entities"]["ACTION"]["precision"] == round(4 / 6, 4)
    table = cv_markdown(summary, "t")
    assert "| b | gb |" in table and "0.80 / 0.50" in table
