"""The text layer of a PDF (pypdfium2), one paragraph per line.

pdfium gives the characters of each page with their boxes and breaks lines where the layout does. The
lines of a page are put in reading order (top to bottom: these plans are set in one column), lines that
are only a page number (``— 3 —``, ``第3页``) are dropped, and a line joins the one before it unless a
paragraph starts there: after a short line (ending before the right margin with a sentence end such as
。or ：, or filling less than three quarters of the text width), at an indented line (the
first-line indent of Chinese documents, or a centred heading), or after a vertical gap wider than the
usual line spacing. A paragraph continues across a page break on the same terms. Joined lines get no
space between them, except between two Latin letters (a number broken over two lines stays whole).

A PDF without any text (a scanned document) is an error: it needs OCR first, and an empty record would
hide that.
"""

from __future__ import annotations

import re
import statistics
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.core.errors import InputError, SetupError

_PAGE_NUMBER = re.compile(r"[\s\-—–－]*(?:第\s*)?\d{1,4}(?:\s*页)?(?:\s*/\s*\d{1,4})?[\s\-—–－]*")
_GAP_FACTOR = 1.4  # a gap this many times the usual line spacing separates paragraphs
_INDENT_CHARS = 1.0  # a line starting this many characters right of the margin is indented
_SHORT_CHARS = 1.5  # a line ending this many characters left of the margin is short if it ends a sentence
_SHORT_SHARE = 0.75  # or if it fills less than this share of the text width (a heading, a last line)
_PARAGRAPH_END = ("。", "：", "；", "！", "？", ":", ";", "!", "?", "”", "」", "）")


Box = tuple[float, float, float, float]

# pdfium is not thread-safe (pypdfium2 does not lock): documents are read by a thread pool, so every
# pdfium call of the process goes through this lock, or two PDFs read at once corrupt the heap.
_PDFIUM = threading.Lock()


@dataclass(frozen=True)
class Line:
    text: str
    left: float
    right: float
    baseline: float


@dataclass(frozen=True)
class LaidLine:
    """A line with the paragraph decisions its page's geometry gives."""

    text: str
    indented: bool
    short: bool
    gap_before: bool


def page_lines(text: str, boxes: Sequence[Box]) -> list[Line]:
    """Lines of a page from pdfium's text (lines end in \\r\\n) and one (left, bottom, right, top) box per
    character; blank lines are skipped."""
    lines = []
    for m in re.finditer(r"[^\r\n]+", text):
        idx = [i for i in range(m.start(), m.end()) if not text[i].isspace()]
        if idx:
            left, right = min(boxes[i][0] for i in idx), max(boxes[i][2] for i in idx)
            lines.append(Line(m.group().strip(), left, right, statistics.median(boxes[i][1] for i in idx)))
    return lines


def char_width(text: str, boxes: Sequence[Box]) -> float:
    """The median width of the page's characters (full-width ones if any): the unit of indents and margins."""
    widths = [(ch, b[2] - b[0]) for ch, b in zip(text, boxes, strict=True) if not ch.isspace() and b[2] > b[0]]
    wide = [w for ch, w in widths if ord(ch) >= 0x2E80]
    return statistics.median(wide or [w for _, w in widths] or [10.0])


def lay_out(lines: list[Line], width: float) -> list[LaidLine]:
    """Reading order (top to bottom) and the paragraph marks of each line, page numbers dropped."""
    lines = sorted((ln for ln in lines if not _PAGE_NUMBER.fullmatch(ln.text)), key=lambda ln: -ln.baseline)
    if not lines:
        return []
    margin_left, margin_right = min(ln.left for ln in lines), max(ln.right for ln in lines)
    body = margin_right - margin_left
    gaps = [a.baseline - b.baseline for a, b in zip(lines, lines[1:], strict=False)]
    spacing = statistics.median(gaps) if gaps else 0.0
    out = []
    for i, ln in enumerate(lines):
        gap = gaps[i - 1] if i else 0.0
        out.append(
            LaidLine(
                ln.text,
                indented=ln.left > margin_left + _INDENT_CHARS * width,
                short=ln.right < margin_right - _SHORT_CHARS * width
                and (ln.text.endswith(_PARAGRAPH_END) or ln.right - margin_left < _SHORT_SHARE * body),
                gap_before=bool(i) and gap > _GAP_FACTOR * spacing,
            )
        )
    return out


def _joiner(a: str, b: str) -> str:
    """A space between two Latin words; nothing elsewhere (a number broken across lines stays whole)."""
    return " " if a[-1:].isascii() and a[-1:].isalpha() and b[:1].isascii() and b[:1].isalpha() else ""


def paragraphs_of(lines: Sequence[LaidLine]) -> list[str]:
    """Join the lines of each paragraph (across pages too)."""
    paras: list[str] = []
    previous: LaidLine | None = None
    for ln in lines:
        if previous is None or previous.short or ln.indented or ln.gap_before:
            paras.append(ln.text)
        else:
            paras[-1] += _joiner(paras[-1], ln.text) + ln.text
        previous = ln
    return paras


def _open(data: bytes, source: str):  # noqa: ANN202
    try:
        import pypdfium2 as pdfium
    except ImportError as exc:
        raise SetupError(f"{source}: reading PDF needs pypdfium2 (pip install -e '.[ml]')") from exc
    try:
        return pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        raise InputError(f"{source}: not a readable PDF ({exc})") from exc


def pdf_lines(data: bytes, source: str) -> list[LaidLine]:
    """Every page's lines in reading order with their paragraph marks."""
    out: list[LaidLine] = []
    for text, boxes in _pages(data, source):
        if len(boxes) != len(text):  # characters outside the BMP: no per-character geometry
            out += [LaidLine(t.strip(), True, True, True) for t in text.splitlines() if t.strip()]
        else:
            out += lay_out(page_lines(text, boxes), char_width(text, boxes))
    return out


def _pages(data: bytes, source: str) -> list[tuple[str, list[Box]]]:
    """Each page's text and character boxes; every pdfium object is closed before the lock is released."""
    with _PDFIUM:
        pdf = _open(data, source)
        pages = []
        try:
            for i in range(len(pdf)):
                page = pdf[i]
                textpage = page.get_textpage()
                boxes = [textpage.get_charbox(k) for k in range(textpage.count_chars())]
                pages.append((textpage.get_text_range(), boxes))
                textpage.close()
                page.close()
        finally:
            pdf.close()
    return pages


def pdf_text(data: bytes, source: str) -> str:
    """The text layer of a PDF, one paragraph per line; an InputError naming ``source`` if it has none."""
    paras = paragraphs_of(pdf_lines(data, source))
    if not paras:
        raise InputError(f"{source}: the PDF has no text layer (a scanned document?): run OCR on it first")
    return "\n".join(paras) + "\n"
