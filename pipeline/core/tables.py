"""CSV tables that are safe to open in a spreadsheet.

A cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is read as a formula by
Excel, LibreOffice and Google Sheets ("CSV injection"); such a cell is written with a leading
``'``, which the spreadsheet shows as text. Document text and file names reach these cells, so
every CSV that planie writes goes through ``safe_cell``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> str:
    """The cell as text, with a ``'`` in front if a spreadsheet would take it for a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


class SafeCsv:
    """Rows of safe cells written to a text handle (header first)."""

    def __init__(self, fh: TextIO, header: Sequence[str]) -> None:
        self._writer = csv.writer(fh, lineterminator="\n")
        self.header = list(header)
        self._writer.writerow(self.header)

    def row(self, cells: Iterable[Any]) -> None:
        self._writer.writerow([safe_cell(c) for c in cells])

    def record(self, row: dict[str, Any]) -> None:
        self.row(row.get(name) for name in self.header)
