"""The rules baseline on real sentences from the seed documents."""

from __future__ import annotations

import json

from pipeline.cli.main import main
from pipeline.core.annotations import Span
from pipeline.extractors.relations import link_rules
from pipeline.extractors.rules import rule_spans


def _labelled(text: str) -> set[tuple[str, str]]:
    return {(s.label, s.text) for s in rule_spans(text)}


def test_goal_sentence_from_hebei_2012():
    text = (
        "到2015年，产品质量发展的具体目标：\n农业标准化生产普及率超过50%，主要农产品质量安全抽检合格率稳定在96%以上。"
    )
    found = _labelled(text)
    assert {
        ("DEADLINE", "到2015年"),
        ("INDICATOR", "农业标准化生产普及率"),
        ("VALUE", "50%"),
        ("INDICATOR", "主要农产品质量安全抽检合格率"),
        ("VALUE", "96%以上"),
    } <= found
    assert not any(label == "ACTION" for label, _ in found)


def test_counted_target_and_percentage_points():
    found = _labelled(
        "重点工业企业采用国际标准和国外先进标准产品产值率提高5个百分点，培育省级服务业标准化示范单位200个以上。"
    )
    assert ("VALUE", "5个百分点") in found
    assert ("VALUE", "200个以上") in found
    assert ("INDICATOR", "省级服务业标准化示范单位") in found


def test_task_paragraph_with_assignment_from_hebei_2016():
    text = (
        "（一）深入开展质量提升行动。以消费品为重点，加强监督抽查，组织实施消费品质量提升工程。"
        "（省发展改革委、省科技厅、河北出入境检验检疫局按职责分工负责）"
    )
    spans = rule_spans(text)
    found = {(s.label, s.text) for s in spans}
    assert {("ACTION", "开展"), ("ACTION", "加强"), ("ACTION", "组织实施")} <= found
    agencies = [s for s in spans if s.label == "AGENCY"]
    assert [a.text for a in agencies] == ["省发展改革委", "省科技厅", "河北出入境检验检疫局"]
    rels = link_rules(text, spans)
    first_action = next(s for s in spans if s.label == "ACTION")
    assert {(r.head, r.tail) for r in rels if r.label == "responsible_for"} == {
        (a.id, first_action.id) for a in agencies
    }


def _responsibility(text: str, marked: list[tuple[str, str, int]]) -> set[tuple[str, str]]:
    """(agency, action) pairs the rules linker gives for spans marked as (piece, label, occurrence)."""
    spans = []
    for i, (piece, label, nth) in enumerate(marked):
        start = -1
        for _ in range(nth + 1):
            start = text.index(piece, start + 1)
        spans.append(Span(f"T{i}", start, start + len(piece), label, piece))
    by_id = {s.id: s.text for s in spans}
    return {(by_id[r.head], by_id[r.tail]) for r in link_rules(text, spans) if r.label == "responsible_for"}


def test_assignment_lines_after_attribute_lines_belong_to_the_item() -> None:
    text = (
        "（一）举办“质量月”宣传活动。围绕商场、社区开展质量宣传。\n活动时间:9月\n活动地点:全市\n"
        "牵头部门:质监股\n配合部门:食药股、各分局\n（二）开展计量服务活动。"
    )
    marked = [("举办", "ACTION", 0), ("开展", "ACTION", 0), ("质监股", "AGENCY", 0), ("食药股", "AGENCY", 0)]
    marked += [("各分局", "AGENCY", 0), ("开展", "ACTION", 1)]
    assert _responsibility(text, marked) == {("质监股", "举办"), ("食药股", "举办"), ("各分局", "举办")}


def test_a_group_heading_above_a_numbered_item_does_not_take_its_links() -> None:
    text = "（一）提升产品质量\n1.加强产品可靠性设计，提高产品档次。\n省质监局、省科技厅负责落实。"
    marked = [("提升", "ACTION", 0), ("加强", "ACTION", 0), ("省质监局", "AGENCY", 0), ("省科技厅", "AGENCY", 0)]
    assert _responsibility(text, marked) == {("省质监局", "加强"), ("省科技厅", "加强")}


def test_task_table_rows_link_their_responsibility_cells() -> None:
    text = (
        "序号\n\n内容与要求\n\n进展情况\n\n责任单位\n\n1\n\n加强数据监测，确保增长7%左右。\n\n"
        "1-2月指标实现正增长。\n\n市发改委\n\n2\n\n推进项目攻坚。\n\n已安排36个项目。\n\n市发改委、市财政局\n"
    )
    marked = [("加强", "ACTION", 0), ("市发改委", "AGENCY", 0), ("推进", "ACTION", 0), ("市发改委", "AGENCY", 1)]
    marked += [("市财政局", "AGENCY", 0)]
    assert _responsibility(text, marked) == {("市发改委", "加强"), ("市发改委", "推进"), ("市财政局", "推进")}
    assert len(_responsibility(text, marked[:1] + marked[2:])) == 2  # an agency-less cell links nothing


