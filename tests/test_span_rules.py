"""The post-decoding steps on predicted spans (pipeline.extractors.span_rules) and the DEADLINE rule
they share with the rules baseline: each case is a kind of model error seen on unseen provinces."""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.core.annotations import Span
from pipeline.extractors.rules import rule_spans
from pipeline.extractors.span_rules import tidy_spans

WORDS = frozenset({"全市", "主导", "参与", "标准", "以上", "规模"})


def span_in(text: str, piece: str, label: str, after: int = 0) -> Span:
    start = text.index(piece, after)
    return Span("x", start, start + len(piece), label, piece, 0.9)


def _keys(spans: Sequence[Span]) -> set[tuple[int, int, str]]:
    return {(s.start, s.end, s.label) for s in spans}


def indicators(text: str, spans: list[Span], words: frozenset[str] = WORDS) -> list[str]:
    return [s.text for s in tidy_spans(text, spans, words) if s.label == "INDICATOR"]


def test_an_indicator_cut_inside_a_word_starts_where_the_word_starts():
    text = "以上，全市主要农产品合格率达到98%。新增主导或参与国际标准200项以上。"
    spans = [
        span_in(text, "市主要农产品合格率", "INDICATOR"),
        span_in(text, "98%", "VALUE"),
        span_in(text, "导或参与国际标准", "INDICATOR"),
        span_in(text, "200项以上", "VALUE"),
    ]
    assert indicators(text, spans) == ["全市主要农产品合格率", "主导或参与国际标准"]
    assert indicators(text, spans, frozenset()) == ["市主要农产品合格率", "导或参与国际标准"]  # no word list


def test_an_indicator_cut_before_its_predicate_grows_to_it_over_a_long_name():
    text = "社会消费品零售总额增长5%左右。"
    spans = [span_in(text, "社会消", "INDICATOR"), span_in(text, "5%左右", "VALUE")]
    assert indicators(text, spans) == ["社会消费品零售总额"]


def test_an_indicator_ending_on_a_predicate_word_ends_before_it():
    text = "重点工业企业的优等品产值率每年上升1%。"
    spans = [span_in(text, "重点工业企业的优等品产值率每年", "INDICATOR"), span_in(text, "1%", "VALUE")]
    assert indicators(text, spans) == ["重点工业企业的优等品产值率"]


def test_coordinated_metric_names_are_one_indicator_each_but_counted_things_stay_together():
    text = "确保重点监控设备定期检验率、隐患整改率100%。首店、旗舰店、创新店累计落地超过500个。"
    spans = [
        span_in(text, "重点监控设备定期检验率、隐患整改率", "INDICATOR"),
        span_in(text, "100%", "VALUE"),
        span_in(text, "首店、旗舰店、创新店", "INDICATOR"),
        span_in(text, "500个", "VALUE"),
    ]
    assert indicators(text, spans) == ["重点监控设备定期检验率", "隐患整改率", "首店、旗舰店、创新店"]


def test_a_counted_indicator_loses_the_verbs_that_count_it_but_a_rate_keeps_its_first_word():
    text = "新建提升改造社会公用计量标准50项以上。新建建筑执行绿色建筑标准达到20%。"
    spans = [
        span_in(text, "新建提升改造社会公用计量标准", "INDICATOR"),
        span_in(text, "50项以上", "VALUE"),
        span_in(text, "新建建筑执行绿色建筑标准", "INDICATOR"),
        span_in(text, "20%", "VALUE"),
    ]
    assert indicators(text, spans) == ["社会公用计量标准", "新建建筑执行绿色建筑标准"]


def test_a_value_covers_the_whole_number_expression_and_two_pieces_of_one_become_one():
    text = "高价值发明专利拥有量达到21.47件，抽检10万次以上，比重分别增加1%至2%。"
    spans = [
        span_in(text, "47件", "VALUE"),
        span_in(text, "万次以上", "VALUE"),
        span_in(text, "1%", "VALUE"),
        span_in(text, "2%", "VALUE"),
    ]
    assert [s.text for s in tidy_spans(text, spans)] == ["21.47件", "10万次以上", "1%至2%"]


def test_a_value_does_not_grow_into_a_span_of_another_label():
    text = "培育50家企业。"
    spans = [span_in(text, "50家", "VALUE"), span_in(text, "企业", "INDICATOR")]
    assert [s.text for s in tidy_spans(text, spans) if s.label == "VALUE"] == ["50家"]


def test_a_bare_year_opening_staged_targets_is_a_deadline_but_an_event_year_is_not():
    text = "2023年,质量强省建设稳步推进。2012年培育农产品名牌60项。2016年全省“质量月”活动顺利开展。"
    deadlines = [s.text for s in rule_spans(text) if s.label == "DEADLINE"]
    assert deadlines == ["2023年", "2012年"]


def test_a_value_is_never_cut_to_the_number_expressions_inside_it():
    text = "评价总分值在90分(含90分)以上。"
    spans = [span_in(text, "90分(含90分)以上", "VALUE")]
    assert [s.text for s in tidy_spans(text, spans)] == ["90分(含90分)以上"]


def test_a_word_start_never_takes_de_and_a_long_growth_never_crosses_it():
    text = "培训500名掌握标准的企业中高层管理人员。城市(镇)全年95%天数的空气质量达到一级标准。"
    spans = [
        span_in(text, "500名", "VALUE"),
        span_in(text, "企业中高层管理人员", "INDICATOR"),
        span_in(text, "95%", "VALUE"),
        span_in(text, "天数", "INDICATOR"),
    ]
    words = WORDS | {"的企业"}
    assert indicators(text, spans, words) == ["企业中高层管理人员", "天数"]


def test_the_decoding_steps_keep_the_gold_spans():
    """Run on the gold itself, the steps may change only a handful of its 3,913 spans (one-character
    ACTIONs such as 使 and 让, which the fragment rule drops, and three short INDICATOR growths)."""
    from pathlib import Path

    from pipeline.core.alignment import PieceTokenizer
    from pipeline.core.annotations import load_gold_dir
    from pipeline.extractors.precision import load_tokenizer

    repo = Path(__file__).resolve().parents[1]
    words = PieceTokenizer(load_tokenizer(repo / "models" / "planie-ner")).words()
    gold = load_gold_dir([repo / "annotations"])
    total = sum(len(d.spans) for d in gold)
    changed = sum(len(_keys(d.spans) - _keys(tidy_spans(d.text, list(d.spans), words))) for d in gold)
    assert total > 3000 and changed <= total * 0.005
