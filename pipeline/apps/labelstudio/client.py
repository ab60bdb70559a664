"""The Label Studio client (label-studio-sdk, the ``annotate`` extra), its errors and the personal token.

The form login that creates the first personal access token and the health probe stay on the
standard library: the SDK cannot log in with e-mail and password, and `planie ls serve` needs no SDK."""

from __future__ import annotations

import contextlib
import http.cookiejar
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from typing import Any

from pipeline.apps.labelstudio.settings import DEFAULT_URL as DEFAULT_URL
from pipeline.apps.labelstudio.settings import ENV_PASSWORD as ENV_PASSWORD
from pipeline.apps.labelstudio.settings import ENV_TOKEN as ENV_TOKEN
from pipeline.apps.labelstudio.settings import ENV_URL as ENV_URL
from pipeline.apps.labelstudio.settings import ENV_USER as ENV_USER
from pipeline.core.errors import EXIT_SETUP, PlanieError, SetupError


class LabelStudioError(PlanieError, RuntimeError):
    """Anything that went wrong talking to (or running) Label Studio; the message names the URL."""


class LSConnectionError(LabelStudioError):
    """The server could not be reached."""

    exit_code = EXIT_SETUP


class LSAuthError(LabelStudioError):
    """The server refused the credentials (token, user or password)."""

    exit_code = EXIT_SETUP


