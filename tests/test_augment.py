"""Place-replacement augmentation: names replaced by names of the same level, offsets moved with the
text, the dev region and names that cross a span boundary left alone."""

from __future__ import annotations

import random

from pipeline.core.annotations import AnnotatedDoc, Span
from pipeline.training.augment import Gazetteer, augment_places, load_gazetteer, replace_places

SMALL = Gazetteer(
    {
        "province": ("河北省", "广西壮族自治区", "浙江省"),
        "prefecture": ("石家庄市", "延边朝鲜族自治州"),
        "county": ("正定县", "长安区"),
    }
)


def doc_with(text: str, spans: list[tuple[str, str]], region: tuple[int, int] | None = None) -> AnnotatedDoc:
    out, pos = [], 0
    for i, (label, piece) in enumerate(spans):
        start = text.index(piece, pos)
        out.append(Span(f"T{i}", start, start + len(piece), label, piece))
        pos = start + len(piece)
    meta = {"region": region} if region else {}
    return AnnotatedDoc("d", text, tuple(out), (), "", meta)


def test_names_are_replaced_by_names_of_the_same_level_and_spans_move_with_them() -> None:
    doc = doc_with(
        "河北省市场监督管理局牵头，石家庄市人民政府负责，到2025年河北省质量合格率达到95%。",
        [("AGENCY", "河北省市场监督管理局"), ("AGENCY", "石家庄市人民政府"), ("VALUE", "95%")],
    )
    copy, in_agency = replace_places(doc, SMALL, random.Random(3))
    assert in_agency == 2
    first, second, value = copy.spans
    assert first.text.endswith("市场监督管理局") and first.text[:-7] in ("广西壮族自治区", "浙江省")
    assert second.text == "延边朝鲜族自治州人民政府"
    assert value.text == "95%"
    assert all(copy.text[s.start : s.end] == s.text for s in copy.spans)
    assert copy.text.count(first.text[:-7]) == 2  # one new name per old name, in the whole document
    for a, b in copy.meta["replaced_in_agency"]:
        assert copy.text[a:b] in SMALL.level_of


def test_the_dev_region_and_names_across_a_span_boundary_stay() -> None:
    text = "河北省人民政府。正定县人民政府负责。石家庄市政府。"
    cut = text.index("石家庄")
    doc = doc_with(text, [("AGENCY", "省人民政府"), ("AGENCY", "正定县人民政府")], region=(0, cut))
    copy, in_agency = replace_places(doc, SMALL, random.Random(0))
    assert copy.text.startswith("河北省人民政府")  # 河北省 crosses the start of the span 省人民政府
    assert copy.text.endswith("石家庄市政府。")  # after the training region
    assert copy.spans[1].text == "长安区人民政府" and in_agency == 1
    lo, hi = copy.meta["region"]
    assert copy.text[hi:] == "石家庄市政府。" and lo == 0


def test_only_documents_with_a_place_in_an_agency_are_copied() -> None:
    with_place = doc_with("河北省人民政府负责。", [("AGENCY", "河北省人民政府")])
    without = doc_with("省人民政府负责。", [("AGENCY", "省人民政府")])
    copies = augment_places([with_place, without], copies=2, seed=1)
    assert len(copies) == 2 and all("河北省" not in c.text for c in copies)


def test_the_bundled_gazetteer_has_the_mainland_divisions() -> None:
    gaz = load_gazetteer()
    assert len(gaz.names["province"]) == 31
    assert "广西壮族自治区" in gaz.names["province"] and "台湾省" not in gaz.level_of
    assert 300 <= len(gaz.names["prefecture"]) <= 400 and len(gaz.names["county"]) > 2000
    assert all(len(n) >= 3 for n in gaz.level_of)
