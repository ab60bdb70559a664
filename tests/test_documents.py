from __future__ import annotations

import pytest

from pipeline.core.documents import (
    DocumentError,
    decode_bytes,
    is_assignment_line,
    is_heading,
    paragraphs,
    read_document,
    sentences,
    task_items,
)

SAMPLE = (
    "各设区市人民政府：\r\n\r\n　　到2015年，合格率达到96%以上。新增　50项！\r\n\t（省质监局牵头，省工商局配合）\r\n"
)


@pytest.mark.parametrize("encoding,prefix", [("utf-8", b""), ("utf-8", b"\xef\xbb\xbf"), ("gb18030", b"")])
def test_read_keeps_text_unchanged(tmp_path, encoding, prefix):
    path = tmp_path / "doc.txt"
    path.write_bytes(prefix + SAMPLE.encode(encoding))
    doc = read_document(path)
    assert doc.text == SAMPLE  # CRLF, full-width spaces and tabs kept; BOM dropped
    assert doc.encoding == encoding
    assert doc.doc_id == "doc"


def test_traditional_characters_read_and_segment(tmp_path):
    text = "到2015年，產品質量合格率達到96%以上。（省質監局牽頭）\n"
    path = tmp_path / "trad.txt"
    path.write_bytes(text.encode("gb18030"))
    doc = read_document(path)
    assert doc.text == text
    assert [s.text for s in sentences(doc.text)] == ["到2015年，產品質量合格率達到96%以上。", "（省質監局牽頭）"]


def test_binary_and_undecodable_files_are_named_in_the_error(tmp_path):
    binary = tmp_path / "image.txt"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    with pytest.raises(DocumentError, match="image.txt"):
        read_document(binary)
    with pytest.raises(DocumentError, match="missing.txt"):
        read_document(tmp_path / "missing.txt")
    with pytest.raises(DocumentError, match="neither UTF-8 nor GB18030"):
        decode_bytes(b"\xff\xfe"[1:] + b"\x81\x20\x81", "bad.txt")


def test_segment_offsets_index_the_original_text():
    paras = paragraphs(SAMPLE)
    assert [p.text for p in paras] == [
        "各设区市人民政府：",
        "到2015年，合格率达到96%以上。新增　50项！",
        "（省质监局牵头，省工商局配合）",
    ]
    for seg in paras + sentences(SAMPLE):
        assert SAMPLE[seg.start : seg.end] == seg.text
        assert seg.text == seg.text.strip()
    assert [s.text for s in sentences(SAMPLE)][1:3] == ["到2015年，合格率达到96%以上。", "新增　50项！"]


def test_sentence_keeps_closing_quote_and_never_crosses_lines():
    text = "他说“要加强质量。”然后\n继续推进。"
    assert [s.text for s in sentences(text)] == ["他说“要加强质量。”", "然后", "继续推进。"]


def test_task_item_groups_paragraph_with_its_assignment_line():
    items = task_items(SAMPLE)
    assert len(items) == 2
    assert SAMPLE[items[1].start : items[1].end].endswith("省工商局配合）")
    assert len(items[1].paragraphs) == 2


@pytest.mark.parametrize(
    "line,expected",
    [
        ("（省发展改革委、省科技厅按职责分工负责）", True),
        ("由省质监局牵头，省工商局配合。", True),
        ("责任单位：省质监局、省工商局", True),
        ("（一）深入开展质量提升行动。加强监督抽查。", False),
        ("到2015年，合格率达到96%。", False),
    ],
)
def test_assignment_lines(line, expected):
    assert is_assignment_line(line) is expected


@pytest.mark.parametrize(
    "line,expected",
    [
        ("一、指导思想和发展目标", True),
        ("（二）发展目标。", True),
        ("到2015年，产品质量发展的具体目标：", True),
        ("1.建设质量诚信体系", True),
        ("（一）深入开展质量提升行动。以车用油为重点，加强监督抽查，组织实施消费品质量提升工程。", False),
        ("农产品和食品质量安全水平稳定提高。", False),
    ],
)
def test_headings(line, expected):
    assert is_heading(line) is expected


def test_docx_and_html_are_read_as_text(tmp_path):
    import zipfile

    body = (
        '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>'
        "<w:p><w:r><w:t>到2015年，</w:t></w:r><w:r><w:t>合格率达到96%。</w:t></w:r></w:p>"
        "<w:p><w:r><w:tab/><w:t>（省质监局牵头）</w:t></w:r></w:p></w:body></w:document>"
    )
    docx = tmp_path / "plan.docx"
    with zipfile.ZipFile(docx, "w") as z:
        z.writestr("word/document.xml", body)
    assert read_document(docx).text == "到2015年，合格率达到96%。\n\t（省质监局牵头）"
    html = tmp_path / "plan.html"
    html.write_text(
        "<html><head><style>p{}</style><script>var x=1;</script></head><body>"
        "<div>首页 &gt; 政策</div><p>到2015年，合格率\n达到96%。</p></body></html>",
        encoding="gb18030",
    )
    assert read_document(html).text == "首页 > 政策\n到2015年，合格率 达到96%。"
    (tmp_path / "broken.docx").write_bytes(b"PK not a zip")
    with pytest.raises(DocumentError, match="broken.docx"):
        read_document(tmp_path / "broken.docx")
