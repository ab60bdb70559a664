"""The learning ML backend's rounds without a server (a fake client, trainer and scorer), and the
one-line error of the Label Studio commands when the `annotate` extra is missing."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from pipeline.apps.labelstudio.backend import train_project_id
from pipeline.apps.labelstudio.learning import REPORT, LearnConfig, Learner, ModelStore
from pipeline.cli.main import main
from pipeline.core.annotations import AnnotatedDoc, Span, to_export_task, write_export

TEXT = "到2015年，全省合格率达到96%。"


def _doc(doc_id: str) -> AnnotatedDoc:
    return AnnotatedDoc(doc_id, TEXT, (Span("s1", 6, 9, "INDICATOR", TEXT[6:9]),))


class FakeClient:
    """What a round asks Label Studio for: the JSON export of the project."""

    def __init__(self, docs: list[AnnotatedDoc]) -> None:
        self.tasks = [to_export_task(d, i + 1, i + 1) for i, d in enumerate(docs)]

    def export(self, project_id: int) -> list[dict]:
        return self.tasks


@pytest.fixture
def setup(tmp_path):
    """A store seeded with a 'model' scoring 0.5, a gold set, and a trainer that waits for a gate."""
    seed = tmp_path / "seed"
    seed.mkdir()
    (seed / "f1").write_text("0.5")
    store = ModelStore(tmp_path / "work")
    assert store.seed(seed) and not store.seed(seed)  # seeded once
    write_export(tmp_path / "gold" / "eval.json", [_doc("eval")])
    gate, next_f1, promoted = threading.Event(), {"f1": "0.6"}, []

    def train(base: Path, annotations: Path, doc_ids: list[str], out: Path, cfg: LearnConfig) -> dict:
        assert sorted(p.stem for p in annotations.glob("*.json")) == sorted(doc_ids)
        gate.wait(10)
        (out / "model").mkdir(parents=True)
        (out / "model" / "f1").write_text(next_f1["f1"])
        return {"seconds": 0.0}

    def score(model_dir: Path, gold: list, schema: object) -> dict:
        return {"f1": float((model_dir / "f1").read_text())}

    cfg = LearnConfig(tmp_path / "work", (str(tmp_path / "gold"),))
    client = FakeClient([_doc("a"), _doc("eval")])  # an evaluation document is never trained on
    learner = Learner(store, client, cfg, promoted.append, train=train, score=score)
    return learner, store, gate, next_f1, promoted


def _finish(learner: Learner) -> dict:
    learner.thread.join(10)
    return learner.status()["last_run"]


def test_a_round_promotes_a_version_that_is_not_worse_and_a_second_request_is_busy(setup):
    learner, store, gate, _, promoted = setup
    assert learner.request(3)["status"] == "started"
    busy = learner.request(3)
    assert busy["status"] == "busy" and "in progress" in busy["detail"] and busy["run"] == "0001"
    gate.set()
    report = _finish(learner)
    assert report["status"] == "promoted" and report["new_version"] == "v0001" and report["project"] == 3
    assert report["train_docs"] == ["a"] and report["left_out_eval_docs"] == ["eval"]
    assert report["eval"]["current"]["f1"] == 0.5 and report["eval"]["candidate"]["f1"] == 0.6
    assert store.current == "v0001" and (store.pointer.read_text() == "v0001\n")
    assert promoted == [store.versions_dir / "v0001"]
    assert (store.work_dir / "runs" / "0001" / REPORT).is_file()
    assert learner.status()["training"] is None


def test_a_worse_round_keeps_the_current_version(setup):
    learner, store, gate, next_f1, promoted = setup
    gate.set()
    next_f1["f1"] = "0.4"
    learner.request(3)
    report = _finish(learner)
    assert report["status"] == "kept" and "worse" in report["reason"] and report["new_version"] is None
    assert store.current == "v0000" and store.versions() == ["v0000"] and promoted == []
    next_f1["f1"] = "0.5"  # equal is not worse
    learner.request(3)
    report = _finish(learner)
    assert report["run"] == "0002" and report["status"] == "promoted" and store.current == "v0001"


def test_a_failed_round_is_reported_and_the_next_one_runs(setup):
    learner, store, gate, _, _ = setup
    learner.client.tasks = [{"id": 1, "data": {"text": TEXT}, "annotations": "broken"}]
    learner.request(3)
    report = _finish(learner)
    assert report["status"] == "failed" and report["error"]
    learner.client.tasks = []
    learner.request(3)
    assert _finish(learner)["status"] == "skipped" and store.current == "v0000"


def test_train_requests_name_their_project():
    assert train_project_id("/webhook", {"action": "START_TRAINING", "project": {"id": 7, "title": "x"}}) == 7
    assert train_project_id("/webhook", {"action": "ANNOTATION_CREATED", "project": {"id": 7}}) is None
    assert train_project_id("/train", {"project": "7.1767225600", "annotations": []}) == 7


def test_without_the_annotate_extra_ls_commands_say_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "label_studio_sdk", None)  # import fails as if not installed
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "x")
    assert main(["ls", "pull", "--project", "p", "--out", str(tmp_path / "out")]) == 3
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'pip install -e ".[annotate]"' in err, err
