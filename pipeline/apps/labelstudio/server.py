"""The Label Studio server process: install into its own venv, environment, start, health, stop."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from pipeline.apps.labelstudio.client import (
    ENV_PASSWORD,
    ENV_USER,
    LabelStudioError,
    LSConnectionError,
    make_opener,
    send_request,
)
from pipeline.apps.labelstudio.settings import DEFAULT_DATA_DIR as DEFAULT_DATA_DIR
from pipeline.apps.labelstudio.settings import DEFAULT_PORT as DEFAULT_PORT
from pipeline.apps.labelstudio.settings import DEFAULT_VENV as DEFAULT_VENV
from pipeline.apps.labelstudio.settings import LS_VERSION as LS_VERSION
from pipeline.apps.labelstudio.settings import PID_FILE as PID_FILE
from pipeline.core.errors import EXIT_SETUP, SetupError

LOG_FILE = "server.log"


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
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    try:
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"label-studio=={version}"], check=True, env=env)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise SetupError(f"installing label-studio {version} into {venv} failed: {exc}") from exc
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

    exit_code = EXIT_SETUP


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
    opener = make_opener(url)
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
            status, _ = send_request(opener, url, "GET", f"{url}/health", timeout=5)
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
