"""The Label Studio round trip: server, REST client, push (pre-annotations), pull (gold), ML backend.

The server (label-studio 1.23) lives in its own virtual environment (``.ls-venv/``, ~1 GB of pinned
Django packages) and is driven as a subprocess; this module talks to it over plain HTTP with the
standard library only, so the project's environment gains no dependency.

Authentication uses a personal access token (a refresh JWT, ``planie ls token`` prints one) read from
``LABEL_STUDIO_API_KEY``; it is exchanged at ``/api/token/refresh/`` for short-lived access tokens,
refreshed when they expire. A legacy token (not a JWT) is sent as ``Authorization: Token ...``.

Tasks carry ``data.text`` and ``data.doc_id`` (the file stem); paragraph tasks (``push --select``)
also carry ``data.offset``, the paragraph's start in the file, so pulled spans map back to file
offsets. Offsets are Unicode code points (Python ``str`` indices) on both sides.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pipeline.annotations import (
    AnnotatedDoc,
    ExportError,
    Relation,
    Span,
    doc_from_result,
    load_export_tasks,
    load_gold,
    pick_annotation,
    result_items,
    write_export,
)
from pipeline.documents import (
    Document,
    DocumentError,
    Segment,
    collect_documents,
    documents_index,
    first_difference,
    read_document,
)
from pipeline.schema import DEFAULT_SCHEMA_PATH, Schema, label_studio_config, load_schema

REPO = Path(__file__).resolve().parent.parent
LS_VERSION = "1.23.2"
DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_PORT = 8080
DEFAULT_VENV = REPO / ".ls-venv"
DEFAULT_DATA_DIR = Path(".ls-data")
ENV_URL = "LABEL_STUDIO_URL"
ENV_TOKEN = "LABEL_STUDIO_API_KEY"
ENV_USER = "PLANIE_LS_USER"
ENV_PASSWORD = "PLANIE_LS_PASSWORD"
PID_FILE = "server.pid"
LOG_FILE = "server.log"


# ---------------------------------------------------------------------------------------------- errors


class LabelStudioError(RuntimeError):
    """Anything that went wrong talking to (or running) Label Studio; the message names the URL."""


class LSConnectionError(LabelStudioError):
    """The server could not be reached."""


class LSAuthError(LabelStudioError):
    """The server refused the credentials (token, user or password)."""


class LSAPIError(LabelStudioError):
    """The server answered with an error status."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


# ------------------------------------------------------------------------------------------------ HTTP


def _is_loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    return host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001, ANN201
        return None  # hand 3xx back to the caller (a successful login answers 302)


def _opener(url: str, jar: http.cookiejar.CookieJar | None = None) -> urllib.request.OpenerDirector:
    handlers: list[Any] = [_NoRedirect()]
    if _is_loopback(url):
        handlers.append(urllib.request.ProxyHandler({}))  # never send loopback traffic through a proxy
    if jar is not None:
        handlers.append(urllib.request.HTTPCookieProcessor(jar))
    return urllib.request.build_opener(*handlers)


