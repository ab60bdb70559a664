"""Cold start (issue 16): the command line imports a command's library only when that command runs.

Each check runs in a fresh interpreter (``sys.modules`` of the test process has everything loaded)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "numpy", "pydantic", "datasets", "pandas", "matplotlib", "ray", "label_studio_sdk")

PROBE = """
import json, sys
from pipeline.cli.main import main
try:
    main(json.loads(sys.argv[1]))
except SystemExit:
    pass
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""


def modules_after(argv: list[str]) -> set[str]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(argv)], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "argv", [["--help"], ["extract", "--help"], ["evaluate", "--help"], ["ls", "push", "--help"], ["cv", "--help"]]
)
def test_help_imports_nothing_heavy(argv: list[str]) -> None:
    assert not modules_after(argv) & set(HEAVY)


def test_a_light_command_imports_only_its_own_library() -> None:
    loaded = modules_after(["ls-config"])  # the schema (pydantic, yaml) but no model, no Label Studio client
    assert "pydantic" in loaded and not loaded & {"torch", "transformers", "numpy", "label_studio_sdk"}


def test_model_load_does_not_import_transformers(tmp_path: Path) -> None:
    """NerModel builds a plain BERT with pipeline.extractors.bert_torch: torch yes, transformers no."""
    from tests.tiny_bert import build_tiny_ner

    model = build_tiny_ner(tmp_path, ["到2025年全省产品质量合格率达到94%。"])
    code = (
        "import sys\n"
        "from pipeline.extractors.ner import NerModel\n"
        f"m = NerModel({str(model)!r})\n"
        "m.predict(['到2025年全省产品质量合格率达到94%。'])\n"
        "print('torch' in sys.modules, 'transformers' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "False"]
