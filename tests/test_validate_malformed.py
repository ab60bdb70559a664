"""validate / stats / markup on malformed exports: every problem named per file, the other files still
checked, missing --docs and empty inputs are problems (issue 14)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.cli.main import main

TEXT = "到2015年，合格率达到96%以上。"


def export(path: Path, annotations: object = None, **data: object) -> Path:
    ok = [
        {
            "id": 1,
            "result": [
                {
                    "id": "a",
                    "type": "labels",
                    "value": {"start": 0, "end": 6, "text": "到2015年", "labels": ["DEADLINE"]},
                }
            ],
        }
    ]
    task = {
        "id": 7,
        "data": {"text": TEXT, "doc_id": "doc", **data},
        "annotations": ok if annotations is None else annotations,
    }
    path.write_text(json.dumps([task], ensure_ascii=False), encoding="utf-8")
    return path


@pytest.fixture
def files(tmp_path) -> dict[str, Path]:
    folder = tmp_path / "ex"
    folder.mkdir()
    return {
        "int": export(folder / "a_int.json", [{"id": 1, "result": 1}]),
        "str": export(folder / "b_str.json", [{"id": 1, "result": "oops"}]),
        "ann": export(folder / "c_ann.json", [5]),
        "regions": export(folder / "d_regions.json", regions=[[0, "a"]]),
        "good": export(folder / "e_good.json"),
    }


def test_validate_names_every_malformed_file_and_goes_on(files, capsys) -> None:
    assert main(["validate", *map(str, files.values())]) == 1
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    for key in ("int", "str", "ann", "regions"):
        assert str(files[key]) in out.err, key
    assert "data.regions[0]" in out.err and "result: must be a list" in out.err
    assert str(files["good"]) not in out.err
    assert "5 file(s) checked, 4 problem(s)" in out.out


def test_docs_folder_not_found_and_unknown_doc_ids_are_problems(files, tmp_path, capsys) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    assert main(["validate", str(files["good"]), "--docs", str(docs)]) == 1
    assert "'doc' not found under --docs" in capsys.readouterr().err
    (docs / "doc.txt").write_text(TEXT, encoding="utf-8")
    assert main(["validate", str(files["good"]), "--docs", str(docs)]) == 0
    assert main(["validate", str(files["good"]), "--docs", str(tmp_path / "dosc")]) == 1
    assert "--docs folder not found" in capsys.readouterr().err


def test_empty_inputs_are_problems(tmp_path, capsys) -> None:
    (tmp_path / "none").mkdir()
    assert main(["validate", str(tmp_path / "none")]) == 1
    (tmp_path / "empty.json").write_text("[]", encoding="utf-8")
    assert main(["validate", str(tmp_path / "empty.json")]) == 1
    assert "no tasks" in capsys.readouterr().err


def test_stats_reports_bad_files_and_counts_the_others(files, capsys) -> None:
    assert main(["stats", *map(str, files.values())]) == 1
    out = capsys.readouterr()
    assert "Traceback" not in out.err and len(out.err.strip().splitlines()) == 4
    assert "| doc | 18 | 0 | 0 | 0 | 1 |" in out.out  # the good file is counted


def test_markup_of_a_bad_file_is_one_line(files, tmp_path, capsys) -> None:
    assert main(["markup", "from-json", str(files["int"]), "--out", str(tmp_path / "x.md")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(files["int"]) in err
