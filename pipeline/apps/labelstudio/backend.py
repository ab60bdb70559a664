"""The ML backend: a small HTTP service Label Studio asks for predictions and, with a Learner, to train."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pipeline.apps.labelstudio.learning import Learner
from pipeline.apps.labelstudio.push import mean_score, model_version, prediction_items


class PredictionService:
    """Predictions in Label Studio's format for task dicts, from an extractor (thread-safe)."""

    def __init__(self, extractor: Any) -> None:
        self.extractor = extractor
        self.model_version = model_version(extractor)
        self._lock = threading.Lock()

    def swap(self, extractor: Any) -> None:
        """Serve another model from now on (a promoted version)."""
        version = model_version(extractor)
        with self._lock:
            self.extractor, self.model_version = extractor, version

    def predict(self, tasks: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        texts = [str((t.get("data") or {}).get("text", "")) for t in tasks]
        with self._lock:
            preds = self.extractor.predict(texts)
        out = []
        for spans, relations in preds:
            item: dict[str, Any] = {"result": prediction_items(spans, relations), "model_version": self.model_version}
            score = mean_score(spans)
            if score is not None:
                item["score"] = score
            out.append(item)
        return out


def train_project_id(path: str, body: dict[str, Any]) -> int | None:
    """The project a train request is for: ``POST /webhook`` with ``{"action": "START_TRAINING",
    "project": {...}}`` (label-studio 1.23) or the older ``POST /train`` with ``"project": "ID.EPOCH"``."""
    project = body.get("project")
    if path == "/webhook":
        if body.get("action") != "START_TRAINING" or not isinstance(project, dict):
            return None
        return int(project["id"])
    return int(str(project).split(".")[0])


def make_backend(
    service: PredictionService, host: str = "127.0.0.1", port: int = 9090, learner: Learner | None = None
) -> ThreadingHTTPServer:
    """An HTTP server speaking the Label Studio ML backend protocol (GET /health, POST /setup,
    POST /predict → {"results": [...]}); with a ``learner``, train requests start a training round
    (GET /status tells how it went). Without one, training stays outside (``planie train-ner``)."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "planie-ml-backend/1"

        def _reply(self, status: int, body: Any) -> None:
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> dict[str, Any]:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b"{}"
            data = json.loads(raw or b"{}")
            if not isinstance(data, dict):
                raise ValueError("expected a JSON object")
            return data

        def do_GET(self) -> None:  # noqa: N802
            path = self.path.split("?")[0].rstrip("/")
            if path in ("", "/health"):
                self._reply(200, {"status": "UP", "model_class": "planie", "model_version": service.model_version})
            elif path == "/versions":
                self._reply(200, {"versions": learner.store.versions() if learner else [service.model_version]})
            elif path == "/status":
                self._reply(200, {"model_version": service.model_version, **(learner.status() if learner else {})})
            else:
                self._reply(404, {"error": f"unknown path {self.path}"})

        def do_POST(self) -> None:  # noqa: N802
            path = self.path.split("?")[0].rstrip("/")
            try:
                body = self._body()
            except ValueError as exc:
                self._reply(400, {"error": f"bad JSON body: {exc}"})
                return
            if path == "/setup":
                self._reply(200, {"model_version": service.model_version})
            elif path == "/predict":
                tasks = body.get("tasks")
                if not isinstance(tasks, list):
                    self._reply(400, {"error": "'tasks' must be a list"})
                    return
                try:
                    results = service.predict(tasks)
                except Exception as exc:  # noqa: BLE001 - report to Label Studio, keep serving
                    self._reply(500, {"error": f"prediction failed: {exc}"})
                    return
                self._reply(200, {"results": results, "model_version": service.model_version})
            elif path in ("/webhook", "/train"):
                self._train(path, body)
            else:
                self._reply(404, {"error": f"unknown path {self.path}"})

        def _train(self, path: str, body: dict[str, Any]) -> None:
            if learner is None:
                detail = "training runs outside Label Studio: planie train-ner (or start the backend with --work-dir)"
                self._reply(200 if path == "/webhook" else 501, {"status": "ignored", "detail": detail})
                return
            try:
                project_id = train_project_id(path, body)
            except (KeyError, TypeError, ValueError) as exc:
                self._reply(400, {"error": f"no project id in the train request: {exc}"})
                return
            if project_id is None:  # an annotation event: training waits for a train request
                self._reply(200, {"status": "ignored", "action": body.get("action")})
                return
            self._reply(200, learner.request(project_id))

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            sys.stderr.write(f"[ml-backend] {self.address_string()} {format % args}\n")

    return ThreadingHTTPServer((host, port), Handler)