class LSAPIError(LabelStudioError):
    """The server answered with an error status."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def _is_loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    return host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001, ANN201
        return None  # hand 3xx back to the caller (a successful login answers 302)


def make_opener(url: str, jar: http.cookiejar.CookieJar | None = None) -> urllib.request.OpenerDirector:
    handlers: list[Any] = [_NoRedirect()]
    if _is_loopback(url):
        handlers.append(urllib.request.ProxyHandler({}))  # never send loopback traffic through a proxy
    if jar is not None:
        handlers.append(urllib.request.HTTPCookieProcessor(jar))
    return urllib.request.build_opener(*handlers)


def send_request(
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


def _detail(raw: bytes | Any) -> str:
    """The useful part of an error answer: raw bytes, or the body the SDK already parsed."""
    data = raw
    if isinstance(raw, bytes):
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            data = raw.decode("utf-8", "replace")
    if isinstance(data, str):
        text = data.strip()
        return (text[:300] + "…") if len(text) > 300 else text
    if isinstance(data, dict):
        for key in ("validation_errors", "detail", "error", "message"):
            if key in data:
                return json.dumps(data[key], ensure_ascii=False) if not isinstance(data[key], str) else data[key]
    return json.dumps(data, ensure_ascii=False)[:300]


ANNOTATE_EXTRA = 'pip install -e ".[annotate]"'


def require_sdk() -> Any:
    """The ``label_studio_sdk`` module, or a SetupError telling how to install the ``annotate`` extra."""
    try:
        import label_studio_sdk
    except ImportError as exc:
        raise SetupError(
            f"the Label Studio commands need label-studio-sdk, which is not installed: {ANNOTATE_EXTRA}"
        ) from exc
    return label_studio_sdk


def _plain(obj: Any) -> Any:
    """SDK response models as plain JSON-like dicts and lists (the fields the server sent)."""
    if isinstance(obj, list):
        return [_plain(o) for o in obj]
    if hasattr(obj, "dict") and not isinstance(obj, dict):
        return obj.dict()
    return obj


class LabelStudioClient:
    """The calls the round trip needs, through label-studio-sdk, with planie's errors.

    ``url`` defaults to ``$LABEL_STUDIO_URL`` (else http://127.0.0.1:8080), ``token`` to
    ``$LABEL_STUDIO_API_KEY``: a personal access token (refresh JWT, exchanged for access tokens
    by the SDK) or a legacy token. Answers are plain dicts. ``sdk`` is the SDK client itself."""

    def __init__(self, url: str | None = None, token: str | None = None, timeout: float = 120) -> None:
        self.url = (url or os.environ.get(ENV_URL) or DEFAULT_URL).rstrip("/")
        self.token = (token if token is not None else os.environ.get(ENV_TOKEN, "")).strip()
        sdk = require_sdk()
        import httpx

        if not self.token:
            raise LSAuthError(
                f"no API token for Label Studio at {self.url}: set {ENV_TOKEN} "
                f"(`planie ls token` prints a personal access token)"
            )
        # httpx would send loopback traffic through $HTTP(S)_PROXY: not for a local server.
        http = httpx.Client(timeout=timeout, follow_redirects=True, trust_env=not _is_loopback(self.url))
        with self._errors("connect"):
            self.sdk = sdk.LabelStudio(base_url=self.url, api_key=self.token, httpx_client=http)

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """SDK and transport errors as LabelStudioError subclasses that name the URL and the fix."""
        import httpx
        from label_studio_sdk.core.api_error import ApiError
        from pydantic import ValidationError

        try:
            yield
        except httpx.TransportError as exc:
            raise LSConnectionError(
                f"cannot connect to Label Studio at {self.url} ({exc or type(exc).__name__}); is the server "
                f"running? (planie ls serve; the URL comes from --url or {ENV_URL})"
            ) from exc
        except ApiError as exc:
            detail = _detail(exc.body)
            if exc.status_code == 401:
                raise LSAuthError(
                    f"Label Studio at {self.url} refused the API token from {ENV_TOKEN} (HTTP {exc.status_code}: "
                    f"{detail}); get a new one with `planie ls token`"
                ) from exc
            raise LSAPIError(f"{what} at {self.url}: HTTP {exc.status_code}: {detail}", exc.status_code or 0) from exc
        except (ValueError, ValidationError) as exc:  # an answer that is not Label Studio's JSON
            raise LSAPIError(
                f"{what} at {self.url}: unexpected answer ({exc}); is this a Label Studio server?"
            ) from exc

    # -- API
    def whoami(self) -> dict[str, Any]:
        with self._errors("who am I"):
            return _plain(self.sdk.users.whoami())

    def find_project(self, title: str) -> dict[str, Any] | None:
        with self._errors("list projects"):
            return next(
                (_plain(p) for p in self.sdk.projects.list(title=title, page_size=100) if p.title == title), None
            )

    def project(self, project_id: int) -> dict[str, Any]:
        with self._errors(f"get project {project_id}"):
            return _plain(self.sdk.projects.get(id=project_id))

    def create_project(self, title: str, label_config: str) -> dict[str, Any]:
        with self._errors("create project"):
            return _plain(self.sdk.projects.create(title=title, label_config=label_config))

    def update_project(self, project_id: int, **fields: Any) -> dict[str, Any]:
        with self._errors(f"update project {project_id}"):
            return _plain(self.sdk.projects.update(id=project_id, **fields))

    def list_tasks(self, project_id: int) -> list[dict[str, Any]]:
        """Every task of the project with its annotations and predictions."""
        with self._errors(f"list tasks of project {project_id}"):
            return [_plain(t) for t in self.sdk.tasks.list(project=project_id, fields="all", page_size=100)]

    def import_tasks(self, project_id: int, tasks: list[dict[str, Any]]) -> list[int]:
        with self._errors(f"import tasks into project {project_id}"):
            answer = self.sdk.projects.import_tasks(id=project_id, request=tasks, return_task_ids=True)
        return list(getattr(answer, "task_ids", None) or [])

    def update_task(self, task_id: int, data: dict[str, Any]) -> dict[str, Any]:
        with self._errors(f"update task {task_id}"):
            return _plain(self.sdk.tasks.update(id=str(task_id), data=data))

    def create_prediction(
        self, task_id: int, result: list[dict[str, Any]], model_version: str, score: float | None = None
    ) -> dict[str, Any]:
        extra = {} if score is None else {"score": score}
        with self._errors(f"create a prediction for task {task_id}"):
            return _plain(
                self.sdk.predictions.create(task=task_id, result=result, model_version=model_version, **extra)
            )

    def delete_prediction(self, prediction_id: int) -> None:
        with self._errors(f"delete prediction {prediction_id}"):
            self.sdk.predictions.delete(id=prediction_id)

    def create_annotation(self, task_id: int, result: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        with self._errors(f"annotate task {task_id}"):
            return _plain(self.sdk.annotations.create(id=task_id, result=result, **extra))

    def update_annotation(self, annotation_id: int, result: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        with self._errors(f"update annotation {annotation_id}"):
            return _plain(self.sdk.annotations.update(id=annotation_id, result=result, **extra))

    def export(self, project_id: int) -> list[dict[str, Any]]:
        """Tasks with at least one finished annotation (JSON export, annotations in full). Not
        ``exports.as_json``: on the Community server that includes the unannotated tasks."""
        with self._errors(f"export project {project_id}"):
            raw = b"".join(self.sdk.projects.exports.download_sync(id=project_id, export_type="JSON"))
            data = json.loads(raw or b"[]")
        return data if isinstance(data, list) else []

    def users(self) -> dict[int, str]:
        with self._errors("list users"):
            rows = _plain(self.sdk.users.list())
        return {int(u["id"]): str(u.get("email") or u.get("username") or u["id"]) for u in rows}

    def ml_backends(self, project_id: int) -> list[dict[str, Any]]:
        with self._errors(f"list the ML backends of project {project_id}"):
            return _plain(self.sdk.ml.list(project=project_id)) or []

    def add_ml_backend(self, project_id: int, url: str, title: str) -> dict[str, Any]:
        with self._errors("connect ML backend"):
            return _plain(self.sdk.ml.create(url=url, project=project_id, title=title, is_interactive=False))

    def train(self, backend_id: int) -> None:
        """Ask the ML backend to train (the UI's "Start Training"; the server answers before it does)."""
        with self._errors(f"start training ML backend {backend_id}"):
            self.sdk.ml.train(id=backend_id)

    def retrieve_predictions(self, project_id: int, task_ids: Sequence[int] | None = None) -> None:
        """Ask the project's ML backend for predictions on these tasks (all tasks if None)."""
        selected = {"all": True, "excluded": []} if task_ids is None else {"all": False, "included": list(task_ids)}
        with self._errors(f"retrieve predictions for project {project_id}"):
            self.sdk.actions.create(id="retrieve_tasks_predictions", project=project_id, selected_items=selected)


def get_personal_token(url: str, user: str, password: str, rotate: bool = False, timeout: float = 60) -> str:
    """Log in with the form at /user/login/ and create the user's personal access token.

    Label Studio keeps one live token per user: if one exists, ``rotate`` revokes it (the old
    token stops working) and creates a new one; otherwise that is an error."""
    base = url.rstrip("/")
    jar = http.cookiejar.CookieJar()
    opener = make_opener(base, jar)

    def cookie(name: str) -> str | None:
        return next((c.value for c in jar if c.name == name), None)

    status, _ = send_request(opener, base, "GET", f"{base}/user/login/", timeout=timeout)
    csrf = cookie("csrftoken")
    if status != 200 or not csrf:
        raise LSAPIError(f"{base}/user/login/: HTTP {status}, no CSRF cookie (is this a Label Studio server?)", status)
    form = urllib.parse.urlencode({"email": user, "password": password, "csrfmiddlewaretoken": csrf}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Referer": f"{base}/user/login/"}
    status, _ = send_request(opener, base, "POST", f"{base}/user/login/", form, headers, timeout)
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
        return send_request(opener, base, method, base + path, data, hdrs, timeout)

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
