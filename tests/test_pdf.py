"""PDF input: the text layer in reading order, one paragraph per line; no text layer is an error.

The PDFs are made here with reportlab's built-in CID font STSong-Light (Adobe-GB1, not embedded: no
font file needed), so the text layer is real CJK text that pdfium has to map back through the CMap.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cli.main import main
from pipeline.core.documents import DocumentError, read_document
from pipeline.core.inputs import collect_documents
from pipeline.core.pdf import LaidLine, Line, lay_out, paragraphs_of

pytest.importorskip("pypdfium2")

FONT, SIZE, LEADING = "STSong-Light", 12, 18
LINE_1 = "到2015年，全省产品质量国家监督抽查合格率达到95%以上，主要农产品质量安全抽检合格"  # full width


def make_pdf(path: Path, pages: list[list[tuple[float, float, str]]]) -> Path:
    """One page per list of (x, y, text) lines, drawn in the order given (not necessarily reading order)."""
    reportlab = pytest.importorskip("reportlab")
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    assert reportlab
    pdfmetrics.registerFont(UnicodeCIDFont(FONT))
    c = canvas.Canvas(str(path), pagesize=(595, 842))
    for lines in pages:
        c.setFont(FONT, SIZE)
        for x, y, text in lines:
            c.drawString(x, y, text)
        c.showPage()
    c.save()
    return path


@pytest.fixture()
def plan_pdf(tmp_path: Path) -> Path:
    page1 = [
        (300, 40, "— 1 —"),  # the footer comes first in the content stream
        (200, 800, "河北省质量发展规划"),  # centred heading
        (96, 770, LINE_1),  # indented first line, full width
        (72, 770 - LEADING, "率稳定在96%以上。"),  # short last line
        (96, 770 - 2 * LEADING, "各市人民政府要加强质量监管，质量工作考核结果作为政府领导班子和领导干部综合考核"),
    ]
    page2 = [(72, 800, "评价的重要内容。"), (96, 800 - LEADING, "第二段。")]  # continues, then a new paragraph
    return make_pdf(tmp_path / "plan.pdf", [page1, page2])


def test_pdf_text_is_one_paragraph_per_line_in_reading_order(plan_pdf: Path) -> None:
    doc = read_document(plan_pdf)
    assert doc.encoding == "pdf" and doc.doc_id == "plan"
    assert doc.text.splitlines() == [
        "河北省质量发展规划",
        LINE_1 + "率稳定在96%以上。",
        "各市人民政府要加强质量监管，质量工作考核结果作为政府领导班子和领导干部综合考核评价的重要内容。",
        "第二段。",
    ]
    assert plan_pdf in collect_documents([str(plan_pdf.parent)])


def test_a_pdf_without_text_layer_is_an_error_naming_it(tmp_path: Path) -> None:
    blank = make_pdf(tmp_path / "scan.pdf", [[]])
    with pytest.raises(DocumentError, match=r"scan\.pdf: the PDF has no text layer"):
        read_document(blank)
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    with pytest.raises(DocumentError, match=r"broken\.pdf: not a readable PDF"):
        read_document(tmp_path / "broken.pdf")


def test_planie_extract_reads_pdf_and_reports_a_scanned_one(
    plan_pdf: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_pdf(plan_pdf.parent / "scan.pdf", [[]])
    out = tmp_path / "out"
    assert main(["extract", str(plan_pdf.parent), "--out", str(out), "--model", "rules", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "scan.pdf: the PDF has no text layer" in err and "Traceback" not in err
    records = [json.loads(line) for line in (out / "extractions.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["doc_id"] for r in records] == ["plan"]
    assert {"indicator": "产品质量国家监督抽查合格率", "value": "95%以上", "deadline": "到2015年"}.items() <= (
        records[0]["targets"][0].items()
    )


def test_lines_join_unless_a_paragraph_starts() -> None:
    lines = [
        Line("1", 290, 300, 40),  # a page number: dropped
        Line("新段落", 72, 120, 590),  # after a gap (lines are put in reading order)
        Line("Quality", 72, 520, 700),
        Line("ISO 9001", 72, 520, 682),  # continues a full line: Latin words get a space
        Line("标准达到7", 72, 520, 664),
        Line("5%。", 72, 200, 646),  # a number broken over two lines stays whole
    ]
    laid = lay_out(lines, 12.0)
    assert [ln.text for ln in laid] == ["Quality", "ISO 9001", "标准达到7", "5%。", "新段落"]
    assert paragraphs_of(laid) == ["Quality ISO 9001标准达到75%。", "新段落"]
    assert paragraphs_of([LaidLine("一", False, False, False), LaidLine("二", True, False, False)]) == ["一", "二"]


def test_pdfs_read_by_several_threads_at_once_do_not_crash_the_process(tmp_path: Path) -> None:
    """pdfium is not thread-safe and `planie extract` reads documents in a thread pool: without the lock
    this child process dies of heap corruption (SIGSEGV or SIGABRT) within a few rounds."""
    pdf = make_pdf(tmp_path / "long.pdf", [[(72, 800 - 18 * i, LINE_1) for i in range(40)]] * 5)
    child = f"""
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from pipeline.core.pdf import pdf_lines
data = Path({str(pdf)!r}).read_bytes()
with ThreadPoolExecutor(4) as pool:
    for _ in range(10):
        assert len(set(map(len, pool.map(lambda _: pdf_lines(data, "long.pdf"), range(8))))) == 1
"""
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
