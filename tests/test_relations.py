"""Relation candidates, typed markers, the learned linkers (tiny models), inheritance and scoring."""

from __future__ import annotations

import pytest

from pipeline.core.annotations import AnnotatedDoc, Relation, Span, write_export
from pipeline.extractors.records import build_targets, build_tasks
from pipeline.extractors.relations import candidate_pairs, candidate_recall, inherit_deadlines

GOALS = "到2015年，产品质量发展的具体目标：\n农业标准化生产普及率超过50%，抽检合格率稳定在96%以上。新增名牌30个。"
TASK = (
    "（一）深入开展质量提升行动。加强监督抽查。\n"
    "（省发展改革委、省科技厅按职责分工负责）\n"
    "（二）推进标准化。由省质监局牵头。"
)


def _span(text: str, sid: str, piece: str, label: str, nth: int = 0) -> Span:
    start = -1
    for _ in range(nth + 1):
        start = text.index(piece, start + 1)
    return Span(sid, start, start + len(piece), label, piece)


GOAL_SPANS = (
    _span(GOALS, "d", "到2015年", "DEADLINE"),
    _span(GOALS, "i1", "农业标准化生产普及率", "INDICATOR"),
    _span(GOALS, "v1", "50%", "VALUE"),
    _span(GOALS, "i2", "抽检合格率", "INDICATOR"),
    _span(GOALS, "v2", "96%以上", "VALUE"),
    _span(GOALS, "i3", "名牌", "INDICATOR"),
    _span(GOALS, "v3", "30个", "VALUE"),
)
TASK_SPANS = (
    _span(TASK, "x1", "开展", "ACTION"),
    _span(TASK, "x2", "加强", "ACTION"),
    _span(TASK, "a1", "省发展改革委", "AGENCY"),
    _span(TASK, "a2", "省科技厅", "AGENCY"),
    _span(TASK, "x3", "推进", "ACTION"),
    _span(TASK, "a3", "省质监局", "AGENCY"),
)


def _pairs(text: str, spans, label: str, inherit: bool = False) -> set[tuple[str, str]]:
    return {(c.head.id, c.tail.id) for c in candidate_pairs(text, spans, inherit) if c.label == label}


def test_value_candidates_stay_in_their_sentence():
    pairs = _pairs(GOALS, GOAL_SPANS, "value_of")
    assert pairs == {("v1", "i1"), ("v1", "i2"), ("v2", "i1"), ("v2", "i2"), ("v3", "i3")}


def test_deadline_candidates_own_sentence_or_whole_scope():
    assert _pairs(GOALS, GOAL_SPANS, "deadline_of") == set()  # the deadline is in the heading line
    assert _pairs(GOALS, GOAL_SPANS, "deadline_of", inherit=True) == {("d", "v1"), ("d", "v2"), ("d", "v3")}
    text = "2012年6月底前完成清理，建立制度。"
    spans = (
        _span(text, "d", "2012年6月底前", "DEADLINE"),
        _span(text, "x", "完成", "ACTION"),
        _span(text, "y", "建立", "ACTION"),
    )
    assert _pairs(text, spans, "deadline_of") == {("d", "x"), ("d", "y")}


def test_responsibility_candidates_stay_in_the_task_item():
    pairs = _pairs(TASK, TASK_SPANS, "responsible_for")
    # item 1 = paragraph + its assignment line; item 2 is separate
    assert pairs == {("a1", "x1"), ("a1", "x2"), ("a2", "x1"), ("a2", "x2"), ("a3", "x3")}
    window = next(c.window for c in candidate_pairs(TASK, TASK_SPANS) if c.head.id == "a1")
    assert TASK[window[0] : window[1]].startswith("（一）") and TASK[window[0] : window[1]].endswith("负责）")


def test_inheritance_step_and_records():
    rels = [Relation("v1", "i1", "value_of"), Relation("v2", "i2", "value_of"), Relation("v3", "i3", "value_of")]
    inherited = inherit_deadlines(GOALS, GOAL_SPANS, rels)
    assert {(r.head, r.tail) for r in inherited if r.label == "deadline_of"} == {("d", "v1"), ("d", "v2"), ("d", "v3")}
    # a VALUE that already has a deadline keeps it; a new heading ends the scope
    text = "到2015年，目标：\n合格率达到90%。\n二、主要任务\n覆盖率达到80%。"
    spans = (
        _span(text, "d", "到2015年", "DEADLINE"),
        _span(text, "v", "90%", "VALUE"),
        _span(text, "w", "80%", "VALUE"),
    )
    assert {(r.head, r.tail) for r in inherit_deadlines(text, spans, [])} == {("d", "v")}
    doc = AnnotatedDoc("g", GOALS, GOAL_SPANS, tuple(inherited))
    targets = build_targets(doc)
    assert [(t.indicator, t.value, t.deadline) for t in targets] == [
        ("农业标准化生产普及率", "50%", "到2015年"),
        ("抽检合格率", "96%以上", "到2015年"),
        ("名牌", "30个", "到2015年"),
    ]
    without = build_targets(AnnotatedDoc("g", GOALS, GOAL_SPANS, tuple(rels)))
    assert all(t.deadline is None for t in without)
    tasks = build_tasks(
        AnnotatedDoc(
            "t", TASK, TASK_SPANS, (Relation("a1", "x1", "responsible_for"), Relation("a2", "x1", "responsible_for"))
        )
    )
    assert tasks[0].action == "开展" and tasks[0].agencies == ("省发展改革委", "省科技厅")


