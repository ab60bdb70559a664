"""The Label Studio round trip against a real server (label-studio 1.23 in .ls-venv/).

One server data dir is migrated per session (~40 s) and copied per test (each test starts its own
server on a free loopback port in ~5 s, with an independent database). Without .ls-venv the
server tests are skipped, unless PLANIE_REQUIRE_LS=1 (CI), which makes them fail instead.
Install the server with scripts/ls_install.sh.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import sys
import threading
import urllib.request
from pathlib import Path

import pytest
import yaml

from pipeline.apps.labelstudio.backend import PredictionService, make_backend
from pipeline.apps.labelstudio.client import (
    LabelStudioClient,
    LabelStudioError,
    LSAuthError,
    LSConnectionError,
    get_personal_token,
)
from pipeline.apps.labelstudio.pull import build_pulled_docs
from pipeline.apps.labelstudio.push import prediction_items
from pipeline.apps.labelstudio.server import PortTakenError, Server, ensure_secret_key, free_port, start_server
from pipeline.cli.main import main
from pipeline.core.annotations import AnnotatedDoc, load_gold, load_gold_dir
from pipeline.core.documents import read_document
from pipeline.core.validate import validate_export

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared"
SEED = SHARED / "seeds" / "003_23a5a19fe3ee302e.txt"
SEED_2 = SHARED / "seeds" / "004_b1c33d9a6f6e6fde.txt"
LS_BIN = REPO / ".ls-venv" / "bin" / "label-studio"
USER, PASSWORD = "admin@localhost", "planie-test-password"
PROJECT = "planie round trip"


def _unavailable(reason: str) -> None:
    if os.environ.get("PLANIE_REQUIRE_LS") == "1":
        pytest.fail(f"{reason} (PLANIE_REQUIRE_LS=1: the Label Studio tests must run)")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _sdk_installed(request) -> None:
    """Every test but the pure ones talks through label-studio-sdk (the `annotate` extra)."""
    if "no_sdk" not in request.keywords and importlib.util.find_spec("label_studio_sdk") is None:
        _unavailable('label-studio-sdk not installed: pip install -e ".[annotate]"')


def _start(data: Path, **kwargs) -> Server:
    """start_server on a free port; another test run on the machine may grab it first: retry."""
    for attempt in range(3):
        try:
            return start_server(data, free_port(), executable=LS_BIN, **kwargs)
        except PortTakenError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def run_ls(*argv: str) -> int:
    """`planie ls ...` through the command line's one entry (errors become exit codes there)."""
    return main(["ls", *map(str, argv)])


@pytest.fixture(scope="session")
def seed() -> Path:
    if not SEED.is_file():
        pytest.skip(f"seed document not found at {SEED}")
    return SEED


@pytest.fixture(scope="session")
def ls_template(tmp_path_factory) -> tuple[Path, str]:
    """A migrated data dir with the admin user and its personal access token (made once)."""
    if not LS_BIN.exists():
        _unavailable(f"Label Studio server not installed at {LS_BIN}: run scripts/ls_install.sh")
    data = tmp_path_factory.mktemp("ls-template") / "data"
    server = _start(data, user=USER, password=PASSWORD, timeout=400)
    try:
        token = get_personal_token(server.url, USER, PASSWORD)
    finally:
        server.stop()
    (data / "server.log").unlink(missing_ok=True)
    return data, token


