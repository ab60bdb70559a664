"""Label Studio REST client (standard library HTTP only), its errors and the personal token."""

from __future__ import annotations

import http.cookiejar
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any

from pipeline.core.errors import EXIT_SETUP, PlanieError

DEFAULT_URL = "http://127.0.0.1:8080"


ENV_URL = "LABEL_STUDIO_URL"


ENV_TOKEN = "LABEL_STUDIO_API_KEY"


ENV_USER = "PLANIE_LS_USER"


ENV_PASSWORD = "PLANIE_LS_PASSWORD"


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


class LabelStudioClient:
    """A small REST client for the calls the round trip needs.

    ``url`` defaults to ``$LABEL_STUDIO_URL`` (else http://127.0.0.1:8080), ``token`` to
    ``$LABEL_STUDIO_API_KEY``: a personal access token (refresh JWT) or a legacy token."""

    def __init__(self, url: str | None = None, token: str | None = None, timeout: float = 120) -> None:
        self.url = (url or os.environ.get(ENV_URL) or DEFAULT_URL).rstrip("/")
        self.token = (token if token is not None else os.environ.get(ENV_TOKEN, "")).strip()
        self.timeout = timeout
        self._access: str | None = None
        self._opener = make_opener(self.url)
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
        return send_request(self._opener, self.url, method, url, data, headers, self.timeout)

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
