"""Section kinds of plan documents (pipeline.core.sections) and the section-rules step
(pipeline.extractors.section_rules, NerModel's ``section_rules``)."""

from __future__ import annotations

import json

import pytest

from pipeline.core.annotations import Span
from pipeline.core.errors import ConfigError
from pipeline.core.schema import load_schema
from pipeline.core.sections import SECTION_KINDS, SectionIndex, heading_kind, normalised, sentence_kinds
from pipeline.extractors.section_rules import drop_by_section

PLAN = """某某省人民政府办公厅关于印发某某省质量提升行动方案的通知
某政办发〔2023〕12号
各市人民政府，省政府各部门：
现将《某某省质量提升行动方案》印发给你们，请认真贯彻执行。
某某省人民政府办公厅
2023年5月6日
某某省质量提升行动方案
为深入贯彻落实《质量强国建设纲要》，推动高质量发展，结合我省实际，制定本方案。
一、总体要求
（一）指导思想
以习近平新时代中国特色社会主义思想为指导，深入实施质量强省战略。
（二）主要目标
到2025年，制造业产品质量合格率达到94%以上，培育团体标准100项以上。
二、发展基础
“十三五”以来，全省推进质量提升行动，建成检验检测中心20个。
三、重点任务
（一）加强质量监管。
加强产品质量监督抽查，2024年底前完成专项整治。（省市场监管局负责）
四、保障措施
（一）强化组织领导。
各地要建立工作机制。
抄送：省委办公厅。
"""


def kinds(text: str) -> dict[str, str]:
    return {s.text: s.kind for s in sentence_kinds(text)}


def test_every_part_of_a_plan_gets_its_kind():
    k = kinds(PLAN)
    assert k["某某省人民政府办公厅关于印发某某省质量提升行动方案的通知"] == "header"
    assert k["某政办发〔2023〕12号"] == "header"
    assert k["各市人民政府，省政府各部门："] == "header"
    assert k["现将《某某省质量提升行动方案》印发给你们，请认真贯彻执行。"] == "header"
    assert k["某某省人民政府办公厅"] == "signature"
    assert k["2023年5月6日"] == "signature"
    assert k["某某省质量提升行动方案"] == "header"
    assert k["为深入贯彻落实《质量强国建设纲要》，推动高质量发展，结合我省实际，制定本方案。"] == "preamble"
    assert k["以习近平新时代中国特色社会主义思想为指导，深入实施质量强省战略。"] == "guiding"
    assert k["到2025年，制造业产品质量合格率达到94%以上，培育团体标准100项以上。"] == "goals"
    assert k["“十三五”以来，全省推进质量提升行动，建成检验检测中心20个。"] == "past"
    assert k["（一）加强质量监管。"] == "tasks"
    assert k["加强产品质量监督抽查，2024年底前完成专项整治。"] == "tasks"
    assert k["各地要建立工作机制。"] == "safeguards"
    assert k["抄送：省委办公厅。"] == "signature"
    assert set(k.values()) <= set(SECTION_KINDS)


def test_sentences_are_those_of_the_documents_module_with_original_offsets():
    from pipeline.core.documents import sentences

    out = sentence_kinds(PLAN)
    assert [(s.start, s.end) for s in out] == [(s.start, s.end) for s in sentences(PLAN)]
    assert all(PLAN[s.start : s.end] == s.text for s in out)


def test_traditional_headings_give_the_same_kinds():
    text = (
        "一、總體要求\n（一）指導思想\n堅持質量第一。\n"
        "（二）主要目標\n到2025年，合格率達到94%。\n二、重點任務\n加強質量監管。\n"
    )
    assert normalised(text)[:6] == "一、总体要求"
    assert [s.kind for s in sentence_kinds(text)] == ["guiding"] * 3 + ["goals"] * 2 + ["tasks"] * 2


def test_the_fold_table_covers_the_cue_words_without_the_converter(monkeypatch):
    import pipeline.core.sections as sections

    monkeypatch.setattr(sections, "to_simplified", lambda text: text)  # as on a machine without opencc
    text = "二、工作目標\n到2020年，商標注冊量達20萬件以上。\n三、保障措施\n加強組織領導。\n"
    assert [s.kind for s in sentence_kinds(text)] == ["goals", "goals", "safeguards", "safeguards"]


