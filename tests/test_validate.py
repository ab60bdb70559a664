from __future__ import annotations

import json

import pytest

from pipeline.cli.main import main
from pipeline.core.annotations import AnnotatedDoc, Relation, Span, load_gold, write_export
from pipeline.core.markup import MarkupError, parse_markup, render_markup
from pipeline.core.validate import validate_export

TEXT = "到2015年，合格率达到96%以上。\n（省质监局牵头）"


def _good_doc() -> AnnotatedDoc:
    spans = (
        Span("d1", 0, 6, "DEADLINE", "到2015年"),
        Span("i1", 7, 10, "INDICATOR", "合格率"),
        Span("v1", 12, 17, "VALUE", "96%以上"),
        Span("a1", 20, 24, "AGENCY", "省质监局"),
    )
    rels = (Relation("v1", "i1", "value_of"), Relation("d1", "v1", "deadline_of"))
    return AnnotatedDoc("doc", TEXT, spans, rels)


def _export(tmp_path, mutate=None):
    path = tmp_path / "doc.json"
    write_export(path, [_good_doc()])
    if mutate:
        tasks = json.loads(path.read_text(encoding="utf-8"))
        mutate(tasks[0]["annotations"][0]["result"])
        path.write_text(json.dumps(tasks, ensure_ascii=False), encoding="utf-8")
    return path


def test_a_good_export_validates_and_round_trips(tmp_path, schema):
    path = _export(tmp_path)
    assert validate_export(path, schema) == []
    (doc,) = load_gold(path)
    assert doc == _good_doc()


def _set(index, **value):
    return lambda result: result[index]["value"].update(value)


@pytest.mark.parametrize(
    "mutate,field,message",
    [
        (_set(0, end=99), "value.start/end", "outside the text"),
        (_set(1, text="不对"), "value.text", "differs from the text"),
        (_set(1, start=5, text="，合格率"), "value.start", "overlaps"),
        (_set(3, start=17, end=24, text=TEXT[17:24]), "value.start/end", "crosses a line break"),
        (_set(0, labels=["PERSON"]), "value.labels", "unknown label 'PERSON'"),
        (lambda r: r.__setitem__(4, {**r[4], "to_id": "zz"}), "to_id", "no span with that id"),
        (lambda r: r.__setitem__(4, {**r[4], "from_id": "a1"}), "labels", "value_of needs VALUE -> INDICATOR"),
        (lambda r: r.__setitem__(4, {**r[4], "labels": ["owns"]}), "labels", "unknown relation 'owns'"),
    ],
)
def test_each_problem_names_file_task_annotation_and_field(tmp_path, schema, mutate, field, message):
    path = _export(tmp_path, mutate)
    problems = validate_export(path, schema)
    assert problems, "the broken export must not validate"
    text = "\n".join(map(str, problems))
    assert f"{path}: task 1: annotation 1" in text
    assert any(p.field == field and message in p.message for p in problems), text


def test_text_must_equal_the_source_document(tmp_path, schema):
    path = _export(tmp_path)
    source = tmp_path / "doc.txt"
    source.write_text(TEXT.replace("96", "97"), encoding="utf-8")
    (problem,) = validate_export(path, schema, {"doc": source})
    assert problem.field == "data.text" and "at character 13" in problem.message


def test_invalid_json_names_the_line(tmp_path, schema):
    path = tmp_path / "broken.json"
    path.write_text('[{"data": {"text": "x"}},\n oops]', encoding="utf-8")
    (problem,) = validate_export(path, schema)
    assert "line 2" in problem.message


def test_cli_validate_exit_codes(tmp_path, capsys):
    good = _export(tmp_path)
    assert main(["validate", str(good)]) == 0
    bad = tmp_path / "bad"
    bad.mkdir()
    _export(bad, _set(0, end=99))
    assert main(["validate", str(bad)]) == 1
    assert "outside the text" in capsys.readouterr().err


def test_markup_round_trip_and_errors():
    markup = "[[到2015年|DEADLINE|d1|deadline_of:v1]]，[[合格率|INDICATOR|i1]]达到[[96%以上|VALUE|v1|value_of:i1]]。"
    doc = parse_markup(markup, "m")
    assert doc.text == "到2015年，合格率达到96%以上。"
    assert [(s.text, s.start, s.end) for s in doc.spans] == [("到2015年", 0, 6), ("合格率", 7, 10), ("96%以上", 12, 17)]
    assert set(doc.relations) == {Relation("d1", "v1", "deadline_of"), Relation("v1", "i1", "value_of")}
    assert parse_markup(render_markup(doc), "m") == doc
    with pytest.raises(MarkupError, match="malformed"):
        parse_markup("[[合格率|INDICATOR", "m")
    with pytest.raises(MarkupError, match="duplicate"):
        parse_markup("[[a|VALUE|x]][[b|VALUE|x]]", "m")
