"""planie extract / report: documents by real path, literal paths, safe CSV, errors before any work (issue 14)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from pipeline.cli.main import main
from pipeline.core.tables import safe_cell

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "models" / "planie-ner"
TEXT = "到2015年，合格率达到96%以上。\n各级政府要加强质量监督。\n"


def extract(*args: str) -> int:
    return main(["extract", *args, "--model", "rules", "--quiet"])


def lines(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "extractions.jsonl").read_text(encoding="utf-8").splitlines()]


def one_line_error(capsys) -> str:  # noqa: ANN001
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_one_file_reached_three_ways_is_one_document(tmp_path, monkeypatch) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "x.txt").write_text(TEXT, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    assert extract("in/x.txt", str(tmp_path / "in" / "x.txt"), "in/../in/x.txt", "--out", str(out)) == 0
    assert extract("in/x.txt", "--out", str(out), "--resume") == 0
    assert extract(str(tmp_path / "in" / "x.txt"), "--out", str(out), "--resume") == 0
    (record,) = lines(out)
    assert record["source"] == str((tmp_path / "in" / "x.txt").resolve())


def test_a_glob_through_a_symlink_loop_extracts_each_file_once(tmp_path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "x.txt").write_text(TEXT, encoding="utf-8")
    (tmp_path / "in" / "loop").symlink_to(tmp_path / "in")
    assert extract(str(tmp_path / "in" / "**" / "*.txt"), "--out", str(tmp_path / "out")) == 0
    assert [r["doc_id"] for r in lines(tmp_path / "out")] == ["x"]


def test_same_stems_get_unique_ids_pages_and_a_source_column(tmp_path) -> None:
    for sub in ("a", "b"):
        (tmp_path / "in" / sub).mkdir(parents=True)
        (tmp_path / "in" / sub / "report.txt").write_text(TEXT.replace("96", "9" + str(len(sub))), encoding="utf-8")
    out = tmp_path / "out"
    assert extract(str(tmp_path / "in"), "--out", str(out)) == 0
    assert [r["doc_id"] for r in lines(out)] == ["a/report", "b/report"]
    rows = list(csv.DictReader((out / "targets.csv").open(encoding="utf-8")))
    assert {r["source"] for r in rows} == {str(tmp_path / "in" / s / "report.txt") for s in ("a", "b")}
    assert sorted(p.name for p in (out / "html").iterdir()) == ["a_report.html", "b_report.html"]
    summary = (out / "summary.html").read_text(encoding="utf-8")
    assert 'href="html/a_report.html"' in summary and 'href="html/b_report.html"' in summary


def test_an_existing_path_is_never_a_glob(tmp_path) -> None:
    (tmp_path / "报告[1].txt").write_text(TEXT, encoding="utf-8")
    (tmp_path / "报告1.txt").write_text("加强质量监督。\n", encoding="utf-8")
    assert extract(str(tmp_path / "报告[1].txt"), "--out", str(tmp_path / "out")) == 0
    assert [r["doc_id"] for r in lines(tmp_path / "out")] == ["报告[1]"]


def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised(tmp_path) -> None:
    assert [safe_cell(v) for v in ("=1+2", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "a=b", None, 3)] == [
        "'=1+2",
        "'+1",
        "'-1",
        "'@SUM(A1)",
        "'\tx",
        "'\rx",
        "a=b",
        "",
        "3",
    ]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "=1+2.txt").write_text(TEXT, encoding="utf-8")
    assert extract(str(tmp_path / "in"), "--out", str(tmp_path / "out")) == 0
    for name in ("targets.csv", "tasks.csv", "indicators.csv"):
        rows = list(csv.DictReader((tmp_path / "out" / name).open(encoding="utf-8")))
        assert rows and {r["doc_id"] for r in rows} == {"'=1+2"}, name


def test_out_that_is_a_file_is_a_usage_error(tmp_path, capsys) -> None:
    (tmp_path / "in.txt").write_text(TEXT, encoding="utf-8")
    (tmp_path / "out").write_text("not a folder", encoding="utf-8")
    assert extract(str(tmp_path / "in.txt"), "--out", str(tmp_path / "out")) == 2
    assert "exists and is not a folder" in one_line_error(capsys)


def test_an_unwritable_out_fails_before_the_model_is_even_checked(tmp_path, capsys) -> None:
    (tmp_path / "in.txt").write_text(TEXT, encoding="utf-8")
    args = ["extract", str(tmp_path / "in.txt"), "--out", "/proc/planie-out", "--model", str(tmp_path / "none")]
    assert main([*args, "--quiet"]) == 3
    err = one_line_error(capsys)
    assert "/proc/planie-out" in err and "cannot write" in err


@pytest.mark.parametrize("case", ["empty", "no-weights", "truncated"])
def test_a_folder_that_is_not_a_model_is_one_line(tmp_path, capsys, case) -> None:
    model = tmp_path / "model"
    model.mkdir()
    if case != "empty":
        for name in ("planie.json", "config.json", "tokenizer.json", "tokenizer_config.json"):
            shutil.copy(SHIPPED / name, model / name)
    if case == "truncated":
        with open(SHIPPED / "model.safetensors", "rb") as src:
            (model / "model.safetensors").write_bytes(src.read(200_000))
    (tmp_path / "in.txt").write_text(TEXT, encoding="utf-8")
    args = ["extract", str(tmp_path / "in.txt"), "--out", str(tmp_path / "out"), "--model", str(model), "--quiet"]
    assert main(args) == 3
    err = one_line_error(capsys)
    assert str(model) in err
    assert {"empty": "planie.json", "no-weights": "model.safetensors missing", "truncated": "truncated"}[case] in err


def test_an_unavailable_device_is_one_line(tmp_path, capsys) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    (tmp_path / "in.txt").write_text(TEXT, encoding="utf-8")
    args = ["extract", str(tmp_path / "in.txt"), "--out", str(tmp_path / "out"), "--model", str(SHIPPED)]
    assert main([*args, "--device", "cuda", "--quiet"]) == 3
    assert "'cuda' is not available" in one_line_error(capsys)


@pytest.mark.parametrize("option", [["--batch-size", "-1"], ["--batch-size", "0"], ["--workers", "0"]])
def test_argument_bounds_are_checked_by_the_parser(tmp_path, capsys, option) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["extract", str(tmp_path), "--out", str(tmp_path / "out"), *option])
    assert exit_.value.code == 2 and "must be at least 1" in capsys.readouterr().err


def test_relations_with_the_rules_model_is_an_error(tmp_path, capsys) -> None:
    (tmp_path / "in.txt").write_text(TEXT, encoding="utf-8")
    assert extract(str(tmp_path / "in.txt"), "--out", str(tmp_path / "out"), "--relations", str(tmp_path)) == 2
    assert "--relations" in one_line_error(capsys)


def test_no_documents_is_an_input_error(tmp_path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    assert extract(str(tmp_path / "empty"), "--out", str(tmp_path / "out")) == 1
    assert "no input documents" in one_line_error(capsys)


def test_report_rebuilds_tables_and_views_from_the_jsonl(tmp_path, capsys) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_text(TEXT, encoding="utf-8")
    out = tmp_path / "out"
    assert extract(str(tmp_path / "in"), "--out", str(out)) == 0
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".planie.lock"}
    shutil.rmtree(out / "html")
    for name in ("index.html", "targets.csv", "summary.html"):
        (out / name).unlink()
    assert main(["report", str(out)]) == 0
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".planie.lock"}
    assert after == before
    capsys.readouterr()
    assert main(["report", str(tmp_path / "in")]) == 1
    assert "extractions.jsonl: not found" in one_line_error(capsys)