@pytest.mark.parametrize(
    ("heading", "kind"),
    [
        ("主要目标", "goals"),
        ("到2015年，产品质量发展的具体目标", "goals"),
        ("发展目标。", "goals"),
        ("指导思想和发展目标", "guiding"),  # mixed: the permissive kind; its sub-headings refine it
        ("目标任务", "tasks"),
        ("发展基础", "past"),
        ("“十三五”质量发展成效", "past"),
        ("质量发展的基础与环境", "past"),
        ("现实基础和面临形势", "background"),  # a situation part may hold directive clauses
        ("夯实质量发展基础", None),  # a task heading: a directive verb opens it
        ("完善质量统计指标体系", None),
        ("目标落实阶段（2013年1月—2015年6月）", None),  # 目标 does not end it
        ("保障措施", "safeguards"),
        ("组织实施", "safeguards"),
        ("重点任务", "tasks"),
        ("强化企业质量主体作用", None),
        ("前言", "preamble"),
    ],
)
def test_heading_cues(heading, kind):
    assert heading_kind(heading) == kind


def test_a_sub_heading_inherits_and_the_next_top_heading_ends_the_section():
    text = "二、工作目标\n（一）品牌数量明显提高\n培育名牌产品50个。\n三、强化企业质量主体作用\n培育名牌产品。\n"
    assert [s.kind for s in sentence_kinds(text)] == ["goals", "goals", "goals", "other", "other"]


def test_a_numbered_running_paragraph_ends_the_section_at_its_level():
    text = "一、发展基础\n全省建成中心20个。\n二、研判过程 根据要求，加强调研，形成初稿。\n"
    assert [s.kind for s in sentence_kinds(text)] == ["past", "past", "other"]


@pytest.mark.parametrize(
    ("sentence", "kind"),
    [
        ("为加快质量强市建设，结合我市实际，制定本工作方案。", "preamble"),
        ("为做好创建工作，现将有关事项通知如下：", "preamble"),
        ("为推动高质量发展，现就加快推进品牌建设提出以下意见：", "preamble"),
        ("现公开征求社会各界对《实施方案（征求意见稿）》的意见。", "header"),
        ("发布时间：2024-01-04 来源：市场监管局", "header"),
        ("近年来，全市推进质量强市建设，取得明显成效。", "past"),
        ("近年来，全市质量工作取得成效，但必须进一步加强质量监管。", "other"),  # it turns to what must be done
        ("“十四五”时期是加快质量强市建设的关键时期。", "other"),
        ("各地要结合实际制定实施方案。", "other"),
    ],
)
def test_sentence_cues_before_the_body(sentence, kind):
    assert [s.kind for s in sentence_kinds(sentence)] == [kind]


def test_unsure_text_is_other():
    text = "加快重大项目建设。\n推动消费提质扩容，培育消费中心城市。\n"
    assert {s.kind for s in sentence_kinds(text)} == {"other"}
    assert sentence_kinds("") == []


def test_a_one_line_document_is_read_sentence_by_sentence():
    text = (
        "各市人民政府: 现将《质量强省规划》印发给你们,请认真贯彻实施。 质量强省规划 为加快质量强省建设,特制定本规划。"
        " 一、现实基础。 “十一五”期间,我省推进质量工作。 二、主要任务。 (一)加强监管。 加强质量监管。"
    )
    assert [s.kind for s in sentence_kinds(text)] == ["header", "preamble", "past", "past", "tasks", "tasks", "tasks"]


def test_contents_lines_are_header_and_open_no_section():
    text = "一、发展成效 1\n二、发展目标 12\n三、主要任务 14\n“十四五”时期是关键时期，要加强质量工作。\n"
    assert [s.kind for s in sentence_kinds(text)] == ["header", "header", "header", "other"]


def _span(text: str, piece: str, label: str, after: int = 0) -> Span:
    start = text.index(piece, after)
    return Span("x", start, start + len(piece), label, piece)


