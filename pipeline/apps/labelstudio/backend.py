"""The ML backend: a small HTTP service Label Studio asks for predictions."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pipeline.apps.labelstudio.push import mean_score, model_version, prediction_items


class PredictionService:
    """Predictions in Label Studio's format for task dicts, from an extractor (thread-safe)."""

    def __init__(self, extractor: Any) -> None:
        self.extractor = extractor
        self.model_version = model_version(extractor)
        self._lock = threading.Lock()

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


def make_backend(service: PredictionService, host: str = "127.0.0.1", port: int = 9090) -> ThreadingHTTPServer:
    """An HTTP server speaking the Label Studio ML backend protocol (GET /health, POST /setup,
    POST /predict → {"results": [...]}); training stays outside (``planie train-ner``)."""

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
                self._reply(200, {"versions": [service.model_version]})
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
            elif path == "/webhook":
                self._reply(200, {"status": "ignored", "detail": "training runs outside Label Studio"})
            elif path == "/train":
                self._reply(501, {"error": "training runs outside Label Studio: planie train-ner"})
            else:
                self._reply(404, {"error": f"unknown path {self.path}"})

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            sys.stderr.write(f"[ml-backend] {self.address_string()} {format % args}\n")

    return ThreadingHTTPServer((host, port), Handler)