def test_no_spans_in_titles_dates_or_plan_periods():
    found = _labelled("根据国务院颁布的《质量发展纲要（2011-2020年）》要求，特制定本规划。\n2012年11月1日")
    assert not any(label in ("DEADLINE", "VALUE") for label, _ in found)


def test_deadline_scope_crosses_sentences_but_stops_at_a_heading():
    text = "到2020年，质量整体水平明显提升。\n产品质量合格率达到94%。\n二、主要任务\n合格率达到95%。"

    def span(sid: str, piece: str, label: str, after: int = 0) -> Span:
        start = text.index(piece, after)
        return Span(sid, start, start + len(piece), label, piece)

    spans = [
        span("d", "到2020年", "DEADLINE"),
        span("i", "产品质量合格率", "INDICATOR"),
        span("v", "94%", "VALUE"),
        span("i2", "合格率", "INDICATOR", text.index("主要任务")),
        span("v2", "95%", "VALUE"),
    ]
    rels = {(r.head, r.tail, r.label) for r in link_rules(text, spans)}
    assert ("d", "v", "deadline_of") in rels and ("d", "v2", "deadline_of") not in rels
    assert ("v", "i", "value_of") in rels and ("v2", "i2", "value_of") in rels
    assert ("d", "v", "deadline_of") not in {(r.head, r.tail, r.label) for r in link_rules(text, spans, inherit=False)}


def test_deadline_without_values_links_actions_in_its_sentence():
    text = "2012年6月底前完成清理工作，加强监督。"
    spans = rule_spans(text)
    rels = link_rules(text, spans)
    by_id = {s.id: s for s in spans}
    assert {(by_id[r.head].text, by_id[r.tail].text) for r in rels} == {
        ("2012年6月底前", "完成"),
        ("2012年6月底前", "加强"),
    }


def test_extract_rules_writes_the_jsonl_contract(seeds_dir, tmp_path):
    seed = sorted(seeds_dir.glob("*.txt"))[0]
    assert main(["extract", str(seed), "--out", str(tmp_path), "--model", "rules"]) == 0
    (record,) = [json.loads(line) for line in (tmp_path / "extractions.jsonl").read_text(encoding="utf-8").splitlines()]
    assert record["text"] == seed.read_text(encoding="utf-8")
    assert set(record) == {"doc_id", "source", "text", "entities", "relations", "targets", "tasks", "model"}
    ids = {e["id"] for e in record["entities"]}
    for e in record["entities"]:
        assert record["text"][e["start"] : e["end"]] == e["text"]
    assert all(r["head"] in ids and r["tail"] in ids for r in record["relations"])
    assert any(t["deadline"] == "到2015年" for t in record["targets"])
    assert (tmp_path / "targets.csv").read_text(encoding="utf-8").startswith("doc_id,source,indicator,value,deadline")


def test_extract_reports_unreadable_files_and_goes_on(tmp_path, capsys):
    good = tmp_path / "in" / "good.txt"
    good.parent.mkdir()
    good.write_text("到2015年，合格率达到96%以上。", encoding="utf-8")
    (tmp_path / "in" / "bad.txt").write_bytes(b"\x00\x01binary")
    assert main(["extract", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--model", "rules", "--quiet"]) == 1
    assert "bad.txt" in capsys.readouterr().err
    assert len((tmp_path / "out" / "extractions.jsonl").read_text(encoding="utf-8").splitlines()) == 1


def test_resume_keeps_finished_documents_and_outputs_are_complete(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.txt").write_text("到2015年，合格率达到96%以上。", encoding="utf-8")
    out = tmp_path / "out"
    assert main(["extract", str(folder), "--out", str(out), "--model", "rules", "--quiet"]) == 0
    first = (out / "extractions.jsonl").read_text(encoding="utf-8")
    (folder / "b.txt").write_text("加强质量监督。", encoding="utf-8")
    (folder / "empty.txt").write_text("", encoding="utf-8")
    assert main(["extract", str(folder), "--out", str(out), "--model", "rules", "--quiet", "--resume"]) == 0
    lines = (out / "extractions.jsonl").read_text(encoding="utf-8").splitlines()
    assert lines[0] == first.strip() and len(lines) == 3
    empty = json.loads(lines[2])
    assert empty["doc_id"] == "empty" and empty["entities"] == [] and empty["targets"] == []
    assert (out / "index.html").exists() and (out / "html").is_dir()
    assert not list(out.glob(".*.tmp"))