def _send(
    opener: urllib.request.OpenerDirector,
    base: str,
    method: str,
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 60,
) -> tuple[int, bytes]:
    """One request; HTTP error statuses are returned, unreachable servers raise LSConnectionError."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with opener.open(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read() or b""
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise LSConnectionError(
            f"cannot connect to Label Studio at {base} ({reason}); is the server running? "
            f"(planie ls serve; the URL comes from --url or {ENV_URL})"
        ) from exc


def _detail(raw: bytes) -> str:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        text = raw.decode("utf-8", "replace").strip()
        return (text[:300] + "…") if len(text) > 300 else text
    if isinstance(data, dict):
        for key in ("validation_errors", "detail", "error", "message"):
            if key in data:
                return json.dumps(data[key], ensure_ascii=False) if not isinstance(data[key], str) else data[key]
    return json.dumps(data, ensure_ascii=False)[:300]


def _is_jwt(token: str) -> bool:
    return token.count(".") == 2


# --------------------------------------------------------------------------------------------- client


class LabelStudioClient:
    """A small REST client for the calls the round trip needs.

    ``url`` defaults to ``$LABEL_STUDIO_URL`` (else http://127.0.0.1:8080), ``token`` to
    ``$LABEL_STUDIO_API_KEY``: a personal access token (refresh JWT) or a legacy token."""

    def __init__(self, url: str | None = None, token: str | None = None, timeout: float = 120) -> None:
        self.url = (url or os.environ.get(ENV_URL) or DEFAULT_URL).rstrip("/")
        self.token = (token if token is not None else os.environ.get(ENV_TOKEN, "")).strip()
        self.timeout = timeout
        self._access: str | None = None
        self._opener = _opener(self.url)
        if not self.token:
            raise LSAuthError(
                f"no API token for Label Studio at {self.url}: set {ENV_TOKEN} "
                f"(`planie ls token` prints a personal access token)"
            )

    # -- transport
    def _raw(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None, auth=True):  # noqa: ANN001, ANN202
        url = self.url + path
        if params:
            url += "?" + urllib.parse.urlencode(params, doseq=True)
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if auth:
            headers["Authorization"] = self._authorization()
        return _send(self._opener, self.url, method, url, data, headers, self.timeout)

    def _authorization(self) -> str:
        if not _is_jwt(self.token):
            return f"Token {self.token}"
        if self._access is None:
            self._refresh()
        return f"Bearer {self._access}"

    def _refresh(self) -> None:
        status, raw = self._raw("POST", "/api/token/refresh/", {"refresh": self.token}, auth=False)
        if status in (400, 401, 403):
            raise LSAuthError(
                f"Label Studio at {self.url} rejected the API token from {ENV_TOKEN} "
                f"(HTTP {status}: {_detail(raw)}); get a new one with `planie ls token`"
            )
        if status != 200:
            raise LSAPIError(f"{self.url}/api/token/refresh/: HTTP {status}: {_detail(raw)}", status)
        try:
            self._access = json.loads(raw)["access"]
        except (ValueError, KeyError) as exc:
            raise LSAPIError(f"{self.url}/api/token/refresh/: unexpected answer {_detail(raw)}") from exc

    def request(
        self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None, raw: bool = False
    ) -> Any:
        """JSON in, JSON out; one transparent retry after refreshing an expired access token."""
        for attempt in range(2):
            status, content = self._raw(method, path, body, params)
            if status == 401 and attempt == 0 and _is_jwt(self.token):
                self._access = None  # the access token expired: refresh and retry once
                continue
            break
        if status == 401:
            raise LSAuthError(
                f"Label Studio at {self.url} refused the API token from {ENV_TOKEN} ({_detail(content)}); "
                f"get a new one with `planie ls token`"
            )
        if status >= 400:
            raise LSAPIError(f"{method} {self.url}{path}: HTTP {status}: {_detail(content)}", status)
        if raw:
            return content
        if not content:
            return None
        try:
            return json.loads(content)
        except ValueError as exc:
            raise LSAPIError(f"{method} {self.url}{path}: not JSON (is this a Label Studio server?)", status) from exc

    # -- API
    def whoami(self) -> dict[str, Any]:
        return self.request("GET", "/api/current-user/whoami")

    def find_project(self, title: str) -> dict[str, Any] | None:
        page = 1
        while True:
            data = self.request("GET", "/api/projects/", params={"title": title, "page": page, "page_size": 100})
            results = data.get("results", []) if isinstance(data, dict) else data
            for project in results:
                if project.get("title") == title:
                    return project
            if not isinstance(data, dict) or not data.get("next"):
                return None
            page += 1

    def create_project(self, title: str, label_config: str) -> dict[str, Any]:
        return self.request("POST", "/api/projects/", {"title": title, "label_config": label_config})

    def update_project(self, project_id: int, **fields: Any) -> dict[str, Any]:
        return self.request("PATCH", f"/api/projects/{project_id}/", fields)

    def list_tasks(self, project_id: int) -> list[dict[str, Any]]:
        """Every task of the project with its annotations and predictions."""
        tasks: list[dict[str, Any]] = []
        page = 1
        while True:
            data = self.request(
                "GET", "/api/tasks/", params={"project": project_id, "page": page, "page_size": 100, "fields": "all"}
            )
            batch = data.get("tasks", []) if isinstance(data, dict) else data
            tasks.extend(batch)
            total = data.get("total", len(tasks)) if isinstance(data, dict) else len(tasks)
            if not batch or len(tasks) >= total:
                return tasks
            page += 1

    def import_tasks(self, project_id: int, tasks: list[dict[str, Any]]) -> list[int]:
        data = self.request("POST", f"/api/projects/{project_id}/import", tasks, params={"return_task_ids": "true"})
        return list(data.get("task_ids") or [])

    def update_task(self, task_id: int, data: dict[str, Any]) -> dict[str, Any]:
        return self.request("PATCH", f"/api/tasks/{task_id}/", {"data": data})

    def create_prediction(
        self, task_id: int, result: list[dict[str, Any]], model_version: str, score: float | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"task": task_id, "result": result, "model_version": model_version}
        if score is not None:
            body["score"] = score
        return self.request("POST", "/api/predictions/", body)

    def delete_prediction(self, prediction_id: int) -> None:
        self.request("DELETE", f"/api/predictions/{prediction_id}/")

    def create_annotation(self, task_id: int, result: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return self.request("POST", f"/api/tasks/{task_id}/annotations/", {"result": result, **extra})

    def update_annotation(self, annotation_id: int, result: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return self.request("PATCH", f"/api/annotations/{annotation_id}/", {"result": result, **extra})

    def export(self, project_id: int) -> list[dict[str, Any]]:
        """Tasks with at least one finished annotation (JSON export, annotations in full)."""
        data = self.request("GET", f"/api/projects/{project_id}/export", params={"exportType": "JSON"})
        return data if isinstance(data, list) else []

    def users(self) -> dict[int, str]:
        data = self.request("GET", "/api/users/")
        rows = data.get("results", data) if isinstance(data, dict) else data
        return {int(u["id"]): str(u.get("email") or u.get("username") or u["id"]) for u in rows}

    def ml_backends(self, project_id: int) -> list[dict[str, Any]]:
        return self.request("GET", "/api/ml/", params={"project": project_id}) or []

    def add_ml_backend(self, project_id: int, url: str, title: str) -> dict[str, Any]:
        return self.request(
            "POST", "/api/ml/", {"url": url, "project": project_id, "title": title, "is_interactive": False}
        )

    def retrieve_predictions(self, project_id: int, task_ids: Sequence[int] | None = None) -> Any:
        """Ask the project's ML backend for predictions on these tasks (all tasks if None)."""
        selected = {"all": True, "excluded": []} if task_ids is None else {"all": False, "included": list(task_ids)}
        return self.request(
            "POST",
            "/api/dm/actions/",
            {"selectedItems": selected},
            params={"id": "retrieve_tasks_predictions", "project": project_id},
        )


# --------------------------------------------------------------------------------------- the token


def get_personal_token(url: str, user: str, password: str, rotate: bool = False, timeout: float = 60) -> str:
    """Log in with the form at /user/login/ and create the user's personal access token.

    Label Studio keeps one live token per user: if one exists, ``rotate`` revokes it (the old
    token stops working) and creates a new one; otherwise that is an error."""
    base = url.rstrip("/")
    jar = http.cookiejar.CookieJar()
    opener = _opener(base, jar)

    def cookie(name: str) -> str | None:
        return next((c.value for c in jar if c.name == name), None)

    status, _ = _send(opener, base, "GET", f"{base}/user/login/", timeout=timeout)
    csrf = cookie("csrftoken")
    if status != 200 or not csrf:
        raise LSAPIError(f"{base}/user/login/: HTTP {status}, no CSRF cookie (is this a Label Studio server?)", status)
    form = urllib.parse.urlencode({"email": user, "password": password, "csrfmiddlewaretoken": csrf}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Referer": f"{base}/user/login/"}
    status, _ = _send(opener, base, "POST", f"{base}/user/login/", form, headers, timeout)
    if status != 302:  # success redirects; a failure renders the form again (200)
        raise LSAuthError(f"login to Label Studio at {base} as {user!r} failed: check {ENV_USER} and {ENV_PASSWORD}")

    def api(method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        hdrs = {
            "X-CSRFToken": cookie("csrftoken") or csrf,
            "Referer": f"{base}/user/account/",
            "Accept": "application/json",
            "Content-Type": "application/json",
        }
        data = json.dumps(body).encode() if body is not None else None
        return _send(opener, base, method, base + path, data, hdrs, timeout)

    status, raw = api("POST", "/api/token/", {})
    if status == 409 and rotate:
        status_l, listed = api("GET", "/api/token/")
        for item in json.loads(listed) if status_l == 200 else []:
            api("POST", "/api/token/blacklist/", {"refresh": item["token"]})
        status, raw = api("POST", "/api/token/", {})
    if status == 409:
        raise LabelStudioError(
            f"{user} already has a personal access token at {base} (Label Studio keeps one per user); "
            f"use it, or `planie ls token --rotate` to revoke it and create a new one"
        )
    if status in (401, 403):
        raise LSAuthError(f"Label Studio at {base} refused to create a token for {user}: {_detail(raw)}")
    if status not in (200, 201):
        raise LSAPIError(f"{base}/api/token/: HTTP {status}: {_detail(raw)}", status)
    token = json.loads(raw).get("token")
    if not token:
        raise LSAPIError(
            f"{base}/api/token/: no token in the answer ({_detail(raw)}); "
            f"personal access tokens may be disabled for the organisation"
        )
    return token


# -------------------------------------------------------------------------------------------- server


def ls_executable(venv: str | Path = DEFAULT_VENV) -> Path:
    return Path(venv) / "bin" / "label-studio"


def install_server(venv: str | Path = DEFAULT_VENV, version: str = LS_VERSION, python: str | None = None) -> Path:
    """``python3 -m venv VENV && VENV/bin/pip install label-studio==VERSION`` (kept if present)."""
    venv = Path(venv)
    exe = ls_executable(venv)
    if exe.exists():
        probe = subprocess.run(
            [
                str(venv / "bin" / "python"),
                "-c",
                "from importlib.metadata import version; print(version('label-studio'))",
            ],
            capture_output=True,
            text=True,
        )
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return exe
    python = python or shutil.which("python3") or sys.executable
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"label-studio=={version}"], check=True, env=env)
    return exe


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    # Label Studio itself probes "localhost" with a connect(); refuse a port anything answers on.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) != 0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


# label-studio 1.23's default SSRF block list (core/utils/io.py validate_ip) without 127.0.0.0/8 and ::1.
NON_LOOPBACK_BANNED_SUBNETS = (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "169.254.0.0/16", "172.16.0.0/12", "192.0.0.0/24",
    "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24",
    "224.0.0.0/4", "233.252.0.0/24", "240.0.0.0/4", "255.255.255.255/32", "::/128", "::ffff:0:0/96",
    "::ffff:0:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64", "2001:0000::/32", "2001:20::/28",
    "2001:db8::/32", "2002::/16", "fc00::/7", "fe80::/10", "ff00::/8",
)  # fmt: skip


def server_env(
    data_dir: Path, port: int, user: str = "", password: str = "", host: str = "127.0.0.1", ml_local: bool = True
) -> dict[str, str]:
    """The server's environment: every setting given with its LABEL_STUDIO_ prefix (otherwise the
    server falls back to plain USERNAME, PASSWORD, HOST, PORT, DEBUG), nothing that calls out."""
    env = dict(os.environ)
    settings = {
        "BASE_DATA_DIR": str(Path(data_dir).resolve()),
        "USERNAME": user,
        "PASSWORD": password,
        "USER_TOKEN": "",
        "HOST": "",
        "PORT": str(port),
        "DEBUG": "false",
        "LATEST_VERSION_CHECK": "false",
        "COLLECT_ANALYTICS": "false",
        "SENTRY_DSN": "",
        "FRONTEND_SENTRY_DSN": "",
        "DISABLE_SIGNUP_WITHOUT_LINK": "true",
        "ML_BLOCK_LOCAL_IP": "false" if ml_local else "true",
        # The defaults (1 s for /health, 3 s for /setup) fail on a busy machine.
        "ML_CONNECTION_TIMEOUT": "5",
        "ML_TIMEOUT_HEALTH": "10",
        "ML_TIMEOUT_SETUP": "15",
    }
    if ml_local:
        # Connecting an ML backend also registers a webhook to it, checked by the SSRF guard even
        # with ML_BLOCK_LOCAL_IP=false: keep the server's banned networks, minus loopback.
        settings["USE_DEFAULT_BANNED_SUBNETS"] = "false"
        settings["USER_ADDITIONAL_BANNED_SUBNETS"] = ",".join(NON_LOOPBACK_BANNED_SUBNETS)
    for key, value in settings.items():
        env[f"LABEL_STUDIO_{key}"] = value
    for key in ("LATEST_VERSION_CHECK", "COLLECT_ANALYTICS", "SENTRY_DSN", "FRONTEND_SENTRY_DSN", "ML_BLOCK_LOCAL_IP"):
        env[key] = settings[key]
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.pop("SECRET_KEY", None)  # read unprefixed by label-studio: it would override the data dir's key
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class Server:
    """A running label-studio process started by :func:`start_server`."""

    process: subprocess.Popen
    url: str
    port: int
    data_dir: Path
    log_path: Path

    def stop(self, timeout: float = 20) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def ensure_secret_key(data_dir: Path) -> None:
    """Give the data dir a SECRET_KEY (it signs the JWT tokens) that label-studio can read back.

    label-studio 1.23 writes a random Django key to ``DATA_DIR/.env`` on the first start, and reads
    it with django-environ, which takes a value starting with ``$`` for a reference to another
    variable: one data dir in 50 then gets a new key at every start, and every token dies with
    it. A key is therefore written before the first start (URL-safe alphabet), and a ``$`` key
    left by an earlier start is replaced (tokens signed with it were already invalid)."""
    import secrets

    env_file = data_dir / ".env"
    lines = env_file.read_text(encoding="utf-8").splitlines() if env_file.exists() else []
    keys = [line.split("=", 1)[1] for line in lines if line.startswith("SECRET_KEY=")]
    if keys and not keys[0].startswith("$"):
        return
    if keys:
        print(
            f"warning: {env_file}: the server's SECRET_KEY starts with '$', which label-studio cannot read back; "
            f"replaced (tokens issued before are invalid: get a new one with `planie ls token --rotate`)",
            file=sys.stderr,
        )
    kept = [line for line in lines if not line.startswith("SECRET_KEY=")]
    content = "\n".join([*kept, f"SECRET_KEY={secrets.token_urlsafe(48)}"]) + "\n"
    fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(content)


class PortTakenError(LabelStudioError):
    """The port was free when checked but taken before label-studio bound it."""


def wait_healthy(
    url: str,
    timeout: float,
    process: subprocess.Popen | None = None,
    log_path: Path | None = None,
    log_offset: int = 0,
) -> float:
    """Poll ``url``/health until it answers 200; return the seconds waited.

    With the ``process`` and its ``log_path``, the answer only counts once the log says this
    process serves ``url`` (not another server that took the port meanwhile)."""
    started = time.monotonic()
    opener = _opener(url)
    port = urllib.parse.urlsplit(url).port
    while True:
        if process is not None and process.poll() is not None:
            raise LabelStudioError(
                f"label-studio exited with code {process.returncode} before {url} was ready" + _log_tail(log_path)
            )
        log = _log_since(log_path, log_offset) if process is not None else ""
        if f"Port {port} is in use" in log:
            raise PortTakenError(f"port {port} was taken by another program while label-studio started")
        try:
            status, _ = _send(opener, url, "GET", f"{url}/health", timeout=5)
            if status == 200 and (process is None or log_path is None or f"server at {url}/" in log):
                return time.monotonic() - started
        except LSConnectionError:
            pass
        if time.monotonic() - started > timeout:
            raise LabelStudioError(f"Label Studio at {url} not healthy after {timeout:.0f} s" + _log_tail(log_path))
        time.sleep(0.5)


def _log_since(log_path: Path | None, offset: int) -> str:
    if log_path is None:
        return ""
    try:
        with open(log_path, "rb") as fh:
            fh.seek(offset)
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _log_tail(log_path: Path | None, lines: int = 15) -> str:
    if not log_path or not log_path.exists():
        return ""
    tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    return f"; last lines of {log_path}:\n" + "\n".join(tail)


def start_server(
    data_dir: str | Path = DEFAULT_DATA_DIR,
    port: int = DEFAULT_PORT,
    venv: str | Path = DEFAULT_VENV,
    user: str | None = None,
    password: str | None = None,
    host: str = "127.0.0.1",
    log_path: str | Path | None = None,
    timeout: float = 300,
    ml_local: bool = True,
    executable: str | Path | None = None,
) -> Server:
    """Start label-studio bound to ``host:port`` with its data in ``data_dir``; wait for /health.

    A busy port is an error (the server itself would silently move to the next one). The admin
    user is created from ``user``/``password`` (default: $PLANIE_LS_USER, $PLANIE_LS_PASSWORD) on
    the first start of a data dir; later starts keep the stored password."""
    exe = Path(executable) if executable else ls_executable(venv)
    if not exe.exists():
        raise LabelStudioError(f"label-studio not found at {exe}: run `planie ls install` (or scripts/ls_install.sh)")
    if not port_is_free(port, host):
        raise LabelStudioError(f"port {port} on {host} is already in use: stop what runs there or pick another --port")
    data_dir = Path(data_dir).resolve()
    user = user if user is not None else os.environ.get(ENV_USER, "")
    password = password if password is not None else os.environ.get(ENV_PASSWORD, "")
    fresh = not (data_dir / "label_studio.sqlite3").exists()
    if fresh and not (user and password):
        raise LabelStudioError(
            f"{data_dir} holds no Label Studio database yet: set {ENV_USER} (an e-mail address) and "
            f"{ENV_PASSWORD} to create the admin user on this first start"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    ensure_secret_key(data_dir)
    log_path = Path(log_path) if log_path else data_dir / LOG_FILE
    url = f"http://{host}:{port}"
    cmd = [str(exe), "start", "--no-browser", "--internal-host", host, "--port", str(port), "--data-dir", str(data_dir)]
    log_offset = log_path.stat().st_size if log_path.exists() else 0
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            cmd,
            env=server_env(data_dir, port, user, password, host, ml_local),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=data_dir,
            start_new_session=True,  # Ctrl-C in the terminal reaches planie, which stops the server
        )
    server = Server(process, url, port, data_dir, log_path)
    try:
        wait_healthy(url, timeout, process, log_path, log_offset)
    except BaseException:
        server.stop()
        raise
    return server


# ---------------------------------------------------------------------------------------- documents


# -------------------------------------------------------------------------------------- predictions


def load_extractor(model: str) -> Any:
    from pipeline.extract import load_extractor as load

    try:
        return load(model)
    except ValueError as exc:
        raise LabelStudioError(str(exc)) from exc


def model_version(extractor: Any) -> str:
    """``<ner>+<relations>``, plus a fingerprint of the weights for a model folder, so a model
    retrained into the same folder is a new version (its predictions are pushed again)."""
    version = f"{extractor.ner_id}+{extractor.relations_id}"
    model_dir = getattr(getattr(extractor, "ner", None), "model_dir", None)
    if model_dir is not None:
        import hashlib

        digest = hashlib.sha256()
        for f in sorted(Path(model_dir).glob("*")):
            if f.suffix in (".safetensors", ".bin", ".json") and f.is_file():
                digest.update(f.name.encode())
                with f.open("rb") as fh:
                    for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                        digest.update(block)
        version += f"@{digest.hexdigest()[:8]}"
    return version


def prediction_items(spans: Sequence[Span], relations: Sequence[Relation]) -> list[dict[str, Any]]:
    """Label Studio result items of a prediction (per-span score, relations between kept spans)."""
    doc = AnnotatedDoc("", "", tuple(spans), tuple(r for r in relations))
    items = result_items(doc)
    for item in items:
        item.pop("origin", None)
    return items


def _mean_score(spans: Sequence[Span]) -> float | None:
    scores = [s.score for s in spans if s.score is not None]
    return round(sum(scores) / len(scores), 4) if scores else None


def slice_prediction(
    spans: Sequence[Span], relations: Sequence[Relation], start: int, end: int
) -> tuple[list[Span], list[Relation]]:
    """Spans inside [start, end), shifted to the slice; relations whose ends both survive."""
    kept = [
        Span(s.id, s.start - start, s.end - start, s.label, s.text, s.score)
        for s in spans
        if start <= s.start and s.end <= end
    ]
    ids = {s.id for s in kept}
    return kept, [r for r in relations if r.head in ids and r.tail in ids]


def paragraph_entropies(ner: Any, texts: Sequence[str]) -> list[list[tuple[Segment, float]]]:
    """Per text, each paragraph with its token entropy summed over its pieces (nats), from the
    same probabilities that :meth:`pipeline.ner.NerModel.predict` decodes."""
    import numpy as np

    out: list[list[tuple[Segment, float]]] = [[] for _ in texts]
    for para in ner.paragraph_probabilities(texts):
        p = np.clip(para.probs, 1e-12, 1.0)
        out[para.text_index].append((para.paragraph, float(-(p * np.log(p)).sum())))
    return out


# ----------------------------------------------------------------------------------------------- push


def _task_key(data: dict[str, Any]) -> tuple[str, int | None]:
    offset = data.get("offset")
    return str(data.get("doc_id", "")), (int(offset) if offset is not None else None)


@dataclass
class PushReport:
    project_id: int
    project_created: bool = False
    config_updated: bool = False
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    predictions_added: int = 0
    conflicts: list[str] = field(default_factory=list)
    backend: str = ""

    def summary(self) -> str:
        lines = [
            f"project {self.project_id}"
            + (" (created)" if self.project_created else "")
            + (" (labeling config updated)" if self.config_updated else ""),
            f"tasks: {len(self.created)} created, {len(self.updated)} updated, {len(self.skipped)} unchanged; "
            f"{self.predictions_added} prediction(s) added",
        ]
        if self.backend:
            lines.append(f"ML backend: {self.backend}")
        lines += [f"conflict: {c}" for c in self.conflicts]
        return "\n".join(lines)


@dataclass(frozen=True)
class TaskSpec:
    """One task to push: its data and (optionally) a prediction."""

    data: dict[str, Any]
    result: list[dict[str, Any]] | None = None
    score: float | None = None

    @property
    def key(self) -> tuple[str, int | None]:
        return _task_key(self.data)

    @property
    def name(self) -> str:
        doc_id, offset = self.key
        return doc_id if offset is None else f"{doc_id}@{offset}"


def ensure_project(client: LabelStudioClient, title: str, label_config: str) -> tuple[dict[str, Any], bool, bool]:
    """(project, created, config_updated): the project named ``title`` with this labeling config."""
    project = client.find_project(title)
    if project is None:
        return client.create_project(title, label_config), True, False
    if (project.get("label_config") or "").strip() != label_config.strip():
        return client.update_project(project["id"], label_config=label_config), False, True
    return project, False, False


def document_specs(documents: Sequence[Document], extractor: Any | None) -> list[TaskSpec]:
    """Whole-document tasks, with the extractor's predictions if one is given."""
    preds = extractor.predict([d.text for d in documents]) if extractor is not None else [None] * len(documents)
    specs = []
    for doc, pred in zip(documents, preds, strict=True):
        data = {"text": doc.text, "doc_id": doc.doc_id, "source": doc.source}
        if pred is None:
            specs.append(TaskSpec(data))
        else:
            spans, relations = pred
            specs.append(TaskSpec(data, prediction_items(spans, relations), _mean_score(spans)))
    return specs


def gold_coverage(paths: Sequence[str | Path]) -> dict[str, list[tuple[int, int]] | None]:
    """doc_id → the annotated regions of the gold exports in these files/folders (None: the whole
    document; paragraph-built files written by :func:`pull` record theirs in ``data.regions``)."""
    covered: dict[str, list[tuple[int, int]] | None] = {}
    for p in map(Path, paths):
        for f in sorted(p.glob("*.json")) if p.is_dir() else [p]:
            for task in load_export_tasks(f):
                if pick_annotation(task) is None:
                    continue
                doc_id = str(task["data"].get("doc_id") or "")
                regions = task["data"].get("regions")
                if regions is None:
                    covered[doc_id] = None
                elif covered.get(doc_id, []) is not None:
                    covered.setdefault(doc_id, []).extend((int(a), int(b)) for a, b in regions)  # type: ignore[union-attr]
    return covered


def select_paragraph_specs(
    documents: Sequence[Document],
    extractor: Any,
    n: int,
    exclude: set[tuple[str, int | None]] = frozenset(),  # type: ignore[assignment]
    with_predictions: bool = True,
    covered: dict[str, list[tuple[int, int]] | None] | None = None,
) -> list[TaskSpec]:
    """The ``n`` paragraphs with the highest summed token entropy under the model, most
    informative first, skipping paragraphs (and whole documents) already in the project
    (``exclude``: task keys) or already annotated (``covered``: see :func:`gold_coverage`)."""
    ner = getattr(extractor, "ner", None)
    if ner is None:
        raise LabelStudioError(
            "--select ranks paragraphs by the model's token entropy: it needs a trained model folder "
            "(--model DIR), the rules give no probabilities"
        )
    covered = covered or {}
    whole = {doc_id for doc_id, offset in exclude if offset is None} | {d for d, r in covered.items() if r is None}

    def unlabeled(doc_id: str, para: Segment) -> bool:
        regions = covered.get(doc_id) or []
        return (doc_id, para.start) not in exclude and not any(a < para.end and para.start < b for a, b in regions)

    todo = [d for d in documents if d.doc_id not in whole]
    candidates: list[tuple[float, Document, Segment]] = []
    for doc, paras in zip(todo, paragraph_entropies(ner, [d.text for d in todo]), strict=True):
        candidates += [(ent, doc, para) for para, ent in paras if unlabeled(doc.doc_id, para)]
    candidates.sort(key=lambda c: (-c[0], c[1].doc_id, c[2].start))
    chosen = candidates[:n]
    by_doc: dict[str, Document] = {d.doc_id: d for _, d, _ in chosen}
    preds = {}
    if with_predictions and by_doc:
        docs = list(by_doc.values())
        preds = dict(zip([d.doc_id for d in docs], extractor.predict([d.text for d in docs]), strict=True))
    specs = []
    for ent, doc, para in chosen:
        data = {
            "text": para.text,
            "doc_id": doc.doc_id,
            "offset": para.start,
            "source": doc.source,
            "entropy": round(ent, 4),
        }
        if doc.doc_id in preds:
            spans, relations = slice_prediction(*preds[doc.doc_id], para.start, para.end)
            specs.append(TaskSpec(data, prediction_items(spans, relations), _mean_score(spans)))
        else:
            specs.append(TaskSpec(data))
    return specs


def push_specs(
    client: LabelStudioClient,
    title: str,
    specs: Sequence[TaskSpec],
    version: str,
    schema: Schema,
    backend_url: str | None = None,
) -> PushReport:
    """Create/update the project and its tasks; idempotent on (doc_id, offset).

    A task already present with the same text is left alone, except that a prediction of this
    model version is added if it has none. A task whose text changed is updated (old predictions
    dropped) unless it has annotations: that is a conflict, reported, not touched."""
    project, created, config_updated = ensure_project(client, title, label_studio_config(schema))
    report = PushReport(project["id"], created, config_updated)
    existing = {} if created else {_task_key(t.get("data") or {}): t for t in client.list_tasks(project["id"])}
    new: list[dict[str, Any]] = []
    for spec in specs:
        task = existing.get(spec.key)
        if task is None:
            payload: dict[str, Any] = {"data": spec.data}
            if spec.result is not None:
                pred: dict[str, Any] = {"model_version": version, "result": spec.result}
                if spec.score is not None:
                    pred["score"] = spec.score
                payload["predictions"] = [pred]
            new.append(payload)
            report.created.append(spec.name)
            existing[spec.key] = {"data": spec.data}  # a document given twice is pushed once
            continue
        if "id" not in task:
            continue
        predictions = [p for p in task.get("predictions") or [] if isinstance(p, dict)]
        if task["data"].get("text") != spec.data["text"]:
            if task.get("annotations") or task.get("total_annotations") or task.get("drafts"):
                at = first_difference(task["data"].get("text", ""), spec.data["text"])
                report.conflicts.append(
                    f"{spec.name}: task {task['id']} is annotated but its text differs from the document "
                    f"at character {at}; not updated (annotate the new version in another project)"
                )
                continue
            client.update_task(task["id"], spec.data)
            for p in predictions:
                client.delete_prediction(p["id"])
            predictions = []
            report.updated.append(spec.name)
        else:
            report.skipped.append(spec.name)
        if spec.result is not None and not any(p.get("model_version") == version for p in predictions):
            client.create_prediction(task["id"], spec.result, version, spec.score)
            report.predictions_added += 1
    if new:
        client.import_tasks(project["id"], new)
        report.predictions_added += sum(1 for t in new if "predictions" in t)
    if version and any(spec.result is not None for spec in specs) and project.get("model_version") != version:
        client.update_project(project["id"], model_version=version)  # the UI pre-annotates with this version
    if backend_url:
        report.backend = connect_backend(client, project["id"], backend_url, version or "planie")
    return report


def connect_backend(client: LabelStudioClient, project_id: int, url: str, title: str) -> str:
    """Attach the ML backend at ``url`` to the project (once); return its state."""
    url = url.rstrip("/")
    for backend in client.ml_backends(project_id):
        if str(backend.get("url", "")).rstrip("/") == url:
            return f"{url} already connected (state {backend.get('state')})"
    try:
        backend = client.add_ml_backend(project_id, url, title)
    except LSAPIError as exc:
        raise LabelStudioError(
            f"Label Studio at {client.url} could not connect the ML backend {url}: {exc} "
            f"(is `planie ls backend` running? a backend on localhost needs the server started with "
            f"ML_BLOCK_LOCAL_IP=false, which `planie ls serve` does)"
        ) from exc
    return f"{url} connected (state {backend.get('state')}, model version {backend.get('model_version')})"


# ----------------------------------------------------------------------------------------------- pull


@dataclass
class PullReport:
    written: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.conflicts and not self.problems

    def summary(self) -> str:
        lines = [f"{len(self.written)} file(s) written, {len(self.unchanged)} unchanged"]
        lines += [f"  wrote {p}" for p in self.written]
        lines += [f"note: {n}" for n in self.notes]
        lines += [f"conflict: {c}" for c in self.conflicts]
        lines += [f"problem: {p}" for p in self.problems]
        return "\n".join(lines)


def _squash(s: str) -> str:
    return re.sub(r"\s+", "", s)


def _trusted_offsets(text: str, result: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Result items whose value.text differs from the slice only in white space get the slice
    (Label Studio's offsets are exact, its text may be normalised); real mismatches are kept for
    the validator to report."""
    fixed = []
    for item in result:
        v = item.get("value")
        if item.get("type") == "labels" and isinstance(v, dict):
            s, e = v.get("start"), v.get("end")
            if isinstance(s, int) and isinstance(e, int) and 0 <= s < e <= len(text):
                piece = text[s:e]
                if v.get("text") != piece and _squash(str(v.get("text", ""))) == _squash(piece):
                    item = {**item, "value": {**v, "text": piece}}
        fixed.append(item)
    return fixed


def _shift(result: list[dict[str, Any]], offset: int, rename: Callable[[str], str]) -> list[dict[str, Any]]:
    out = []
    for item in result:
        item = dict(item)
        if item.get("type") == "labels":
            v = dict(item.get("value") or {})
            if isinstance(v.get("start"), int) and isinstance(v.get("end"), int):
                v["start"] += offset
                v["end"] += offset
            item["value"] = v
            item["id"] = rename(str(item.get("id")))
        elif item.get("type") == "relation":
            item["from_id"] = rename(str(item.get("from_id")))
            item["to_id"] = rename(str(item.get("to_id")))
        out.append(item)
    return out


def _same_annotation(a: AnnotatedDoc, b: AnnotatedDoc) -> bool:
    def spans(d: AnnotatedDoc) -> list[tuple]:
        return sorted((s.id, s.start, s.end, s.label, s.text) for s in d.spans)

    def rels(d: AnnotatedDoc) -> list[tuple]:
        return sorted((r.head, r.tail, r.label) for r in d.relations)

    return a.text == b.text and spans(a) == spans(b) and rels(a) == rels(b)


def _extends(old: AnnotatedDoc, old_regions: Any, new: AnnotatedDoc) -> bool:
    """A paragraph-built file that the new pull only adds to: more regions, and every old span and
    relation still there (compared by position and label, since ids may be renamed on a clash)."""
    new_regions = new.meta.get("regions")
    if not old_regions or not new_regions or old.text != new.text:
        return False
    if not {tuple(r) for r in old_regions} <= {tuple(r) for r in new_regions}:
        return False

    def keyed(d: AnnotatedDoc) -> tuple[set[tuple], set[tuple]]:
        pos = {s.id: (s.start, s.end, s.label, s.text) for s in d.spans}
        return set(pos.values()), {(pos.get(r.head), pos.get(r.tail), r.label) for r in d.relations}

    (old_spans, old_rels), (new_spans, new_rels) = keyed(old), keyed(new)
    return old_spans <= new_spans and old_rels <= new_rels


def _safe_name(name: str) -> str:
    return re.sub(r"[^\w.@+-]+", "_", name).strip("._") or "annotator"


def build_pulled_docs(
    tasks: Sequence[dict[str, Any]],
    documents: dict[str, Path],
    all_annotators: bool = False,
    annotator_names: dict[int, str] | None = None,
) -> tuple[dict[tuple[str, str], tuple[AnnotatedDoc, str]], list[str], list[str]]:
    """Group exported tasks into documents: {(annotator, doc_id): (doc, where)}, problems, notes.

    ``annotator`` is "" unless ``all_annotators``. Paragraph tasks are mapped back to file offsets
    through the source document (``documents`` by doc_id, else ``data.source``)."""
    problems: list[str] = []
    notes: list[str] = []
    groups: dict[tuple[str, str], list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    for task in tasks:
        data = task.get("data") or {}
        if not isinstance(data.get("text"), str):
            problems.append(f"task {task.get('id')}: no data.text")
            continue
        if all_annotators:
            latest: dict[Any, dict[str, Any]] = {}
            for ann in task.get("annotations") or []:
                if ann.get("was_cancelled"):
                    continue
                who = ann.get("completed_by")
                who = who.get("id") if isinstance(who, dict) else who
                if who not in latest or pick_annotation({"annotations": [latest[who], ann]}) is ann:
                    latest[who] = ann
            chosen = [((annotator_names or {}).get(who, str(who)), ann) for who, ann in latest.items()]
        else:
            ann = pick_annotation(task)
            chosen = [("", ann)] if ann else []
        for who, ann in chosen:
            groups.setdefault(
                (_safe_name(who) if who else "", str(data.get("doc_id") or f"task{task.get('id')}")), []
            ).append((task, ann))

    docs: dict[tuple[str, str], tuple[AnnotatedDoc, str]] = {}
    texts: dict[str, str] = {}
    for (who, doc_id), items in sorted(groups.items()):
        whole = [(t, a) for t, a in items if (t["data"].get("offset") is None)]
        parts = [(t, a) for t, a in items if (t["data"].get("offset") is not None)]
        where = ", ".join(f"task {t.get('id')} annotation {a.get('id')}" for t, a in items)
        if whole:
            task, ann = max(whole, key=lambda ta: (str(ta[1].get("updated_at") or ""), ta[1].get("id") or 0))
            if len(whole) > 1 or parts:
                notes.append(f"{doc_id}: {len(items)} annotated tasks; kept the whole-document task {task.get('id')}")
            text = task["data"]["text"]
            result = _trusted_offsets(text, ann.get("result") or [])
            doc = doc_from_result(doc_id, text, result, str(task["data"].get("source", "")))
            docs[(who, doc_id)] = (doc, f"task {task.get('id')} annotation {ann.get('id')}")
            continue
        if doc_id not in texts:
            source = documents.get(doc_id) or Path(str(parts[0][0]["data"].get("source") or ""))
            try:
                if not source or not Path(source).is_file():
                    raise DocumentError(f"source document of {doc_id} not found")
                texts[doc_id] = read_document(source).text
            except DocumentError as exc:
                problems.append(
                    f"{doc_id} ({where}): paragraph tasks need the source document to map offsets back: {exc}; "
                    f"pass --docs FOLDER"
                )
                continue
        text = texts[doc_id]
        merged: list[dict[str, Any]] = []
        regions = []
        seen: set[str] = set()
        bad = False
        for task, ann in sorted(parts, key=lambda ta: int(ta[0]["data"]["offset"])):
            offset, ptext = int(task["data"]["offset"]), task["data"]["text"]
            if text[offset : offset + len(ptext)] != ptext:
                problems.append(
                    f"{doc_id}: task {task.get('id')}: the paragraph at offset {offset} no longer matches the "
                    f"source document (it changed since the push)"
                )
                bad = True
                continue
            result = _trusted_offsets(ptext, ann.get("result") or [])
            ids = {str(i.get("id")) for i in result if i.get("type") == "labels"}
            clash = bool(ids & seen)
            seen |= {f"{i}_p{offset}" if clash else i for i in ids}
            merged += _shift(result, offset, (lambda i, o=offset: f"{i}_p{o}") if clash else (lambda i: i))
            regions.append([offset, offset + len(ptext)])
        if bad:  # a document is written whole or not at all
            continue
        doc = doc_from_result(doc_id, text, merged, str(parts[0][0]["data"].get("source", "")))
        doc = AnnotatedDoc(doc.doc_id, doc.text, doc.spans, doc.relations, doc.source, {"regions": regions})
        docs[(who, doc_id)] = (doc, where)
    return docs, problems, notes


def pull(
    client: LabelStudioClient,
    title: str,
    out_dir: str | Path,
    schema: Schema,
    documents: dict[str, Path] | None = None,
    all_annotators: bool = False,
    force: bool = False,
) -> PullReport:
    """Export the project's finished annotations (latest per task, or per annotator), map paragraph
    tasks back to file offsets, validate, and write one export file per document atomically.

    Everything is fetched and checked before the first file is written. An existing file with a
    different annotation is a conflict (left alone) unless ``force``."""
    from pipeline.validate import validate_result

    documents = documents or {}
    out_dir = Path(out_dir)
    project = client.find_project(title)
    if project is None:
        raise LabelStudioError(f"no project named {title!r} at {client.url}")
    tasks = client.export(project["id"])
    names = client.users() if all_annotators else None
    docs, problems, notes = build_pulled_docs(tasks, documents, all_annotators, names)
    report = PullReport(problems=list(problems), notes=list(notes))
    plan: list[tuple[Path, AnnotatedDoc]] = []
    for (who, doc_id), (doc, where) in docs.items():
        target = (out_dir / who / f"{doc_id}.json") if who else out_dir / f"{doc_id}.json"
        found = validate_result(doc.text, result_items(doc), schema, (str(target), f"{doc_id} ({where})", None))
        if doc_id in documents and not doc.meta.get("regions"):
            try:
                original = read_document(documents[doc_id]).text
            except DocumentError as exc:
                report.problems.append(str(exc))
                continue
            if original != doc.text:
                report.problems.append(
                    f"{doc_id} ({where}): the task text differs from {documents[doc_id]} at character "
                    f"{first_difference(original, doc.text)}"
                )
                continue
        if found:
            report.problems += [str(p) for p in found]
            continue
        if target.exists():
            try:
                old = load_gold(target)
                old_regions = load_export_tasks(target)[0]["data"].get("regions")
            except ValueError as exc:
                old, old_regions, reason = [], None, str(exc)
            else:
                reason = "a different annotation"
            if len(old) == 1 and _same_annotation(old[0], doc):
                report.unchanged.append(target)
                continue
            if len(old) == 1 and _extends(old[0], old_regions, doc):
                report.notes.append(f"{target}: more paragraphs annotated, file extended")
            elif not force:
                report.conflicts.append(f"{target} exists with {reason}: not overwritten (use --force)")
                continue
        plan.append((target, doc))
    for target, doc in plan:
        write_export(target, [doc])
        report.written.append(target)
    if not tasks:
        report.notes.append(f"project {title!r} has no finished annotations yet")
    return report


# ------------------------------------------------------------------------------------------ ML backend


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
            score = _mean_score(spans)
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


# ------------------------------------------------------------------------------------------------ CLI


def _schema_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--schema", default=str(DEFAULT_SCHEMA_PATH), help="schema YAML (default: %(default)s)")


def _url_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--url",
        default=None,
        help=f"Label Studio URL (default: ${ENV_URL}, else {DEFAULT_URL}); the token comes from ${ENV_TOKEN}",
    )


def _fail(command: str, exc: Exception) -> int:
    print(f"planie ls {command}: error: {exc}", file=sys.stderr)
    return 2 if isinstance(exc, LSConnectionError | LSAuthError) else 1


def cmd_install(args: argparse.Namespace) -> int:
    started = time.monotonic()
    try:
        exe = install_server(args.venv, args.version)
    except (OSError, subprocess.CalledProcessError) as exc:
        return _fail("install", exc)
    print(f"label-studio {args.version} at {exe} ({time.monotonic() - started:.0f} s)")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir).resolve()
    pid_file = data_dir / PID_FILE
    if pid_file.exists() and _pid_alive(pid_file):
        return _fail("serve", LabelStudioError(f"a server started from {data_dir} is still running ({pid_file})"))
    try:
        started = time.monotonic()
        server = start_server(
            data_dir, args.port, args.venv, host="127.0.0.1", timeout=args.timeout, ml_local=not args.block_local_ml
        )
    except LabelStudioError as exc:
        return _fail("serve", exc)
    print(
        f"Label Studio {server.url} ready in {time.monotonic() - started:.0f} s "
        f"(data {data_dir}, log {server.log_path})"
    )
    print(f"  export {ENV_URL}={server.url}")
    pid_file.write_text(f"{server.process.pid} {server.port}\n", encoding="utf-8")
    if args.detach:
        print(
            f"  running in the background, pid {server.process.pid}; "
            f"stop it with: planie ls stop --data-dir {args.data_dir}"
        )
        return 0
    print("  Ctrl-C stops it")

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)  # the server runs in its own session: stop it ourselves
    try:
        code = server.process.wait()
        print(f"label-studio exited with code {code}; see {server.log_path}", file=sys.stderr)
        return code or 1
    except KeyboardInterrupt:
        print("stopping")
        return 0
    finally:
        server.stop()
        pid_file.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    """Alive and not a zombie (a server started by this very process is not reaped by anyone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _pid_alive(pid_file: Path) -> bool:
    try:
        pid = int(pid_file.read_text(encoding="utf-8").split()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, IndexError):
        return False
    return b"label-studio" in cmdline


def cmd_stop(args: argparse.Namespace) -> int:
    pid_file = Path(args.data_dir).resolve() / PID_FILE
    if not pid_file.exists() or not _pid_alive(pid_file):
        pid_file.unlink(missing_ok=True)
        print(f"no running server recorded in {pid_file}")
        return 1
    pid = int(pid_file.read_text(encoding="utf-8").split()[0])
    os.kill(pid, signal.SIGTERM)
    for _ in range(150):
        if not _running(pid):
            break
        time.sleep(0.2)
    pid_file.unlink(missing_ok=True)
    print(f"stopped label-studio (pid {pid})")
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    url = (args.url or os.environ.get(ENV_URL) or DEFAULT_URL).rstrip("/")
    user, password = os.environ.get(ENV_USER, ""), os.environ.get(ENV_PASSWORD, "")
    if not user or not password:
        return _fail("token", LSAuthError(f"set {ENV_USER} and {ENV_PASSWORD} (the admin of {url})"))
    try:
        token = get_personal_token(url, user, password, rotate=args.rotate)
    except LabelStudioError as exc:
        return _fail("token", exc)
    print(token)
    print(f"# export {ENV_TOKEN}=<the line above>", file=sys.stderr)
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    paths = collect_documents(args.docs)
    if not paths:
        return _fail("push", LabelStudioError("no documents found in the inputs"))
    documents, failed = [], 0
    for path in paths:
        try:
            documents.append(read_document(path))
        except DocumentError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
    schema = load_schema(args.schema)
    try:
        client = LabelStudioClient(args.url)
        client.whoami()  # fail on a bad URL or token before loading a model
        extractor = load_extractor(args.model) if (args.select or not args.no_predictions) else None
        version = model_version(extractor) if extractor is not None else ""
        if args.select:
            project = client.find_project(args.project)
            exclude = {_task_key(t.get("data") or {}) for t in client.list_tasks(project["id"])} if project else set()
            covered = gold_coverage(args.gold or [])
            specs = select_paragraph_specs(documents, extractor, args.select, exclude, not args.no_predictions, covered)
            if not specs:
                print("no unlabeled paragraph left to push (all in the project or covered by --gold)")
                return 0
        else:
            specs = document_specs(documents, None if args.no_predictions else extractor)
        report = push_specs(client, args.project, specs, version, schema, args.backend_url)
    except (LabelStudioError, ExportError) as exc:
        return _fail("push", exc)
    print(report.summary())
    print(f"open {client.url}/projects/{report.project_id}/data")
    return 1 if (report.conflicts or failed) else 0


def cmd_pull(args: argparse.Namespace) -> int:
    schema = load_schema(args.schema)
    documents = documents_index(args.docs or [])
    try:
        client = LabelStudioClient(args.url)
        report = pull(client, args.project, args.out, schema, documents, args.all_annotators, args.force)
    except LabelStudioError as exc:
        return _fail("pull", exc)
    print(report.summary())
    return 0 if report.ok else 1


def cmd_backend(args: argparse.Namespace) -> int:
    try:
        service = PredictionService(load_extractor(args.model))
        server = make_backend(service, args.host, args.port)
    except (LabelStudioError, OSError) as exc:
        return _fail("backend", exc)
    print(f"ML backend for {service.model_version} at http://{args.host}:{args.port} (Ctrl-C stops it)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def add_ls_commands(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``planie ls ...`` (install, serve, stop, token, push, pull, backend)."""
    ls = subparsers.add_parser(
        "ls",
        help="the Label Studio round trip: server, token, push pre-annotations, pull gold, ML backend",
        description=(
            "Annotate in Label Studio: `ls install` once, `ls serve`, `ls token`, then `ls push` documents with "
            f"the model's pre-annotations and `ls pull` the corrected annotations. Clients read the server URL "
            f"from ${ENV_URL} (default {DEFAULT_URL}) and the personal access token from ${ENV_TOKEN}."
        ),
    )
    sub = ls.add_subparsers(dest="ls_command", required=True, metavar="LS_COMMAND")

    p = sub.add_parser(
        "install",
        help=f"install label-studio {LS_VERSION} into its own venv (~1 GB, a few minutes)",
        description="python3 -m venv VENV && VENV/bin/pip install label-studio==VERSION (kept if already there).",
    )
    p.add_argument("--venv", default=str(DEFAULT_VENV), help="server venv (default: %(default)s)")
    p.add_argument("--version", default=LS_VERSION, help="label-studio version (default: %(default)s)")
    p.set_defaults(func=cmd_install)

    p = sub.add_parser(
        "serve",
        help="start label-studio on 127.0.0.1:PORT and wait until it is healthy",
        description=(
            f"Start label-studio bound to 127.0.0.1 only, data in --data-dir (SQLite). The first start of a data "
            f"dir migrates the database (~40 s) and creates the admin from ${ENV_USER} (an e-mail) and "
            f"${ENV_PASSWORD}. Sign-up without an invitation link, version checks, analytics and Sentry are off; "
            "ML backends on localhost are allowed. A busy port is an error."
        ),
    )
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="port on 127.0.0.1 (default: %(default)s)")
    p.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR), help="server data folder (default: %(default)s)")
    p.add_argument("--venv", default=str(DEFAULT_VENV), help="server venv (default: %(default)s)")
    p.add_argument("--timeout", type=float, default=300, help="seconds to wait for /health (default: %(default)s)")
    p.add_argument("--detach", action="store_true", help="leave it running in the background (stop: planie ls stop)")
    p.add_argument("--block-local-ml", action="store_true", help="forbid ML backends on local addresses")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("stop", help="stop a server started with `ls serve --detach`")
    p.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR), help="its data folder (default: %(default)s)")
    p.set_defaults(func=cmd_stop)

    p = sub.add_parser(
        "token",
        help="print a personal access token for the admin (for $LABEL_STUDIO_API_KEY)",
        description=(
            f"Log in as ${ENV_USER} / ${ENV_PASSWORD} and create the user's personal access token; prints it "
            f"alone on stdout: export {ENV_TOKEN}=$(planie ls token). Label Studio keeps one token per user."
        ),
    )
    _url_arg(p)
    p.add_argument("--rotate", action="store_true", help="revoke the user's existing token and create a new one")
    p.set_defaults(func=cmd_token)

    p = sub.add_parser(
        "push",
        help="import documents (or the most informative paragraphs) as tasks with the model's predictions",
        description=(
            "Create or update the project (labeling config generated from the schema) and import each document as "
            "a task: data.text = the whole text, data.doc_id = the file stem, so offsets are file offsets; the "
            "model's spans (with scores) and relations come as predictions (pre-annotations). Idempotent: a task "
            "with the same doc_id (and offset) is not duplicated. --select N pushes instead the N paragraphs with "
            "the highest summed token entropy under the model, as tasks carrying doc_id and offset."
        ),
    )
    p.add_argument("docs", nargs="+", metavar="DOCS", help=".txt documents: files, folders (recursive) or globs")
    p.add_argument("--project", required=True, help="project title (created if missing)")
    p.add_argument("--model", default="rules", help="'rules' or a trained model folder (default: %(default)s)")
    p.add_argument("--select", type=int, metavar="N", help="push only the N most uncertain unlabeled paragraphs")
    p.add_argument(
        "--gold",
        nargs="*",
        metavar="PATH",
        help="with --select: skip what these exports (files or folders, e.g. annotations/) already cover",
    )
    p.add_argument("--no-predictions", action="store_true", help="tasks without pre-annotations")
    p.add_argument("--backend-url", help="connect this ML backend (planie ls backend) to the project")
    _url_arg(p)
    _schema_arg(p)
    p.set_defaults(func=cmd_push)

    p = sub.add_parser(
        "pull",
        help="export finished annotations to one validated Label Studio JSON file per document",
        description=(
            "Export the project's finished annotations (the latest per task), map paragraph tasks back to "
            "document offsets, validate them against the schema (and the source files with --docs) and write "
            "OUT/DOC_ID.json atomically. An existing file with a different annotation is reported and kept "
            "unless --force. Exit 1 on any conflict or problem; the other documents are still written."
        ),
    )
    p.add_argument("--project", required=True, help="project title")
    p.add_argument("--out", required=True, help="output folder, e.g. annotations/")
    p.add_argument("--docs", nargs="*", help="folders of the source .txt files (checks text; needed for paragraphs)")
    p.add_argument("--all-annotators", action="store_true", help="one file per annotator: OUT/ANNOTATOR/DOC_ID.json")
    p.add_argument("--force", action="store_true", help="overwrite existing files that differ")
    _url_arg(p)
    _schema_arg(p)
    p.set_defaults(func=cmd_pull)

    p = sub.add_parser(
        "backend",
        help="serve the model's predictions as a Label Studio ML backend",
        description=(
            'GET /health, POST /setup, POST /predict -> {"results": [...]}; connect it with '
            "`planie ls push ... --backend-url http://127.0.0.1:PORT`."
        ),
    )
    p.add_argument("--model", default="rules", help="'rules' or a trained model folder (default: %(default)s)")
    p.add_argument("--port", type=int, default=9090, help="port (default: %(default)s)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    p.set_defaults(func=cmd_backend)
    return ls
