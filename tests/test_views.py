from __future__ import annotations

import csv
import io
import os
import re
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from pipeline.apps.indicators import IndicatorGroup, group_indicators, indicators_csv, normalise_indicator
from pipeline.apps.report import write_views
from pipeline.apps.views import doc_paths, render_document_html, render_index_html, render_summary_html

SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


# ----------------------------------------------------------------------------- helpers


def ent(i: int, start: int, end: int, label: str, text: str, score: float | None = 0.9) -> dict[str, Any]:
    return {"id": f"T{i}", "start": start, "end": end, "label": label, "text": text[start:end], "score": score}


def record(doc_id: str, text: str, entities: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    rec = {
        "doc_id": doc_id,
        "source": f"{doc_id}.txt",
        "text": text,
        "entities": entities or [],
        "relations": [],
        "targets": [],
        "tasks": [],
        "model": {"ner": "test", "relations": "test"},
    }
    rec.update(extra)
    return rec


def target(indicator: str, value: str = "90%", deadline: str | None = "到2020年", sentence: str = "s") -> dict:
    return {"indicator": indicator, "value": value, "deadline": deadline, "sentence": sentence}


class PageParser(HTMLParser):
    """Collects the entity spans and the plain text of the document body."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.spans: list[dict[str, str]] = []
        self.text: list[str] = []
        self._depth = 0  # >0 while inside div.doc-text
        self._current: dict[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if self._depth:
            self._depth += 1
            if tag == "span" and a.get("class", "").split()[:1] == ["ent"]:
                self._current = {**a, "inner": ""}
        elif tag == "div" and a.get("class") == "doc-text":
            self._depth = 1

    def handle_endtag(self, tag: str) -> None:
        if not self._depth:
            return
        self._depth -= 1
        if tag == "span" and self._current is not None:
            self.spans.append(self._current)
            self._current = None

    def handle_data(self, data: str) -> None:
        if self._depth:
            self.text.append(data)
            if self._current is not None:
                self._current["inner"] += data


def parse_page(html: str) -> PageParser:
    parser = PageParser()
    parser.feed(html)
    parser.close()
    return parser


@pytest.fixture(scope="module")
def seed_record() -> dict[str, Any]:
    from pipeline.core.annotations import AnnotatedDoc
    from pipeline.extractors.extract import RulesExtractor
    from pipeline.extractors.records import extraction_record

    path = SEEDS / "000_af21887b59a64702.txt"
    if not path.is_file():
        pytest.skip(f"seed document not found at {path}")
    text = path.read_text(encoding="utf-8")
    extractor = RulesExtractor()
    spans, relations = extractor.predict([text])[0]
    return extraction_record(AnnotatedDoc(path.stem, text, tuple(spans), tuple(relations), str(path)), extractor)


# ----------------------------------------------------------------------------- document page


def test_document_page_escapes_text_attributes_and_tables(schema) -> None:
    text = '<script>alert("x")</script> & 到2015年\n第二行 <b>'
    rec = record(
        '<img src=x onerror="1">',
        text,
        [ent(1, 0, 8, "AGENCY", text), ent(2, text.index("到"), text.index("\n"), "DEADLINE", text)],
        source='a"b<c>.txt',
        targets=[target("<i>率</i>", "90%", None, 'a "quoted" <sentence>')],
        tasks=[{"action": "<u>", "agencies": ["A&B"], "deadline": None, "sentence": "<x>"}],
    )
    page = render_document_html(rec, schema)
    assert "<script>" not in page and "<img" not in page and "<i>" not in page and "<u>" not in page
    assert "&lt;/script&gt; &amp; <span" in page and "A&amp;B" in page and "&lt;b&gt;</div>" in page
    assert "a &quot;quoted&quot; &lt;sentence&gt;" in page
    parsed = parse_page(page)
    assert "".join(parsed.text) == text  # the full text, line break included, nothing lost or added
    assert [s["inner"] for s in parsed.spans] == ["<script>", "到2015年"]


def test_document_page_has_every_entity_with_its_offsets(seed_record, schema) -> None:
    page = render_document_html(seed_record, schema)
    parsed = parse_page(page)
    text = seed_record["text"]
    expected = sorted((e["start"], e["end"], e["label"]) for e in seed_record["entities"])
    found = sorted((int(s["data-start"]), int(s["data-end"]), s["data-label"]) for s in parsed.spans)
    assert len(expected) > 100 and found == expected
    for s in parsed.spans:
        assert s["inner"] == text[int(s["data-start"]) : int(s["data-end"])]
        assert s["class"] == f"ent ent-{s['data-label']}"
    assert "".join(parsed.text) == text
    assert page.count('class="ent ') == len(expected)
    assert "<h2>Targets (" in page and "<h2>Tasks (" in page
    for e in schema.entities:
        assert e.colour in page and f"legend-{e.label}" in page


def test_span_title_shows_label_and_score(schema) -> None:
    text = "达到96%以上"
    page = render_document_html(record("d", text, [ent(1, 2, 7, "VALUE", text, score=0.934)]), schema)
    assert 'title="VALUE · score 0.93"' in page
    page = render_document_html(record("d", text, [ent(1, 2, 7, "VALUE", text, score=None)]), schema)
    assert 'title="VALUE"' in page


def test_overlapping_and_out_of_range_entities_are_reported_not_broken(schema) -> None:
    text = "省质监局负责"
    ents = [ent(1, 0, 4, "AGENCY", text), ent(2, 2, 5, "AGENCY", text), ent(3, 4, 99, "ACTION", text)]
    page = render_document_html(record("d", text, ents), schema)
    assert page.count('class="ent ') == 1
    assert "2 overlapping or out-of-range entities" in page
    assert "".join(parse_page(page).text) == text


def test_unknown_colour_or_label_cannot_inject_css(schema) -> None:
    text = "abc"
    page = render_document_html(record("d", text, [ent(1, 0, 1, "X}body{display:none", text)]), schema)
    assert "display:none}" not in page.split("</style>")[0].split("ent-X")[-1]
    assert 'data-label="X}body{display:none"' in page


def test_large_document_renders_fast(schema) -> None:
    line = "到2015年，主要农产品质量安全抽检合格率稳定在96%以上。\n"
    text = line * (200_000 // len(line))
    ents = []
    for k in range(0, len(text), len(line)):
        ents.append(ent(len(ents), k, k + 6, "DEADLINE", text))
        ents.append(ent(len(ents), k + 7, k + 21, "INDICATOR", text))
        ents.append(ent(len(ents), k + 24, k + 29, "VALUE", text))
    t0 = time.perf_counter()
    page = render_document_html(record("big", text, ents), schema)
    assert time.perf_counter() - t0 < 3.0
    assert page.count('class="ent ') == len(ents)


# ----------------------------------------------------------------------------- index and summary


def test_index_links_and_counts(schema) -> None:
    text = "省质监局负责"
    recs = [
        record("a/b 1", text, [ent(1, 0, 4, "AGENCY", text), ent(2, 4, 6, "ACTION", text)], targets=[target("x")]),
        record("c", text, tasks=[{"action": "负责", "agencies": [], "deadline": None, "sentence": "s"}]),
    ]
    page = render_index_html(recs, schema)
    assert 'href="html/a_b_1.html"' in page and 'href="html/c.html"' in page
    row = re.search(r"<tr>(<td[^>]*><a href=\"html/a_b_1.html\">.*?)</tr>", page).group(1)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row)
    labels = list(schema.entity_labels)
    assert cells[3 + labels.index("AGENCY")] == "1" and cells[3 + labels.index("ACTION")] == "1"
    assert cells[-2:] == ["1", "0"]


def test_doc_paths_are_unique_and_safe() -> None:
    recs = [record(d, "") for d in ["a/b", "a_b", "A_B", "../x", "河北_2012"]]
    assert doc_paths(recs) == [
        "html/a_b.html",
        "html/a_b-2.html",
        "html/A_B-3.html",
        "html/x.html",
        "html/河北_2012.html",
    ]


def test_summary_has_chart_groups_and_links(schema) -> None:
    recs = [
        record("d1", "", targets=[target("制造业产品质量合格率", "93%")]),
        record(
            "d2", "", targets=[target("制造业产品质量合格率（抽检）", "<95%>"), target("万人发明专利拥有量", "5件")]
        ),
    ]
    groups = group_indicators(recs)
    page = render_summary_html(groups, recs, schema)
    assert (
        page.count("<svg") == 1
        and "<script" not in page
        and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    )
    assert page.count("<rect") == 2 and 'href="#g1"' in page and 'id="g1"' in page
    assert "2 docs · 2 targets" in page and "1 doc · 1 target" in page
    assert 'href="html/d2.html"' in page and "&lt;95%&gt;" in page


# ----------------------------------------------------------------------------- normalisation and grouping


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("制造业产品质量合格率", "制造业产品质量合格率"),
        ("制造业产品质量合格率（抽检）", "制造业产品质量合格率"),
        ("制造业产品质量合格率(抽检)", "制造业产品质量合格率"),
        ("全省制造业产品质量合格率", "制造业产品质量合格率"),
        ("产品质量合格率", "产品质量合格率"),  # broader than 制造业: merged only by embeddings
        ("主要农产品质量安全抽检合格率", "主要农产品质量安全抽检合格率"),  # 主要 is kept
        ("重点工业企业优等品率", "重点工业企业优等品率"),  # 重点 is kept
        ("省级服务业标准化示范单位", "省级服务业标准化示范单位"),  # 省级 is kept
        ("全国质量奖", "全国质量奖"),  # 全国 names a national thing, kept
        ("我市 全市食品抽检合格率", "食品抽检合格率"),  # repeated scope words and whitespace
        ("其中，优等品率", "优等品率"),
        ("国家监督抽查合格率（含一级（A类））", "国家监督抽查合格率"),  # nested brackets
        ("国家监督抽查合格率【注】", "国家监督抽查合格率"),
        ("国家监督抽查合格率（抽检", "国家监督抽查合格率"),  # unclosed bracket cuts the rest
        ("“三品一标”产品", "三品一标产品"),
        ("ＧＤＰ增长率％", "GDP增长率%"),  # full width → half width
        ("　农业标准化生产普及率、", "农业标准化生产普及率"),
        ("（抽检）", "(抽检)"),  # nothing left after the rules: the cleaned name itself
        ("全省", "全省"),
    ],
)
def test_normalise_indicator(name: str, key: str) -> None:
    assert normalise_indicator(name) == key


def test_normalise_indicator_traditional_to_simplified() -> None:
    pytest.importorskip("opencc")
    assert normalise_indicator("製造業產品質量合格率（抽檢）") == "制造业产品质量合格率"


def three_docs() -> list[dict[str, Any]]:
    return [
        record("d1", "", targets=[target("制造业产品质量合格率", "93%", "到2015年")]),
        record("d2", "", targets=[target("制造业产品质量合格率（抽检）", "95%"), target("产品质量合格率", "90%")]),
        record(
            "d3", "", targets=[target("全省制造业产品质量合格率", "96%", None), target("万人发明专利拥有量", "5件")]
        ),
    ]


def test_group_indicators_by_string_rules() -> None:
    groups = group_indicators(three_docs())
    assert [g.key for g in groups] == ["制造业产品质量合格率", "万人发明专利拥有量", "产品质量合格率"]
    first = groups[0]
    assert isinstance(first, IndicatorGroup)
    assert first.names == ("制造业产品质量合格率", "制造业产品质量合格率（抽检）", "全省制造业产品质量合格率")
    assert first.documents == ("d1", "d2", "d3")
    assert [(r.doc_id, r.value, r.deadline) for r in first.rows] == [
        ("d1", "93%", "到2015年"),
        ("d2", "95%", "到2020年"),
        ("d3", "96%", None),
    ]


def fake_embed(vectors: dict[str, tuple[float, ...]]):
    import numpy as np

    def embed(names: list[str]) -> np.ndarray:
        v = np.array([vectors[n] for n in names], dtype=float)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    return embed


def test_group_indicators_merges_by_embedding_above_threshold() -> None:
    pytest.importorskip("numpy")
    embed = fake_embed(
        {
            "制造业产品质量合格率": (1.0, 0.1, 0.0),
            "产品质量合格率": (1.0, 0.2, 0.0),
            "万人发明专利拥有量": (0.0, 0.0, 1.0),
        }
    )
    groups = group_indicators(three_docs(), embed=embed, threshold=0.9)
    assert [g.key for g in groups] == ["制造业产品质量合格率", "万人发明专利拥有量"]
    assert "产品质量合格率" in groups[0].names
    assert [r.doc_id for r in groups[0].rows] == ["d1", "d2", "d2", "d3"]  # document order kept
    assert len(group_indicators(three_docs(), embed=embed, threshold=0.9999)) == 3


def test_embedding_merge_does_not_chain() -> None:
    pytest.importorskip("numpy")
    # A~B and B~C are above 0.9, A~C is not: B joins the larger leader A; C is compared with the leader
    # only, so it stays apart (single linkage would chain A, B and C into one group).
    embed = fake_embed({"甲率": (1.0, 0.0), "乙率": (0.940, 0.342), "丙率": (0.766, 0.643)})
    recs = [
        record("d1", "", targets=[target("甲率"), target("乙率"), target("乙率")]),
        record("d2", "", targets=[target("甲率"), target("丙率")]),
    ]
    groups = group_indicators(recs, embed=embed, threshold=0.9)
    assert [(g.key, g.names) for g in groups] == [("甲率", ("甲率", "乙率")), ("丙率", ("丙率",))]


def test_embedding_with_wrong_shape_is_an_error() -> None:
    np = pytest.importorskip("numpy")
    with pytest.raises(ValueError, match="embed returned shape"):
        group_indicators(three_docs(), embed=lambda names: np.ones((1, 3)))


# ----------------------------------------------------------------------------- CSV and writing


def test_indicators_csv_round_trips() -> None:
    pytest.importorskip("numpy")
    recs = three_docs()
    recs[1]["targets"][0]["sentence"] = '含逗号,和"引号"\n换行'
    embed = fake_embed(
        {
            "制造业产品质量合格率": (1.0, 0.1, 0.0),
            "产品质量合格率": (1.0, 0.2, 0.0),
            "万人发明专利拥有量": (0.0, 0.0, 1.0),
        }
    )
    rows = list(csv.DictReader(io.StringIO(indicators_csv(group_indicators(recs, embed=embed)))))
    assert list(rows[0]) == ["indicator_group", "indicator", "match", "doc_id", "value", "deadline", "sentence"]
    assert len(rows) == 5
    assert rows[1]["sentence"] == '含逗号,和"引号"\n换行'
    matches = [r["match"] for r in rows if r["indicator_group"] == "制造业产品质量合格率"]
    assert matches == ["string", "string", "embedding", "string"]  # d1, d2 (抽检), d2 产品质量合格率, d3
    assert rows[3]["deadline"] == ""  # None → empty cell


def test_write_views_writes_every_file(tmp_path: Path, schema) -> None:
    recs = three_docs()
    out = tmp_path / "not" / "yet" / "there"
    paths = write_views(out, recs, schema)
    assert set(paths) == {"targets.csv", "tasks.csv", "index.html", "summary.html", "indicators.csv", "html/"}
    assert sorted(p.name for p in paths["html/"].iterdir()) == ["d1.html", "d2.html", "d3.html"]
    for name, path in paths.items():
        assert path == out / name and path.exists() and (path.is_dir() or path.stat().st_size > 0)
    assert not list(tmp_path.rglob("*.tmp"))
    assert "制造业产品质量合格率" in (out / "indicators.csv").read_text(encoding="utf-8")


# ----------------------------------------------------------------------------- real browser


def require_chromium() -> None:
    if CHROMIUM.exists():
        return
    if os.environ.get("PLANIE_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{CHROMIUM} missing and PLANIE_REQUIRE_BROWSER=1 (apt-get install -y chromium)")
    pytest.skip(f"{CHROMIUM} not installed (apt-get install -y chromium)")


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / "profile"
    cmd = [str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=True)


def test_browser_shows_every_entity(tmp_path: Path, seed_record, schema) -> None:
    require_chromium()
    paths = write_views(tmp_path / "out", [seed_record], schema)
    page = paths["html/"] / "000_af21887b59a64702.html"
    dom = chromium(tmp_path, "--dump-dom", page.as_uri()).stdout
    assert dom.count('class="ent ') == len(seed_record["entities"])
    offsets = sorted((int(a), int(b)) for a, b in re.findall(r'data-start="(\d+)" data-end="(\d+)"', dom))
    assert offsets == sorted((e["start"], e["end"]) for e in seed_record["entities"])
    png = tmp_path / "page.png"
    chromium(tmp_path, "--window-size=1280,1000", f"--screenshot={png}", page.as_uri())
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