@pytest.fixture
def ls(ls_template, tmp_path, monkeypatch):
    """A server of its own on a copy of the template; LABEL_STUDIO_URL/_API_KEY point at it."""
    template, token = ls_template
    data = tmp_path / "ls-data"
    shutil.copytree(template, data)
    server = _start(data, user="", password="", timeout=180)
    monkeypatch.setenv("LABEL_STUDIO_URL", server.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", token)
    try:
        yield server, LabelStudioClient(server.url, token)
    finally:
        server.stop()


def _project_tasks(client: LabelStudioClient, title: str = PROJECT) -> list[dict]:
    project = client.find_project(title)
    assert project is not None
    return client.list_tasks(project["id"])


def _span(text: str, before: str, piece: str, label: str, sid: str) -> dict:
    """A result item for ``piece`` right after ``before`` in ``text`` (as the annotator UI sends it)."""
    start = text.index(before + piece) + len(before)
    assert text[start : start + len(piece)] == piece
    return {
        "id": sid,
        "from_name": "label",
        "to_name": "text",
        "type": "labels",
        "origin": "manual",
        "value": {"start": start, "end": start + len(piece), "text": piece, "labels": [label]},
    }


def test_round_trip_push_annotate_pull(ls, seed, tmp_path, schema, capsys):
    server, client = ls
    text = read_document(seed).text
    assert run_ls("push", seed, "--project", PROJECT, "--model", "rules") == 0

    (task,) = _project_tasks(client)
    assert task["data"]["text"] == text and task["data"]["doc_id"] == seed.stem
    assert client.find_project(PROJECT)["model_version"] == "rules+rules-linker"  # what the UI pre-annotates with
    (pred,) = task["predictions"]
    assert pred["model_version"] == "rules+rules-linker"
    kinds = {item["type"] for item in pred["result"]}
    assert kinds == {"labels", "relation"}
    for item in pred["result"]:  # predictions carry file offsets
        if item["type"] == "labels":
            v = item["value"]
            assert text[v["start"] : v["end"]] == v["text"]

    # An annotator corrects the pre-annotation: spans right after full-width punctuation
    # (，。“（ and the full-width spaces that indent paragraphs) and one relation.
    result = [
        _span(text, "　　由", "省质监局", "AGENCY", "Kx7_pQ2mZa"),
        _span(text, "省质监局牵头，", "省发展改革委", "AGENCY", "b3Rt9wLq0E"),
        _span(text, "着力抓好宏观质量综合管理。", "完善宏观质量工作体制机制", "ACTION", "Jd8-nV4cYs"),
        _span(text, "漯河三市创建“", "全国质量强市示范城市", "INDICATOR", "m2Hq7XeR5t"),
        _span(text, "质量发展纲要（", "2011-2020年", "DEADLINE", "Q9zs1Lk_Wf"),
        {
            "from_id": "Kx7_pQ2mZa",
            "to_id": "Jd8-nV4cYs",
            "type": "relation",
            "direction": "right",
            "labels": ["responsible_for"],
        },
    ]
    annotation = client.create_annotation(task["id"], result, lead_time=42.0, parent_prediction=pred["id"])

    out = tmp_path / "annotations"
    assert run_ls("pull", "--project", PROJECT, "--out", out, "--docs", seed.parent) == 0
    target = out / f"{seed.stem}.json"
    assert validate_export(target, schema, {seed.stem: seed}) == []
    (doc,) = load_gold(target)
    assert doc.doc_id == seed.stem and doc.text == text
    expected = sorted(
        (i["id"], i["value"]["start"], i["value"]["end"], i["value"]["labels"][0], i["value"]["text"])
        for i in result
        if i["type"] == "labels"
    )
    assert sorted((s.id, s.start, s.end, s.label, s.text) for s in doc.spans) == expected
    assert [(r.head, r.tail, r.label) for r in doc.relations] == [("Kx7_pQ2mZa", "Jd8-nV4cYs", "responsible_for")]
    assert all(text[s.start : s.end] == s.text for s in doc.spans)

    # Pulling again changes nothing; a changed annotation is a conflict until --force.
    before = target.read_bytes()
    capsys.readouterr()
    assert run_ls("pull", "--project", PROJECT, "--out", out) == 0
    assert "1 unchanged" in capsys.readouterr().out and target.read_bytes() == before
    client.update_annotation(annotation["id"], result[:2])
    assert run_ls("pull", "--project", PROJECT, "--out", out) == 1
    assert "not overwritten" in capsys.readouterr().out and target.read_bytes() == before
    assert run_ls("pull", "--project", PROJECT, "--out", out, "--force") == 0
    (doc,) = load_gold(target)
    assert len(doc.spans) == 2 and doc.relations == ()

    # An invalid annotation (white space at a span edge) is reported by task, annotation and result id.
    bad = _span(text, "　　", "由省质监局牵头", "AGENCY", "e1")
    bad["value"]["start"] -= 1
    bad["value"]["text"] = text[bad["value"]["start"] : bad["value"]["end"]]
    client.update_annotation(annotation["id"], [bad])
    before = target.read_bytes()
    capsys.readouterr()
    assert run_ls("pull", "--project", PROJECT, "--out", out, "--force") == 1
    report = capsys.readouterr().out
    assert f"annotation {annotation['id']}" in report and "result id=e1" in report and "white space" in report
    assert target.read_bytes() == before


def test_push_twice_does_not_duplicate_tasks(ls, seed, tmp_path, capsys):
    _, client = ls
    docs = [seed, SEED_2] if SEED_2.is_file() else [seed]
    assert run_ls("push", *docs, "--project", PROJECT) == 0
    first = _project_tasks(client)
    assert run_ls("push", *docs, seed, "--project", PROJECT) == 0  # seed given twice, too
    assert f"0 created, 0 updated, {len(docs)} unchanged; 0 prediction(s) added" in capsys.readouterr().out
    second = _project_tasks(client)
    assert sorted(t["id"] for t in second) == sorted(t["id"] for t in first)
    assert all(len(t["predictions"]) == 1 for t in second)

    # A changed schema updates the project's labeling config in place.
    schema_file = tmp_path / "schema.yaml"
    original = (REPO / "configs" / "schema.yaml").read_text(encoding="utf-8")
    colour = yaml.safe_load(original)["entities"][0]["colour"]
    schema_file.write_text(original.replace(colour, "#123456", 1), encoding="utf-8")
    assert run_ls("push", *docs, "--project", PROJECT, "--schema", schema_file) == 0
    assert "labeling config updated" in capsys.readouterr().out
    assert "#123456" in client.find_project(PROJECT)["label_config"]

    # The same doc_id with a new text (not annotated yet) updates the task in place.
    edited = tmp_path / seed.name
    edited.write_text(read_document(seed).text + "\n补充一段。\n", encoding="utf-8")
    assert run_ls("push", edited, "--project", PROJECT) == 0
    assert "0 created, 1 updated" in capsys.readouterr().out
    third = {t["data"]["doc_id"]: t for t in _project_tasks(client)}
    assert len(third) == len(docs) and third[seed.stem]["data"]["text"].endswith("补充一段。\n")
    assert len(third[seed.stem]["predictions"]) == 1


def test_wrong_token_is_an_auth_error_naming_the_url(ls, seed, tmp_path, monkeypatch, capsys):
    server, client = ls
    out = tmp_path / "out"
    real = os.environ["LABEL_STUDIO_API_KEY"]
    header, payload, _ = real.split(".")
    for bad in ("not-a-token", f"{header}.{payload}.{'A' * 43}"):  # a legacy-looking token, a forged JWT
        monkeypatch.setenv("LABEL_STUDIO_API_KEY", bad)
        assert run_ls("pull", "--project", PROJECT, "--out", out) == 3  # environment: credentials refused
        err = capsys.readouterr().err
        assert server.url in err and "token" in err, err
        assert not out.exists()
        with pytest.raises(LSAuthError, match=server.url):
            LabelStudioClient(server.url, bad).whoami()
    with pytest.raises(LSAuthError, match="PLANIE_LS_PASSWORD"):
        get_personal_token(server.url, USER, "wrong password")
    assert client.whoami()["email"] == USER


def test_server_down_is_a_clear_error_and_nothing_is_written(tmp_path, monkeypatch, capsys):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("LABEL_STUDIO_URL", url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "x.y.z")
    out = tmp_path / "out"
    assert run_ls("pull", "--project", PROJECT, "--out", out) == 3  # environment: no server
    err = capsys.readouterr().err
    assert "cannot connect" in err and url in err
    assert not out.exists()
    doc = tmp_path / "d.txt"
    doc.write_text("到2015年，合格率达到96%。\n", encoding="utf-8")
    assert run_ls("push", doc, "--project", PROJECT) == 3
    assert url in capsys.readouterr().err
    with pytest.raises(LSConnectionError, match=url):
        LabelStudioClient(url, "legacy-token").whoami()


def test_busy_port_and_missing_admin_are_errors(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(LabelStudioError, match=f"port {port} .* already in use"):
            start_server(tmp_path / "d", port, executable=sys.executable, user=USER, password=PASSWORD)
    with pytest.raises(LabelStudioError, match="PLANIE_LS_USER"):
        start_server(tmp_path / "d", free_port(), executable=sys.executable, user="", password="")
    assert not (tmp_path / "d").exists()


def _tiny_ner_model(folder: Path, texts: list[str]) -> Path:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from tests.tiny_bert import build_tiny_ner

    return build_tiny_ner(folder, texts)


def test_selected_paragraph_tasks_map_back_to_document_offsets(ls, seed, tmp_path):
    _, client = ls
    text = read_document(seed).text
    model = _tiny_ner_model(tmp_path / "ner", [text])
    assert run_ls("push", seed, "--project", PROJECT, "--model", model, "--select", 3) == 0
    tasks = _project_tasks(client)
    assert len(tasks) == 3
    for t in tasks:
        offset, ptext = t["data"]["offset"], t["data"]["text"]
        assert t["data"]["doc_id"] == seed.stem and text[offset : offset + len(ptext)] == ptext
        assert t["data"]["entropy"] > 0
        for item in t["predictions"][0]["result"]:  # predictions in paragraph coordinates
            if item["type"] == "labels":
                assert 0 <= item["value"]["start"] < item["value"]["end"] <= len(ptext)
    entropies = [t["data"]["entropy"] for t in sorted(tasks, key=lambda t: t["id"])]
    assert entropies == sorted(entropies, reverse=True)
    version = client.find_project(PROJECT)["model_version"]  # ner id + relations + weights fingerprint
    assert version.startswith("model:tiny+rules-linker@") and tasks[0]["predictions"][0]["model_version"] == version

    # A second selection skips the paragraphs already queued.
    assert run_ls("push", seed, "--project", PROJECT, "--model", model, "--select", 2) == 0
    tasks = _project_tasks(client)
    assert len(tasks) == 5 and len({t["data"]["offset"] for t in tasks}) == 5

    # Annotate two paragraphs (their own coordinates, the same result ids in both) and pull.
    expected = []
    for t in sorted(tasks, key=lambda t: t["data"]["offset"])[:2]:
        ptext, offset = t["data"]["text"], t["data"]["offset"]
        piece = ptext[:4]
        assert piece == piece.strip()
        item = {
            "id": "same-id",
            "from_name": "label",
            "to_name": "text",
            "type": "labels",
            "value": {"start": 0, "end": 4, "text": piece, "labels": ["ACTION"]},
        }
        client.create_annotation(t["id"], [item])
        expected.append((offset, offset + 4, piece))
    out = tmp_path / "pulled"
    assert run_ls("pull", "--project", PROJECT, "--out", out, "--docs", seed.parent) == 0
    (doc,) = load_gold_dir([out])
    assert doc.text == text
    assert sorted((s.start, s.end, s.text) for s in doc.spans) == sorted(expected)
    assert len({s.id for s in doc.spans}) == 2  # clashing ids were made unique
    raw = json.loads((out / f"{seed.stem}.json").read_text(encoding="utf-8"))
    annotated = sorted(tasks, key=lambda t: t["data"]["offset"])[:2]
    regions = [[t["data"]["offset"], t["data"]["offset"] + len(t["data"]["text"])] for t in annotated]
    assert raw[0]["data"]["regions"] == regions  # what was looked at; the rest of the text is unlabeled

    # One more paragraph annotated later: the next pull extends the file (no conflict).
    third = sorted(tasks, key=lambda t: t["data"]["offset"])[2]
    piece = third["data"]["text"][:2]
    item = {"id": "z", "from_name": "label", "to_name": "text", "type": "labels"}
    client.create_annotation(
        third["id"], [{**item, "value": {"start": 0, "end": 2, "text": piece, "labels": ["AGENCY"]}}]
    )
    assert run_ls("pull", "--project", PROJECT, "--out", out, "--docs", seed.parent) == 0
    (doc,) = load_gold_dir([out])
    assert len(doc.spans) == 3 and (third["data"]["offset"], piece) in {(s.start, s.text) for s in doc.spans}

    # --gold: paragraphs covered by pulled files are not selected again.
    fresh = "another project"
    assert run_ls("push", seed, "--project", fresh, "--model", model, "--select", 4, "--gold", out) == 0
    offsets = {t["data"]["offset"] for t in _project_tasks(client, fresh)}
    assert len(offsets) == 4 and not offsets & {t["data"]["offset"] for t in annotated + [third]}


def test_ml_backend_serves_predictions_to_the_server(ls, seed):
    _, client = ls
    from pipeline.extractors.extract import RulesExtractor

    service = PredictionService(RulesExtractor())
    backend = make_backend(service, "127.0.0.1", free_port())
    url = f"http://127.0.0.1:{backend.server_address[1]}"
    thread = threading.Thread(target=backend.serve_forever, daemon=True)
    thread.start()
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=10) as resp:
            assert json.loads(resp.read())["status"] == "UP"
        assert run_ls("push", seed, "--project", PROJECT, "--no-predictions", "--backend-url", url) == 0
        project = client.find_project(PROJECT)
        (ml,) = client.ml_backends(project["id"])
        assert ml["state"] == "CO" and ml["url"] == url
        (task,) = client.list_tasks(project["id"])
        assert task["predictions"] == []
        client.sdk.tasks.get(id=task["id"])  # an annotator opens the task: the server asks
        (task,) = client.list_tasks(project["id"])
        (pred,) = task["predictions"]
        assert pred["model_version"] == service.model_version
        spans, relations = RulesExtractor().predict([task["data"]["text"]])[0]
        assert pred["result"] == prediction_items(spans, relations)
    finally:
        backend.shutdown()
        backend.server_close()


def test_paragraph_ids_are_made_unique_and_changed_documents_are_problems(tmp_path):
    doc = tmp_path / "d.txt"
    doc.write_text("标题\n第一段文字。\n第二段文字。\n", encoding="utf-8")
    text = read_document(doc).text

    def task(tid: int, offset: int, length: int) -> dict:
        item = {"id": "x", "type": "labels", "value": {"start": 0, "end": 2, "text": text[offset : offset + 2]}}
        item["value"]["labels"] = ["ACTION"]
        ann = {"id": tid, "result": [item], "updated_at": "2026-01-01"}
        return {"id": tid, "data": {"text": text[offset : offset + length], "doc_id": "d", "offset": offset},
                "annotations": [ann]}  # fmt: skip

    docs, problems, _ = build_pulled_docs([task(1, 3, 6), task(2, 10, 6)], {"d": doc})
    assert problems == []
    ((pulled, _),) = docs.values()
    assert isinstance(pulled, AnnotatedDoc)
    assert [(s.id, s.start, s.end, s.text) for s in pulled.spans] == [("x", 3, 5, "第一"), ("x_p10", 10, 12, "第二")]
    assert pulled.meta["regions"] == [[3, 9], [10, 16]]
    bad = task(3, 3, 6)
    bad["data"]["text"] = "别的文字内容"
    _, problems, _ = build_pulled_docs([bad], {"d": doc})
    assert problems and "no longer matches" in problems[0]


def test_all_annotators_get_a_file_each(ls, seed, tmp_path):
    _, client = ls
    text = read_document(seed).text
    assert run_ls("push", seed, "--project", PROJECT, "--no-predictions") == 0
    (task,) = _project_tasks(client)
    second = client.sdk.users.create(email="second@localhost", username="second").dict()
    mine = [_span(text, "　　由", "省质监局", "AGENCY", "a1")]
    theirs = [_span(text, "　　由", "省质监局牵头", "ACTION", "b1")]
    client.create_annotation(task["id"], mine)
    client.create_annotation(task["id"], theirs, completed_by=second["id"])

    out = tmp_path / "latest"
    assert run_ls("pull", "--project", PROJECT, "--out", out) == 0
    ((doc,),) = [load_gold(f) for f in out.glob("*.json")]
    assert [s.id for s in doc.spans] == ["b1"]  # the latest annotation of the task

    out = tmp_path / "all"
    assert run_ls("pull", "--project", PROJECT, "--out", out, "--all-annotators") == 0
    files = {f.parent.name: load_gold(f)[0] for f in out.glob("*/*.json")}
    assert {k: [s.id for s in d.spans] for k, d in files.items()} == {USER: ["a1"], "second@localhost": ["b1"]}


def test_serve_token_stop_commands(ls_template, tmp_path, monkeypatch, capsys):
    template, _ = ls_template
    data = tmp_path / "served"
    shutil.copytree(template, data)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("PLANIE_LS_USER", USER)
    monkeypatch.setenv("PLANIE_LS_PASSWORD", PASSWORD)
    args = ("--data-dir", data)
    try:
        assert run_ls("serve", "--port", port, *args, "--venv", LS_BIN.parents[1], "--detach") == 0
        assert run_ls("serve", "--port", free_port(), *args, "--venv", LS_BIN.parents[1]) == 1
        assert "still running" in capsys.readouterr().err
        assert run_ls("token", "--url", url) == 1  # the template's admin already has a token
        assert "--rotate" in capsys.readouterr().err
        assert run_ls("token", "--url", url, "--rotate") == 0
        token = capsys.readouterr().out.strip()
        assert LabelStudioClient(url, token).whoami()["email"] == USER
    finally:
        assert run_ls("stop", *args) == 0
    with pytest.raises(LSConnectionError):
        LabelStudioClient(url, "legacy-token").whoami()


def test_secret_key_is_one_label_studio_can_read_back(tmp_path, capsys):
    ensure_secret_key(tmp_path)
    (line,) = (tmp_path / ".env").read_text().splitlines()
    assert line.startswith("SECRET_KEY=") and not line.startswith("SECRET_KEY=$") and len(line) > 60
    ensure_secret_key(tmp_path)
    assert (tmp_path / ".env").read_text().splitlines() == [line]  # kept
    (tmp_path / ".env").write_text("\nSECRET_KEY=$o)r&qcb_m7\nOTHER=1\nSECRET_KEY=abc\n")  # as label-studio leaves it
    ensure_secret_key(tmp_path)
    lines = (tmp_path / ".env").read_text().splitlines()
    assert "OTHER=1" in lines and [k for k in lines if k.startswith("SECRET_KEY=")] == [lines[-1]]
    assert not lines[-1].startswith("SECRET_KEY=$") and "cannot read back" in capsys.readouterr().err


def test_backend_learns_from_submitted_annotations_through_the_server(ls, seed, tmp_path):
    """Connect a learning backend, annotate, press "Start Training" (POST /api/ml/ID/train): the
    server asks the backend, which fine-tunes the tiny model, scores it on a fixed gold set and
    promotes it; the server's next predictions come from the promoted version."""
    from pipeline.apps.labelstudio.learning import LearnConfig, Learner, ModelStore
    from pipeline.apps.labelstudio.push import model_version
    from pipeline.core.annotations import write_export
    from pipeline.extractors.extract import RulesExtractor, extract_documents, load_extractor

    _, client = ls
    text, other = read_document(seed), read_document(SEED_2)
    model = _tiny_ner_model(tmp_path / "ner", [text.text, other.text])
    write_export(tmp_path / "gold" / "eval.json", extract_documents([other], RulesExtractor()))  # fixed eval set
    store = ModelStore(tmp_path / "work")
    store.seed(model)
    service = PredictionService(load_extractor(str(store.current_dir)))
    cfg = LearnConfig(tmp_path / "work", (str(tmp_path / "gold"),), {seed.stem: seed}, epochs=1, max_steps=4)
    learner = Learner(store, client, cfg, lambda d: service.swap(load_extractor(str(d))))
    backend = make_backend(service, "127.0.0.1", free_port(), learner)
    url = f"http://127.0.0.1:{backend.server_address[1]}"
    threading.Thread(target=backend.serve_forever, daemon=True).start()
    try:
        assert run_ls("push", seed, "--project", PROJECT, "--no-predictions", "--backend-url", url) == 0
        project = client.find_project(PROJECT)
        (task,) = client.list_tasks(project["id"])
        spans = [("　　由", "省质监局", "AGENCY"), ("漯河三市创建“", "全国质量强市示范城市", "INDICATOR")]
        client.create_annotation(task["id"], [_span(text.text, *s, f"a{i}") for i, s in enumerate(spans)])
        first = service.model_version
        (ml,) = client.ml_backends(project["id"])
        client.train(ml["id"])  # the server POSTs {"action": "START_TRAINING"} to the backend's /webhook
        assert learner.thread is not None
        learner.thread.join(120)  # a few seconds alone; CI machines are shared
        with urllib.request.urlopen(f"{url}/status", timeout=10) as resp:
            status = json.loads(resp.read())
        report = status["last_run"]
        assert report["status"] == "promoted", report
        assert report["train_docs"] == [seed.stem] and report["eval"]["docs"] == [other.doc_id]
        assert {"current", "candidate"} <= set(report["eval"]) and report["train"]["epochs"] == 1
        assert status["current"] == store.current == "v0001" and status["versions"] == ["v0000", "v0001"]
        assert (tmp_path / "work" / "runs" / "0001" / "report.json").is_file()
        promoted = model_version(load_extractor(str(store.versions_dir / "v0001")))
        assert service.model_version == status["model_version"] == promoted != first

        client.retrieve_predictions(project["id"], [task["id"]])  # the server asks the backend again
        (task,) = client.list_tasks(project["id"])
        assert [p["model_version"] for p in task["predictions"]] == [promoted]
    finally:
        backend.shutdown()
        backend.server_close()