def test_candidate_recall_and_relation_scores_on_hand_made_cases():
    from pipeline.evaluation.relation_reports import relation_scores

    gold = AnnotatedDoc(
        "g",
        GOALS,
        GOAL_SPANS,
        (Relation("v1", "i1", "value_of"), Relation("v2", "i2", "value_of"), Relation("d", "v1", "deadline_of")),
    )
    rec = candidate_recall([gold])
    assert rec["value_of"]["recall"] == 1.0 and rec["deadline_of"]["recall"] == 0.0
    assert rec["micro"]["covered"] == 2 and rec["micro"]["gold"] == 3
    assert candidate_recall([gold], inherit=True)["micro"]["recall"] == 1.0
    pred = AnnotatedDoc(
        "g",
        GOALS,
        GOAL_SPANS,
        (Relation("v1", "i1", "value_of"), Relation("v2", "i1", "value_of"), Relation("d", "v1", "deadline_of")),
    )
    m = relation_scores([gold], [pred])
    assert (m["relations"]["value_of"]["tp"], m["relations"]["value_of"]["fp"], m["relations"]["value_of"]["fn"]) == (
        1,
        1,
        1,
    )
    assert m["relations"]["micro"]["precision"] == pytest.approx(2 / 3, abs=1e-4)
    assert m["relations"]["deadline_of"]["f1"] == 1.0
    # triples: (i1, v1, d) right; gold (i2, v2, none) missed; predicted (i1, v2, none) spurious
    assert (m["targets"]["tp"], m["targets"]["fp"], m["targets"]["fn"]) == (1, 1, 1)


def test_decode_keeps_one_pair_per_functional_slot():
    from pipeline.extractors.relation_model import decode

    cands = candidate_pairs(TASK, TASK_SPANS)
    probs = [0.9 if (c.head.id, c.tail.id) in {("a1", "x1"), ("a2", "x1")} else 0.6 for c in cands]
    rels = {(r.head, r.tail) for r in decode(cands, probs, 0.5)}
    assert rels == {("a1", "x1"), ("a2", "x1"), ("a3", "x3")}  # one ACTION per AGENCY, the best one


# ------------------------------------------------------------------ tiny models (torch needed)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    pytest.importorskip("torch")
    from transformers import AutoTokenizer

    from pipeline.core.alignment import PieceTokenizer
    from tests.tiny_bert import build_tiny_bert

    folder = build_tiny_bert(tmp_path_factory.mktemp("tiny"), [GOALS, TASK])
    return folder, PieceTokenizer(AutoTokenizer.from_pretrained(str(folder)))


def test_marker_insertion_follows_offsets(tiny):
    from pipeline.extractors.relation_inputs import MARKERS, insert_markers, marked_input, trim

    _, tok = tiny
    ids_of = {m: 1000 + i for i, m in enumerate(MARKERS)}
    name = {v: k for k, v in ids_of.items()}
    vocab = {v: k for k, v in tok.tokenizer.get_vocab().items()}
    c = next(c for c in candidate_pairs(GOALS, GOAL_SPANS) if (c.head.id, c.tail.id) == ("v2", "i2"))
    m = marked_input(GOALS, c, tok, ids_of, 64)
    text = "".join(name.get(i) or vocab[i].removeprefix("##") for i in m.ids)
    assert "[T:INDICATOR]抽检合格率[/T]稳定在[H:VALUE]96%以上[/H]。" in text
    assert text.startswith("[CLS]农业") and text.endswith("[SEP]")
    assert m.ids[m.head_pos] == ids_of["[H:VALUE]"] and m.ids[m.tail_pos] == ids_of["[T:INDICATOR]"]
    ids, h, t = insert_markers(tok.pieces(GOALS), c.head, c.tail, ids_of)
    for budget in (40, 12):  # one window around both, then half around each
        cut, h2, t2 = trim(ids, h, t, budget)
        assert len(cut) <= budget and cut[h2] == ids[h] and cut[t2] == ids[t]


def _write_gold(folder, tmp_path):
    docs = []
    for k in range(3):
        text = f"{GOALS}\n{TASK}\n" * 3
        off = len(GOALS) + 1
        spans = [
            Span(f"g{r}{s.id}", s.start + r * (off + len(TASK) + 1), s.end + r * (off + len(TASK) + 1), s.label, s.text)
            for r in range(3)
            for s in GOAL_SPANS
        ]
        spans += [
            Span(
                f"t{r}{s.id}",
                s.start + off + r * (off + len(TASK) + 1),
                s.end + off + r * (off + len(TASK) + 1),
                s.label,
                s.text,
            )
            for r in range(3)
            for s in TASK_SPANS
        ]
        rels = [Relation(f"g{r}v1", f"g{r}i1", "value_of") for r in range(3)]
        rels += [Relation(f"t{r}a1", f"t{r}x1", "responsible_for") for r in range(3)]
        docs.append(AnnotatedDoc(f"d{k}", text, tuple(sorted(spans, key=lambda s: s.start)), tuple(rels)))
    folder.mkdir()
    for d in docs:
        write_export(folder / f"{d.doc_id}.json", [d])
    (tmp_path / "splits.yaml").write_text("train: [d0, d1]\ntest: [d2]\ndev_block: 0.34\n", encoding="utf-8")
    return docs


