from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from pipeline.core.alignment import (
    Piece,
    PieceTokenizer,
    bio_labels,
    boundary_violations,
    decode_spans,
    document_windows,
    pre_tokenize,
    windows,
)
from pipeline.core.annotations import AnnotatedDoc, Span, write_export
from pipeline.core.documents import to_simplified
from tests.tiny_bert import build_tiny_bert  # noqa: E402

TEXT = "到2015年，主要农产品质量安全抽检合格率稳定在96%以上，新增3.5万家（ＩＳＯ认证），充分发挥作用。"


def _span(sid: str, piece: str, label: str) -> Span:
    start = TEXT.index(piece)
    return Span(sid, start, start + len(piece), label, piece)


SPANS = (
    _span("d", "到2015年", "DEADLINE"),
    _span("i", "主要农产品质量安全抽检合格率", "INDICATOR"),
    _span("v", "96%以上", "VALUE"),
    _span("v2", "3.5万家", "VALUE"),
    _span("x", "发挥", "ACTION"),
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from transformers import AutoTokenizer

    folder = build_tiny_bert(tmp_path_factory.mktemp("tiny"), [TEXT, "產品質量達到"])
    return folder, PieceTokenizer(AutoTokenizer.from_pretrained(str(folder)))


def test_pre_tokenisation_keeps_digit_runs_and_splits_cjk():
    words = [TEXT[a:b] for a, b in pre_tokenize(TEXT)]
    assert words[:5] == ["到", "2015", "年", "，", "主"]
    assert "3.5" in words and "%" in words and "ＩＳＯ" not in words


def test_alignment_round_trips_gold_spans_exactly(tiny):
    _, tok = tiny
    pieces = tok.pieces(TEXT)
    assert boundary_violations(pieces, SPANS) == 0
    labels = bio_labels(pieces, SPANS)
    assert labels[0] == "B-DEADLINE"
    decoded = decode_spans(TEXT, pieces, labels, [1.0] * len(pieces))
    assert [(s.start, s.end, s.label, s.text) for s in decoded] == [(s.start, s.end, s.label, s.text) for s in SPANS]


def test_traditional_input_maps_to_the_same_pieces(tiny):
    _, tok = tiny
    assert to_simplified("產品質量達到") == "产品质量达到"
    assert [p.token_id for p in tok.pieces("產品質量達到")] == [p.token_id for p in tok.pieces("产品质量达到")]
    assert [(p.start, p.end) for p in tok.pieces("產品質量達到")] == [(i, i + 1) for i in range(6)]


def test_windows_cover_everything_with_overlap():
    pieces = [Piece(0, i, i + 1) for i in range(25)]
    ranges = list(windows(pieces, 10, 6))
    assert ranges == [(0, 10), (6, 16), (12, 22), (18, 25)]
    assert list(windows(pieces[:3], 10, 6)) == [(0, 3)]


def test_document_windows_do_not_cross_lines(tiny):
    _, tok = tiny
    doc = AnnotatedDoc("d", TEXT + "\n" + TEXT, SPANS)
    wins = document_windows(doc, tok, max_length=12, stride=6)
    assert all(len(w.pieces) <= 10 for w in wins)
    for w in wins:
        assert "\n" not in doc.text[w.pieces[0].start : w.pieces[-1].end]


def _write_gold(folder, doc_ids):
    folder.mkdir(parents=True, exist_ok=True)
    for doc_id in doc_ids:
        write_export(folder / f"{doc_id}.json", [AnnotatedDoc(doc_id, (TEXT + "\n") * 6, _repeat(SPANS, 6))])


def _repeat(spans, n):
    step = len(TEXT) + 1
    return tuple(
        Span(f"{s.id}{k}", s.start + k * step, s.end + k * step, s.label, s.text) for k in range(n) for s in spans
    )


@pytest.mark.parametrize("crf", [False, True], ids=["softmax", "crf"])
def test_training_lowers_the_loss_and_the_model_predicts_and_merges_windows(tiny, tmp_path, crf):
    from pipeline.extractors.ner import NerModel, crf_weights
    from pipeline.training.ner_training import NerConfig, train_ner

    base, _ = tiny
    _write_gold(tmp_path / "gold", ["a", "b", "c"])
    (tmp_path / "splits.yaml").write_text("train: [a, b]\ntest: [c]\ndev_block: 0.34\n", encoding="utf-8")
    cfg = NerConfig(
        base=str(base),
        annotations=str(tmp_path / "gold"),
        splits=str(tmp_path / "splits.yaml"),
        output_dir=str(tmp_path / "run"),
        max_length=16,
        stride=8,
        epochs=30,
        batch_size=8,
        learning_rate=3e-3,
        warmup_ratio=0.0,
        freeze_embeddings=False,
        early_stopping_patience=100,
        crf=crf,
    )
    model_dir = train_ner(cfg)
    run = json.loads((tmp_path / "run" / "run.json").read_text(encoding="utf-8"))
    losses = [h["loss"] for h in run["log_history"] if "loss" in h]
    assert losses[-1] < losses[0] * 0.7
    assert run["git_commit"] and run["data"]
    assert json.loads((model_dir / "planie.json").read_text(encoding="utf-8"))["section_rules"] is False
    model = NerModel(model_dir)
    weights = crf_weights(model_dir)
    assert (weights is not None) == crf
    if crf:  # the trained transitions are the decoder's (plus the BIO constraint)
        assert float(abs(weights["crf.transitions"]).sum()) > 0
        assert model.decoder.transitions[0, 0] == pytest.approx(float(weights["crf.transitions"][0, 0]))  # O→O
    # the paragraph is longer than one window: predictions come from several merged windows
    (spans,) = model.predict([TEXT])
    assert all(TEXT[s.start : s.end] == s.text for s in spans)
    assert sorted({(s.start, s.end) for s in spans}) == sorted((s.start, s.end) for s in spans)  # no duplicates
    hits = {(s.start, s.end, s.label) for s in spans} & {(s.start, s.end, s.label) for s in SPANS}
    assert len(hits) >= 3

    from safetensors import safe_open

    from pipeline.extractors.ner import export_model

    shipped = export_model(model_dir, tmp_path / "shipped")
    with safe_open(str(shipped / "model.safetensors"), "pt") as f:
        assert {str(f.get_tensor(k).dtype) for k in f.keys()} == {"torch.float16"}
    assert (crf_weights(shipped) is not None) == crf
    (shipped_spans,) = NerModel(shipped).predict([TEXT])
    assert [(s.start, s.end, s.label) for s in shipped_spans] == [(s.start, s.end, s.label) for s in spans]


def test_viterbi_decoder_obeys_bio_and_uses_transitions():
    import numpy as np

    from pipeline.extractors.ner import Decoder

    labels = ["O", "B-VALUE", "I-VALUE", "B-DEADLINE", "I-DEADLINE"]
    # per-piece argmax would be I-VALUE, I-VALUE (an orphan I-) then I-DEADLINE after I-VALUE
    emissions = np.log(np.array([[0.3, 0.2, 0.5, 0, 0], [0.1, 0.1, 0.8, 0, 0], [0.25, 0, 0, 0.35, 0.4]]) + 1e-12)
    assert [labels[i] for i in Decoder(labels)(emissions)] == ["B-VALUE", "I-VALUE", "B-DEADLINE"]
    n = len(labels)
    crf = {
        "crf.transitions": np.zeros((n, n)),
        "crf.start_transitions": np.array([5.0, 0, 0, 0, 0]),  # a strong prior for starting with O
        "crf.end_transitions": np.zeros(n),
    }
    assert [labels[i] for i in Decoder(labels, crf)(emissions)][0] == "O"
    assert Decoder(labels)(np.zeros((0, n))) == []


def test_rule_labels_replace_the_model_spans_of_that_label():
    from pipeline.extractors.span_rules import with_rule_spans

    text = "到2015年，主要产品质量抽检合格率达到90%以上。"
    model = [
        Span("a", 0, 3, "DEADLINE", text[0:3]),  # a truncated deadline
        Span("b", 3, 6, "ACTION", text[3:6]),  # overlaps the rules' 到2015年
        Span("c", 7, 18, "INDICATOR", text[7:18]),
    ]
    out = [(s.text, s.label) for s in with_rule_spans(model, text, {"DEADLINE"})]
    assert out == [("到2015年", "DEADLINE"), ("主要产品质量抽检合格率", "INDICATOR")]


def span_in(text: str, piece: str, label: str, after: int = 0) -> Span:
    """The span of the first ``piece`` in ``text`` at or after ``after``."""
    start = text.index(piece, after)
    return Span("x", start, start + len(piece), label, piece, 0.9)


def test_an_indicator_after_a_clause_opening_scope_word_includes_it():
    from pipeline.extractors.span_rules import tidy_spans

    text = "水平提升，主要产品质量抽检合格率达到90%，不含主要成分率达到5%。"

    spans = [
        span_in(text, "产品质量抽检合格率", "INDICATOR"),
        span_in(text, "90%", "VALUE"),
        span_in(text, "成分率", "INDICATOR"),
        span_in(text, "5%", "VALUE"),
    ]
    out = [s.text for s in tidy_spans(text, spans) if s.label == "INDICATOR"]
    assert out == ["主要产品质量抽检合格率", "成分率"]  # 不含主要 does not open its clause


def test_tidy_spans_trims_punctuation_and_de_at_the_edges_and_drops_one_character_actions():
    from pipeline.extractors.span_rules import tidy_spans

    text = "获得认证的无公害农产品总数量达到3000项、绿色食品1000项，（省质监局、）“浙江制造”品牌100个。"

    spans = [
        span_in(text, "的无公害农产品总数量", "INDICATOR"),
        span_in(text, "3000项", "VALUE"),
        span_in(text, "、绿色食品", "INDICATOR"),
        span_in(text, "1000项，", "VALUE"),
        span_in(text, "省质监局、", "AGENCY"),
        span_in(text, "“浙江制造”品牌", "INDICATOR"),
        span_in(text, "，", "ACTION"),
        span_in(text, "获", "ACTION"),  # a piece of 获得
    ]
    out = [s.text for s in tidy_spans(text, spans)]
    assert out == ["无公害农产品总数量", "3000项", "绿色食品", "1000项", "省质监局", "“浙江制造”品牌"]


def test_tidy_spans_merges_fragments_and_enforces_indicator_rule():
    from pipeline.extractors.span_rules import tidy_spans

    text = "主要农产品抽检合格率达到98%。党中央国务院加强农业。国家重点工程质量达到国际先进水平。"

    spans = [
        span_in(text, "主要", "INDICATOR"),
        span_in(text, "农产品抽检合格率", "INDICATOR"),
        span_in(text, "98%", "VALUE"),
        span_in(text, "党中央", "AGENCY"),
        span_in(text, "国务院", "AGENCY"),
        span_in(text, "农", "INDICATOR", text.index("加强")),
        span_in(text, "国家重点工程质量", "INDICATOR"),
    ]
    out = [(s.text, s.label) for s in tidy_spans(text, spans)]
    assert out == [("主要农产品抽检合格率", "INDICATOR"), ("98%", "VALUE"), ("党中央", "AGENCY"), ("国务院", "AGENCY")]


def test_paragraph_built_gold_trains_only_on_annotated_regions(tiny, tmp_path):
    from pipeline.core.annotations import load_gold
    from pipeline.training.ner_training import NerConfig, region_windows

    _, tok = tiny
    text = TEXT + "\n" + TEXT
    doc = AnnotatedDoc("d", text, SPANS, meta={"regions": [[0, len(TEXT)]]})
    write_export(tmp_path / "d.json", [doc])
    (loaded,) = load_gold(tmp_path / "d.json")
    assert loaded.meta["regions"] == [(0, len(TEXT))]
    wins = region_windows(loaded, tok, NerConfig(max_length=512, stride=400))
    assert len(wins) == 1 and wins[0].pieces[-1].end <= len(TEXT)


# ----------------------------------------------------------------------------- what cannot train (issue 14)


def _guard_cfg(base, tmp_path, **overrides):
    from pipeline.training.ner_training import NerConfig

    options = {
        "base": str(base),
        "annotations": str(tmp_path / "gold"),
        "splits": str(tmp_path / "splits.yaml"),
        "output_dir": str(tmp_path / "run"),
        "max_length": 16,
        "stride": 8,
        "epochs": 2,
        "batch_size": 8,
        "learning_rate": 3e-3,
        "warmup_ratio": 0.0,
        "freeze_embeddings": False,
        "early_stopping_patience": 100,
        "bf16": False,
    }
    return NerConfig(**{**options, **overrides})


def test_training_refuses_gold_without_spans_and_missing_annotations_before_any_step(tiny, tmp_path):
    from pipeline.core.errors import InputError
    from pipeline.training.ner_training import train_ner

    base, _ = tiny
    (tmp_path / "gold").mkdir()
    for doc_id in ("a", "b"):
        write_export(tmp_path / "gold" / f"{doc_id}.json", [AnnotatedDoc(doc_id, (TEXT + "\n") * 6, ())])
    (tmp_path / "splits.yaml").write_text("train: [a]\ntest: [b]\ndev_block: 0.34\n", encoding="utf-8")
    with pytest.raises(InputError, match="no gold spans"):
        train_ner(_guard_cfg(base, tmp_path))
    with pytest.raises(InputError, match="not found"):
        train_ner(_guard_cfg(base, tmp_path, annotations=str(tmp_path / "nowhere")))
    assert not (tmp_path / "run").exists()


def test_training_refuses_a_split_without_dev_windows(tiny, tmp_path):
    from pipeline.core.errors import InputError
    from pipeline.training.ner_training import train_ner

    base, _ = tiny
    (tmp_path / "gold").mkdir()
    write_export(tmp_path / "gold" / "a.json", [AnnotatedDoc("a", TEXT, SPANS)])  # one paragraph: no dev block
    (tmp_path / "splits.yaml").write_text("train: [a]\ndev_block: 0.15\n", encoding="utf-8")
    with pytest.raises(InputError, match="no dev windows"):
        train_ner(_guard_cfg(base, tmp_path))
    assert not (tmp_path / "run").exists()


def test_resume_skips_an_incomplete_checkpoint_and_adds_up_train_seconds(tiny, tmp_path, caplog):
    from pipeline.training.ner_training import train_ner
    from pipeline.training.runs import SECONDS_FILE

    base, _ = tiny
    _write_gold(tmp_path / "gold", ["a", "b"])
    (tmp_path / "splits.yaml").write_text("train: [a]\ntest: [b]\ndev_block: 0.34\n", encoding="utf-8")
    train_ner(_guard_cfg(base, tmp_path))
    ckpts = sorted((tmp_path / "run" / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    first, last = ckpts[0], ckpts[-1]
    weights = last / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # a kill during the save
    before = json.loads((first / SECONDS_FILE).read_text(encoding="utf-8"))["train_seconds"]
    assert before > 0
    with caplog.at_level("WARNING", logger="pipeline.training.runs"):
        train_ner(_guard_cfg(base, tmp_path, epochs=3), resume=True)
    assert f"skipping incomplete checkpoint {last}" in caplog.text
    run = json.loads((tmp_path / "run" / "run.json").read_text(encoding="utf-8"))
    assert run["train_seconds"] > before
    epochs = [h["epoch"] for h in run["log_history"] if "eval_f1" in h]
    assert epochs[-1] == 3


def test_an_indicator_ends_where_its_predicate_or_value_begins():
    from pipeline.extractors.span_rules import indicator_to_its_predicate

    cases = [
        ("餐饮食品抽检合格率达到90%。", "餐饮食品抽检合格", "90%", "餐饮食品抽检合格率"),  # grows to 达到
        ("旅游总收入1100亿元。", "旅游总", "1100亿元", "旅游总收入"),  # grows to the VALUE
        ("全国质量标杆累计18个。", "全国质量标杆累", "18个", "全国质量标杆"),  # ran into 累计
        ("4个结构性指标均实现10%以上增长。", "结构性指标均", "10%", "结构性指标"),
        ("民间投资占全部投资比重达到30%。", "民间投资占全部投资比重", "30%", "民间投资占全部投资比重"),
        ("优良率和达标率分别达到90%。", "优良", "90%", "优良率"),  # up to the coordinator
        ("主要产品合格率、满意度分别达到90%。", "主要产品合格率", "90%", "主要产品合格率"),  # a coordinated indicator
    ]
    for text, indicator, value, expected in cases:
        start = text.index(indicator)
        span = Span("x", start, start + len(indicator), "INDICATOR", indicator)
        assert indicator_to_its_predicate(text, span, [text.index(value)]).text == expected, text


def test_unbalanced_brackets_leave_a_span_and_an_autonomous_region_keeps_its_name():
    from pipeline.extractors.span_rules import tidy_spans

    text = "(责任单位:各市、县(市、区)政府)自治区人民政府、政府质量奖(含提名奖)累计40个。"

    spans = [
        span_in(text, "各市、县(市、区)政府)", "AGENCY"),
        span_in(text, "区人民政府", "AGENCY"),
        span_in(text, "政府质量奖(含提名奖)", "INDICATOR"),
        span_in(text, "40个", "VALUE"),
    ]
    out = [s.text for s in tidy_spans(text, spans)]
    assert out == ["各市、县(市、区)政府", "自治区人民政府", "政府质量奖(含提名奖)", "40个"]
