"""The ``planie`` command line (parsing only: each command loads its config and calls one library function)."""

from pipeline.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
