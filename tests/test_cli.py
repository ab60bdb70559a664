"""Command-line conventions: --version, progress bars on stderr for the long commands."""

from __future__ import annotations

from pathlib import Path

import pytest

import pipeline
from pipeline.cli.main import main

REPO = Path(__file__).resolve().parents[1]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"planie {pipeline.__version__}"


def test_evaluate_shows_progress_unless_quiet(capsys: pytest.CaptureFixture[str]) -> None:
    gold = str(REPO / "annotations" / "gansu2018.json")
    assert main(["evaluate", gold, "--model", "rules", "--traditional"]) == 0
    err = capsys.readouterr().err
    assert "rules on 1 document(s): 100%" in err and "traditional twins: 100%" in err and "1/1" in err
    assert main(["evaluate", gold, "--model", "rules", "--quiet"]) == 0
    assert capsys.readouterr().err == ""