def test_the_step_drops_spans_in_ruled_out_kinds_only():
    spans = [
        _span(PLAN, "印发", "ACTION"),  # forwarding line: header
        _span(PLAN, "某某省人民政府办公厅", "AGENCY"),  # AGENCY is never ruled out
        _span(PLAN, "贯彻落实", "ACTION"),  # preamble
        _span(PLAN, "实施", "ACTION", PLAN.index("以习近平")),  # guiding: kept
        _span(PLAN, "培育", "ACTION"),  # goals
        _span(PLAN, "94%以上", "VALUE"),  # goals: VALUE kept
        _span(PLAN, "推进", "ACTION", PLAN.index("十三五")),  # past
        _span(PLAN, "20个", "VALUE"),  # past
        _span(PLAN, "加强", "ACTION", PLAN.index("三、重点任务")),  # tasks: kept
        _span(PLAN, "2024年底前", "DEADLINE"),  # tasks: kept
        _span(PLAN, "2023年5月6日", "DEADLINE"),  # signature
    ]
    kept = [(s.text, s.label) for s in drop_by_section(PLAN, spans)]
    assert kept == [
        ("某某省人民政府办公厅", "AGENCY"),
        ("实施", "ACTION"),
        ("94%以上", "VALUE"),
        ("加强", "ACTION"),
        ("2024年底前", "DEADLINE"),
    ]
    assert drop_by_section(PLAN, spans, rules={}) == spans


def test_the_schema_declares_the_rules_and_refuses_unknown_kinds(tmp_path):
    rules = load_schema().section_rules
    assert set(rules["ACTION"]) == {"header", "preamble", "goals", "past", "signature"}
    assert "AGENCY" not in rules and "other" not in {k for kinds in rules.values() for k in kinds}
    path = tmp_path / "schema.yaml"
    path.write_text(
        "entities:\n  - {label: ORG, colour: '#1', absent_in: [prologue]}\nrelations: []\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError, match="unknown section kind"):
        load_schema(path)


def test_section_index_outside_sentences_is_other():
    index = SectionIndex("一、主要目标\n\n到2025年，合格率达到94%。")
    assert index.kind_at(0) == "goals"
    assert index.kind_at(7) == "other"  # the blank line


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from tests.tiny_bert import build_tiny_ner

    return build_tiny_ner(tmp_path_factory.mktemp("sections"), [PLAN], seed=3)


def _predict(model_dir, **kwargs) -> list[Span]:
    from pipeline.extractors.ner import NerModel

    (spans,) = NerModel(model_dir, precision="fp32", **kwargs).predict([PLAN])
    return spans


def test_the_model_meta_turns_the_step_on_and_the_constructor_overrides_it(tiny_model, monkeypatch):
    import pipeline.extractors.ner as ner

    # A random tiny model predicts next to nothing: give it a fixed set of spans to decode.
    fixed = [
        _span(PLAN, "印发", "ACTION"),
        _span(PLAN, "培育", "ACTION"),
        _span(PLAN, "加强", "ACTION", PLAN.index("三、")),
    ]
    monkeypatch.setattr(ner, "tidy_spans", lambda text, spans, words: list(fixed))
    meta_path = tiny_model / "planie.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    assert "section_rules" not in meta
    everything = [(s.start, s.end, s.label) for s in fixed]

    def keys(spans):
        return [(s.start, s.end, s.label) for s in spans]

    assert keys(_predict(tiny_model)) == everything  # no key in the meta: exactly as before
    assert keys(_predict(tiny_model, section_rules=True)) == everything[2:]
    meta_path.write_text(json.dumps({**meta, "section_rules": True}), encoding="utf-8")
    try:
        assert keys(_predict(tiny_model)) == everything[2:]
        assert keys(_predict(tiny_model, section_rules=False)) == everything
    finally:
        meta_path.write_text(json.dumps(meta), encoding="utf-8")


def test_model_extractor_threads_the_override(tiny_model):
    from pipeline.extractors.extract import ModelExtractor

    assert ModelExtractor(tiny_model, precision="fp32").ner.section_rules is False
    assert ModelExtractor(tiny_model, precision="fp32", section_rules=True).ner.section_rules is True


def test_ner_config_has_section_rules_off_by_default():
    from pipeline.training.ner_training import NerConfig

    assert NerConfig().section_rules is False
    assert NerConfig(section_rules="yes").section_rules is True
