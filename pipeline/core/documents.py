"""Reading documents (UTF-8/BOM/GB18030, .docx, .html), paragraphs, sentences, task items, headings."""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pipeline.core.errors import InputError


class DocumentError(InputError):
    """A document that cannot be read as text; the message names the file."""


@dataclass(frozen=True)
class Document:
    doc_id: str
    source: str
    text: str
    encoding: str


@dataclass(frozen=True)
class Segment:
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class TaskItem:
    """A paragraph plus an immediately following line that only assigns responsibility; or the cells of
    one row of a task table with a responsibility column (``table_row``)."""

    start: int
    end: int
    paragraphs: tuple[Segment, ...]
    table_row: bool = False


_BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))


def decode_bytes(data: bytes, source: str = "<bytes>") -> tuple[str, str]:
    """Decode UTF-8 (BOM optional), UTF-16 with BOM, or GB18030; return (text, encoding)."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(encoding), encoding
            except UnicodeDecodeError as exc:
                raise DocumentError(f"{source}: not valid {encoding} after its byte-order mark ({exc})") from exc
    if b"\x00" in data[:4096]:
        raise DocumentError(f"{source}: looks binary (NUL bytes), not a text document")
    for encoding in ("utf-8", "gb18030"):
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    raise DocumentError(f"{source}: neither UTF-8 nor GB18030 text")


def documents_index(dirs: Sequence[str | Path]) -> dict[str, Path]:
    """doc_id (file stem) → path for every .txt file under the folders (or the files given)."""
    index: dict[str, Path] = {}
    for d in map(Path, dirs):
        for f in [d] if d.is_file() else sorted(d.rglob("*.txt")):
            index.setdefault(f.stem, f)
    return index


def first_difference(a: str, b: str) -> int:
    """Index of the first character where two texts differ (the shorter length if one is a prefix)."""
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


def doc_id_for(path: Path) -> str:
    return path.stem


def read_document(path: str | Path, doc_id: str | None = None) -> Document:
    """A .txt file as decoded; a .docx, .html or .pdf file as its text (paragraphs on their own lines)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DocumentError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    suffix = path.suffix.lower()
    if suffix == ".docx":
        return Document(doc_id or doc_id_for(path), str(path), docx_text(data, str(path)), "docx")
    if suffix == ".pdf":
        return Document(doc_id or doc_id_for(path), str(path), _pdf_text(data, str(path)), "pdf")
    text, encoding = decode_bytes(data, str(path))
    if suffix in (".html", ".htm"):
        text = html_text(text)
    return Document(doc_id or doc_id_for(path), str(path), text, encoding)


def _pdf_text(data: bytes, source: str) -> str:
    from pipeline.core.pdf import pdf_text

    try:
        return pdf_text(data, source)
    except InputError as exc:
        raise DocumentError(str(exc)) from None


def docx_text(data: bytes, source: str) -> str:
    """The paragraphs of a Word document, one per line (tabs and breaks kept as \t and \n)."""
    import io
    import zipfile
    from xml.etree import ElementTree

    ns = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            root = ElementTree.fromstring(z.read("word/document.xml"))
    except (zipfile.BadZipFile, KeyError, ElementTree.ParseError) as exc:
        raise DocumentError(f"{source}: not a readable .docx ({exc})") from exc
    lines = []
    for para in root.iter(f"{ns}p"):
        parts = []
        for node in para.iter():
            if node.tag == f"{ns}t":
                parts.append(node.text or "")
            elif node.tag == f"{ns}tab":
                parts.append("\t")
            elif node.tag in (f"{ns}br", f"{ns}cr"):
                parts.append("\n")
        lines.append("".join(parts))
    return "\n".join(lines)


def html_text(markup: str) -> str:
    """Visible text of an HTML page; block elements start new lines, scripts and styles are dropped."""
    from html.parser import HTMLParser

    blocks = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "table", "td"}

    class Extract(HTMLParser):
        def __init__(self) -> None:
            super().__init__(convert_charrefs=True)
            self.parts: list[str] = []
            self.skip = 0

        def handle_starttag(self, tag: str, attrs: list) -> None:  # noqa: ARG002
            if tag in ("script", "style"):
                self.skip += 1
            elif tag in blocks:
                self.parts.append("\n")

        def handle_endtag(self, tag: str) -> None:
            if tag in ("script", "style"):
                self.skip = max(0, self.skip - 1)
            elif tag in blocks:
                self.parts.append("\n")

        def handle_data(self, data: str) -> None:
            if not self.skip:
                self.parts.append(data.replace("\r", "").replace("\n", " "))

    parser = Extract()
    parser.feed(markup)
    lines = (line.strip(" ") for line in "".join(parser.parts).split("\n"))
    return "\n".join(line for line in lines if line.strip())