@pytest.mark.parametrize("variant", ["biaffine", "marker"])
def test_tiny_relation_models_train_save_and_link(tiny, tmp_path, variant):
    import json

    from pipeline.extractors.relation_model import RelationModel
    from pipeline.training.relation_training import RelConfig, train_relations

    base, _ = tiny
    docs = _write_gold(tmp_path / "gold", tmp_path)
    cfg = RelConfig(
        variant=variant,
        base=str(base),
        annotations=str(tmp_path / "gold"),
        splits=str(tmp_path / "splits.yaml"),
        output_dir=str(tmp_path / "run"),
        num_layers=1,
        max_length=32,
        stride=24,
        epochs=2,
        batch_size=8,
        bf16=False,
        early_stopping_patience=5,
    )
    model_dir = train_relations(cfg)
    run = json.loads((tmp_path / "run" / "run.json").read_text(encoding="utf-8"))
    assert run["examples"]["train"] > 0 and any("eval_f1" in h for h in run["log_history"])
    model = RelationModel(model_dir)
    d = docs[2]
    cands, probs = model.probabilities(d.text, d.spans)
    assert len(cands) == len(probs) == len(candidate_pairs(d.text, d.spans)) and all(0 <= p <= 1 for p in probs)
    ids = {s.id for s in d.spans}
    assert all(r.head in ids and r.tail in ids for r in model.link(d.text, d.spans))
    if variant == "biaffine":
        _extractor_uses_the_relation_model(base, model_dir, tmp_path, d.text)


def _extractor_uses_the_relation_model(base, rel_dir, tmp_path, text):
    """A (random) tiny NER folder: ModelExtractor links with the relation model given, with
    MODEL/relations/ when present, and with the rules linker otherwise or on 'rules'."""
    import json
    import shutil

    from transformers import AutoTokenizer, BertForTokenClassification

    from pipeline.core.schema import load_schema
    from pipeline.extractors.extract import ModelExtractor, load_extractor

    labels = load_schema().bio_labels()
    ner_dir = tmp_path / "ner"
    model = BertForTokenClassification.from_pretrained(
        str(base),
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={k: i for i, k in enumerate(labels)},
    )
    model.save_pretrained(str(ner_dir))
    AutoTokenizer.from_pretrained(str(base)).save_pretrained(str(ner_dir))
    (ner_dir / "planie.json").write_text(json.dumps({"labels": labels, "max_length": 32, "stride": 24}))
    assert ModelExtractor(ner_dir).relations_id == "rules-linker"
    learned = load_extractor(str(ner_dir), relations=str(rel_dir))
    assert learned.relations_id.startswith("biaffine:")
    ((spans, rels),) = learned.predict([text])
    ids = {s.id for s in spans}
    assert all(r.head in ids and r.tail in ids for r in rels)
    shutil.copytree(rel_dir, ner_dir / "relations")
    assert ModelExtractor(ner_dir).relations_id.startswith("biaffine:")
    assert ModelExtractor(ner_dir, relations="rules").relations_id == "rules-linker"
    with pytest.raises(ValueError, match="neither 'rules' nor a relation model folder"):
        ModelExtractor(ner_dir, relations=str(tmp_path / "missing"))


def test_relation_cross_validation_uses_the_fold_driver(tiny, tmp_path):
    import json

    from pipeline.evaluation.crossval import CvPlan, relation_cv
    from pipeline.training.relation_training import RelConfig

    base, _ = tiny
    _write_gold(tmp_path / "gold", tmp_path)
    cfg = RelConfig(
        base=str(base),
        annotations=str(tmp_path / "gold"),
        splits=str(tmp_path / "splits.yaml"),
        num_layers=1,
        max_length=32,
        stride=24,
        epochs=1,
        batch_size=8,
        bf16=False,
    )
    out = tmp_path / "cv"
    summary = relation_cv(cfg, out, CvPlan(group="doc", only=("fold1",)))  # leave-one-document-out, one fold here
    folds = json.loads((out / "folds.json").read_text(encoding="utf-8"))
    assert folds["k"] == 3 and sorted(f["test"] for f in folds["folds"]) == [["d0"], ["d1"], ["d2"]]
    assert [f["name"] for f in summary["folds"]] == ["fold1"] and summary["systems"] == ["biaffine", "rules"]
    pooled, fold = summary["pooled"]["rules"]["relations"]["micro"], summary["folds"][0]["scores"]["rules"]
    assert pooled["tp"] == fold["relations"]["micro"]["tp"] > 0
    assert "targets" in summary["pooled"]["biaffine"]
