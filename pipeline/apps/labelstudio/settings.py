"""The Label Studio round trip's defaults and environment variable names, in a module that imports
nothing heavy: the ``planie ls`` parsers show them in their help without importing the HTTP client or
the server launcher (``client.py`` and ``server.py`` take them from here)."""

from __future__ import annotations

from pathlib import Path

from pipeline.core.files import REPO

DEFAULT_URL = "http://127.0.0.1:8080"
ENV_URL = "LABEL_STUDIO_URL"
ENV_TOKEN = "LABEL_STUDIO_API_KEY"
ENV_USER = "PLANIE_LS_USER"
ENV_PASSWORD = "PLANIE_LS_PASSWORD"

LS_VERSION = "1.23.2"
DEFAULT_PORT = 8080
DEFAULT_VENV = REPO / ".ls-venv"
DEFAULT_DATA_DIR = Path(".ls-data")
PID_FILE = "server.pid"