@lru_cache(maxsize=1)
def _t2s():  # noqa: ANN202
    try:
        import opencc
    except ImportError:  # traditional input then relies on the vocabulary alone
        return None
    return opencc.OpenCC("t2s")


def is_han(c: str) -> bool:
    """A character of the CJK Unified Ideographs block (the Chinese of these documents)."""
    return "\u4e00" <= c <= "\u9fff"


def to_simplified(text: str) -> str:
    """Traditional → simplified with the length kept (character by character where needed)."""
    conv = _t2s()
    if conv is None:
        return text
    out = conv.convert(text)
    if len(out) == len(text):
        return out
    return "".join(c if len(c := conv.convert(ch)) == 1 else ch for ch in text)


_LINE = re.compile(r"[^\r\n]+")


# A sentence ends at 。！？!? (plus closing quotes/brackets right after it), or at the line end.
_SENTENCE = re.compile(r"[^。！？!?\r\n]*(?:[。！？!?]+[”’」』）)]*|$)")


def paragraphs(text: str) -> list[Segment]:
    """Non-blank lines, trimmed of surrounding white space (full-width included)."""
    result = []
    for m in _LINE.finditer(text):
        seg = _strip(text, m.start(), m.end())
        if seg is not None:
            result.append(seg)
    return result


def sentences(text: str, within: Segment | None = None) -> list[Segment]:
    """Sentences inside ``within`` (default: every paragraph), never crossing a line break."""
    result = []
    for para in [within] if within else paragraphs(text):
        for m in _SENTENCE.finditer(text, para.start, para.end):
            if m.end() > m.start():
                seg = _strip(text, m.start(), m.end())
                if seg is not None:
                    result.append(seg)
    return result


def _strip(text: str, start: int, end: int) -> Segment | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return Segment(start, end, text[start:end]) if end > start else None


_ASSIGN_WORD = re.compile(r"牵头|负责|配合|参与|分工")


_PARENTHESISED = re.compile(r"[（(](?:[^（）()]|[（(][^（）()]*[）)])*[）)][。；;]?")


# a label naming who is responsible: 责任单位, 牵头部门, 配合单位, 协助部门 … (a line prefix or a table column)
RESPONSIBILITY_LABEL = re.compile(r"(?:责任|牵头|配合|协助|协办|参与)(?:单位|部门|处室)")
_RESPONSIBILITY_PREFIX = re.compile(RESPONSIBILITY_LABEL.pattern + r"[:：]")


def is_assignment_line(line: str) -> bool:
    """A line that only assigns responsibility: （省质监局牵头，各有关部门配合）, 由…牵头，…配合。, 责任单位：…,
    牵头部门：…"""
    line = line.strip()
    if not line or len(line) > 400 or not _ASSIGN_WORD.search(line):
        return bool(_RESPONSIBILITY_PREFIX.match(line))
    if _RESPONSIBILITY_PREFIX.match(line) or _PARENTHESISED.fullmatch(line):
        return True
    return (
        bool(re.match(r"由?[^，,。；;]{2,200}(?:牵头|负责)(?:落实|实施)?(?:[，,；;。]|$)", line))
        and line.count("。") <= 1
    )


def task_items(text: str) -> list[TaskItem]:
    """Task items: a paragraph plus the lines right after it that only assign responsibility (short
    attribute lines such as 活动时间：9月 may come between); a numbered sub-heading line ((一)加强组织领导。)
    directly above an unnumbered body paragraph belongs to it; each row of a task table with a
    responsibility column is an item of its own (``table_rows``)."""
    paras = paragraphs(text)
    rows = table_rows(paras)
    items: list[TaskItem] = []
    i = 0
    while i < len(paras):
        end = rows.get(i) or _item_end(paras, i, rows)
        items.append(TaskItem(paras[i].start, paras[end - 1].end, tuple(paras[i:end]), table_row=i in rows))
        i = end
    return items


