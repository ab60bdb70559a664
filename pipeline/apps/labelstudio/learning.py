"""The learning ML backend: on Label Studio's train request, fine-tune the served NER model on the
project's submitted annotations, score it on a fixed evaluation set and promote it if not worse.

The work folder holds ``versions/vNNNN/`` (model folders), ``current`` (the name of the served
version, replaced atomically) and ``runs/NNNN/`` (each round's pulled annotations and its
``report.json``). One round at a time, in a background thread: the HTTP request returns at once.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.apps.labelstudio.pull import fetch_validated
from pipeline.core.annotations import AnnotatedDoc, load_gold_dir, write_export
from pipeline.core.documents import Document
from pipeline.core.errors import UsageError
from pipeline.core.files import write_atomic
from pipeline.core.schema import DEFAULT_SCHEMA_PATH, Schema, load_schema

REPORT = "report.json"


@dataclass(frozen=True)
class LearnConfig:
    """What a training round uses: the fixed evaluation gold, source documents, a short schedule."""

    work_dir: Path
    eval_paths: tuple[str, ...]
    documents: dict[str, Path] = field(default_factory=dict)  # doc_id -> source file (paragraph tasks)
    schema_path: str = str(DEFAULT_SCHEMA_PATH)
    epochs: float = 3
    max_steps: int = -1
    learning_rate: float = 5e-5
    batch_size: int = 8


class ModelStore:
    """Model versions in ``WORK/versions/NAME``; ``WORK/current`` names the served one."""

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = Path(work_dir)
        self.versions_dir = self.work_dir / "versions"
        self.pointer = self.work_dir / "current"

    @property
    def current(self) -> str | None:
        return self.pointer.read_text(encoding="utf-8").strip() if self.pointer.exists() else None

    @property
    def current_dir(self) -> Path:
        if self.current is None:
            raise UsageError(f"{self.work_dir}: no model version yet (start the backend with --model DIR)")
        return self.versions_dir / self.current

    def versions(self) -> list[str]:
        return sorted(p.name for p in self.versions_dir.glob("v*") if p.is_dir())

    def seed(self, model_dir: str | Path) -> bool:
        """Copy ``model_dir`` in as v0000 unless the store already serves a version; True if copied."""
        if self.current is not None:
            return False
        shutil.copytree(model_dir, self.versions_dir / "v0000", dirs_exist_ok=True)
        write_atomic(self.pointer, "v0000\n")
        return True

    def promote(self, model_dir: Path) -> str:
        """Move a trained model folder in as the next version and point ``current`` at it."""
        versions = self.versions()
        name = f"v{int(versions[-1][1:]) + 1 if versions else 0:04d}"
        shutil.move(str(model_dir), self.versions_dir / name)
        write_atomic(self.pointer, name + "\n")
        return name


def entity_scores(model_dir: Path, gold: Sequence[AnnotatedDoc], schema: Schema) -> dict[str, Any]:
    """Strict entity micro P/R/F1 of the model folder on the gold documents (the project's scorer)."""
    from pipeline.evaluation.scoring import score_entities
    from pipeline.extractors.extract import extract_documents, load_extractor

    docs = [Document(d.doc_id, d.source, d.text, "utf-8") for d in gold]
    pred = extract_documents(docs, load_extractor(str(model_dir)))
    return score_entities(gold, pred, schema.entity_labels)["micro"].as_dict()


def fine_tune(base: Path, annotations: Path, doc_ids: Sequence[str], out: Path, cfg: LearnConfig) -> dict[str, Any]:
    """A short CPU fine-tuning of the model folder ``base`` on these documents; the new model lands
    in ``out/model`` (the base's relation model, if any, goes along). Returns the training record."""
    import yaml

    from pipeline.extractors.ner import MODEL_META
    from pipeline.training.ner_training import NerConfig, train_ner

    meta = json.loads((base / MODEL_META).read_text(encoding="utf-8"))
    splits = out / "splits.yaml"
    write_atomic(splits, yaml.safe_dump({"train": list(doc_ids), "test": [], "dev_block": 0}))
    ner_cfg = NerConfig(
        base=str(base),
        annotations=str(annotations),
        splits=str(splits),
        output_dir=str(out),
        max_length=meta.get("max_length", 128),
        stride=meta.get("stride", 96),
        crf=bool(meta.get("crf", False)),
        rule_labels=meta.get("rule_labels", []),
        section_rules=bool(meta.get("section_rules", False)),
        epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate,
        batch_size=cfg.batch_size,
        schema=cfg.schema_path,
        train_docs=list(doc_ids),
    )
    model_dir = train_ner(ner_cfg)
    if (base / "relations").is_dir():
        shutil.copytree(base / "relations", model_dir / "relations")
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
    run = json.loads((out / "run.json").read_text(encoding="utf-8"))
    return {"seconds": run["train_seconds"], "epochs": cfg.epochs, "best_dev": run["best_dev"]}


class Learner:
    """Training rounds on request, one at a time, in a background thread (see the module doc).

    ``on_promote(model_dir)`` is called with each promoted version (the backend swaps its model)."""

    def __init__(
        self,
        store: ModelStore,
        client: Any,
        cfg: LearnConfig,
        on_promote: Callable[[Path], None],
        train: Callable[..., dict[str, Any]] = fine_tune,
        score: Callable[[Path, Sequence[AnnotatedDoc], Schema], dict[str, Any]] = entity_scores,
    ) -> None:
        self.store, self.client, self.cfg = store, client, cfg
        self.on_promote, self.train, self.score = on_promote, train, score
        self.schema = load_schema(cfg.schema_path)
        self.gold = load_gold_dir(list(cfg.eval_paths))
        if not self.gold:
            raise UsageError(f"no gold documents in {', '.join(cfg.eval_paths)}: the evaluation set is needed")
        self.runs_dir = store.work_dir / "runs"
        self._lock = threading.Lock()
        self._active: str | None = None
        self._scores: dict[str, dict[str, Any]] = {}  # version -> its scores on the evaluation set
        self.thread: threading.Thread | None = None

    def status(self) -> dict[str, Any]:
        reports = sorted(self.runs_dir.glob(f"*/{REPORT}"))
        last = json.loads(reports[-1].read_text(encoding="utf-8")) if reports else None
        return {
            "current": self.store.current,
            "versions": self.store.versions(),
            "training": self._active,
            "last_run": last,
        }

    def request(self, project_id: int) -> dict[str, Any]:
        """Start a round for the project unless one is running; answers at once."""
        if not self._lock.acquire(blocking=False):
            return {
                "status": "busy",
                "run": self._active,
                "detail": f"training run {self._active} is in progress; request ignored, ask again later",
            }
        try:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
            run = f"{len(list(self.runs_dir.iterdir())) + 1:04d}"
            (self.runs_dir / run).mkdir()
            self._active = run
            self.thread = threading.Thread(target=self._round, args=(run, project_id), daemon=True)
            self.thread.start()
        except BaseException:
            self._active = None
            self._lock.release()
            raise
        return {"status": "started", "run": run, "report": str(self.runs_dir / run / REPORT)}

    def _round(self, run: str, project_id: int) -> None:
        run_dir = self.runs_dir / run
        started = time.monotonic()
        report: dict[str, Any] = {
            "run": run,
            "project": project_id,
            "base_version": self.store.current,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        try:
            report.update(self._steps(run_dir, project_id))
        except Exception as exc:  # noqa: BLE001 - a failed round is reported, the backend keeps serving
            report.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        finally:
            report["seconds"] = round(time.monotonic() - started, 1)
            write_atomic(run_dir / REPORT, json.dumps(report, ensure_ascii=False, indent=2) + "\n")
            self._active = None
            self._lock.release()

    def _steps(self, run_dir: Path, project_id: int) -> dict[str, Any]:
        doc_ids, pulled = self._pull(run_dir / "annotations", project_id)
        if not doc_ids:
            return {**pulled, "status": "skipped", "reason": "no validated annotations to train on"}
        base = self.store.current_dir
        trained = self.train(base, run_dir / "annotations", doc_ids, run_dir / "train", self.cfg)
        candidate = run_dir / "train" / "model"
        current_scores = self._current_scores(base)
        new_scores = self.score(candidate, self.gold, self.schema)
        verdict = {
            **pulled,
            "train": trained,
            "eval": {"docs": [d.doc_id for d in self.gold], "current": current_scores, "candidate": new_scores},
        }
        comparison = f"candidate micro-F1 {new_scores['f1']:.4f} vs current {current_scores['f1']:.4f}"
        if new_scores["f1"] < current_scores["f1"]:
            shutil.rmtree(candidate, ignore_errors=True)
            return {**verdict, "status": "kept", "new_version": None, "reason": f"{comparison}: worse, not promoted"}
        version = self.store.promote(candidate)
        self._scores[version] = new_scores
        self.on_promote(self.store.current_dir)
        return {**verdict, "status": "promoted", "new_version": version, "reason": f"{comparison}: not worse"}

    def _current_scores(self, base: Path) -> dict[str, Any]:
        if base.name not in self._scores:
            self._scores[base.name] = self.score(base, self.gold, self.schema)
        return self._scores[base.name]

    def _pull(self, out: Path, project_id: int) -> tuple[list[str], dict[str, Any]]:
        """Write the project's validated annotations to ``out`` (evaluation documents left out)."""
        checked, pulled = fetch_validated(self.client, project_id, out, self.schema, self.cfg.documents)
        held_out = {d.doc_id for d in self.gold}
        kept = [(target, doc) for target, doc in checked if doc.doc_id not in held_out]
        for target, doc in kept:
            write_export(target, [doc])
        info = {
            "train_docs": [doc.doc_id for _, doc in kept],
            "left_out_eval_docs": sorted({doc.doc_id for _, doc in checked} & held_out),
            "problems": pulled.problems,
            "notes": pulled.notes,
        }
        return info["train_docs"], info