def _item_end(paras: Sequence[Segment], i: int, rows: dict[int, int]) -> int:
    """The index after the task item that starts with paragraph ``i``."""
    end = i + 1
    if _is_sub_heading(paras[i].text) and end < len(paras) and _is_body(paras[end].text):
        end += 1
    if is_assignment_line(paras[i].text):
        return end

    def free(k: int) -> bool:
        return k < len(paras) and k not in rows

    j = end
    while free(j) and _ATTRIBUTE_LINE.fullmatch(paras[j].text) and not is_assignment_line(paras[j].text):
        j += 1
    if not (free(j) and is_assignment_line(paras[j].text)):
        return end
    while free(j) and (is_assignment_line(paras[j].text) or _ATTRIBUTE_LINE.fullmatch(paras[j].text)):
        j += 1
    return j


# 活动时间：9月, 完成时限：2024年底: an attribute of the task item above it, not a paragraph of its own
_ATTRIBUTE_LINE = re.compile(r"[\u4e00-\u9fff]{2,6}[:：][^:：。；;]{1,30}")
_ROW_NUMBER = re.compile(r"\d{1,3}")
_MAX_HEADER_CELL = 12


def table_rows(paras: Sequence[Segment]) -> dict[int, int]:
    """The rows of task tables whose cells were flattened one per line (as web pages give them): a header
    that starts with 序号 and has a responsibility column (责任单位, 牵头部门…), then rows that each start
    with their serial number 1, 2, 3…; a row runs to the next number or the next heading. Returns the
    index of each row's number line -> the index after its last cell."""
    rows: dict[int, int] = {}
    i = 0
    while i < len(paras):
        header = _table_header_end(paras, i)
        if header is None:
            i += 1
            continue
        i, expected = header, 1
        while i < len(paras) and paras[i].text == str(expected):
            end = i + 1
            while end < len(paras) and paras[end].text != str(expected + 1) and not is_heading(paras[end].text):
                end += 1
            rows[i], i, expected = end, end, expected + 1
    return rows


def _table_header_end(paras: Sequence[Segment], i: int) -> int | None:
    """The index after a table header starting at ``i`` (序号, short column names, one of them naming the
    responsible bodies, then the row number 1), or None."""
    if paras[i].text != "序号":
        return None
    j = i + 1
    while j < len(paras) and len(paras[j].text) <= _MAX_HEADER_CELL and not _ROW_NUMBER.fullmatch(paras[j].text):
        j += 1
    cells = [p.text for p in paras[i + 1 : j]]
    if j < len(paras) and paras[j].text == "1" and any(RESPONSIBILITY_LABEL.search(c) for c in cells):
        return j
    return None


def _is_body(line: str) -> bool:
    """A paragraph a sub-heading above it belongs to: not a heading, not numbered itself (then the
    sub-heading heads a group of items), not an assignment line."""
    return not (is_heading(line) or _HEADING_NUMBER.match(line.strip()) or is_assignment_line(line))


def _is_sub_heading(line: str) -> bool:
    return is_heading(line) and bool(re.match(r"[（(][一二三四五六七八九十\d]+[）)]|\d+[.．、]", line.strip()))


_HEADING_NUMBER = re.compile(
    r"^(?:[一二三四五六七八九十]+、|[（(][一二三四五六七八九十]+[）)]|\d+[.．、]|[（(]\d+[）)]|第[一二三四五六七八九十]+[章节部分])"
)


def is_heading(line: str) -> bool:
    """A section heading: a numbered title, or a short line ending in a colon."""
    line = line.strip()
    if not line:
        return False
    if line.endswith(("：", ":")) and len(line) <= 40:
        return True
    if _HEADING_NUMBER.match(line):
        body = _HEADING_NUMBER.sub("", line)
        return len(body) <= 30 and not re.search(r"[，,；;]", body.rstrip("。"))
    return False


class SentenceIndex:
    """Maps character offsets to the sentence that contains them."""

    def __init__(self, text: str) -> None:
        self.sentences: list[Segment] = sentences(text)
        self._starts = [s.start for s in self.sentences]

    def of(self, offset: int) -> int:
        i = bisect_right(self._starts, offset) - 1
        return i if i >= 0 and offset < self.sentences[i].end else -1
