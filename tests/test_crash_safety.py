"""Fault injection with real processes and files: kill -9 and --resume, two runs on one folder, a
kill during the final writing (issue 14). ``--model rules`` throughout: the model is not the point."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SENTENCES = [
    "到2015年，全省制造业产品质量合格率达到96%以上，主要农产品质量安全抽检合格率稳定在97%。",
    "各级质监部门要加强质量监督，省发展改革委负责推进品牌建设。",
    "到2020年，服务业顾客满意度达到80分以上。",
]


def write_corpus(folder: Path, n: int, lines: int = 40) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        text = "\n".join(f"第{i}号文件第{k}段。" + SENTENCES[(i + k) % 3] for k in range(lines)) + "\n"
        paths.append(folder / f"doc{i:04d}.txt")
        paths[-1].write_text(text, encoding="utf-8")
    return paths


def planie(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipeline.cli", *args]


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(planie(*args), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(planie(*args), cwd=REPO, capture_output=True, text=True, timeout=600)


def journal_lines(out: Path) -> int:
    journal = out / "extractions.jsonl.journal"
    return journal.read_bytes().count(b"\n") if journal.exists() else 0


def wait_for(condition, proc: subprocess.Popen, timeout: float = 120) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"the run ended (code {proc.returncode}) before the fault: {proc.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("timed out waiting for the run to get there")
        time.sleep(0.01)


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "extractions.jsonl").read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("corpus") / "in"
    write_corpus(folder, 160, lines=30)
    return folder


@pytest.fixture(scope="module")
def reference(corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "out"
    done = run("extract", str(corpus), "--out", str(out), "--model", "rules", "--quiet")
    assert done.returncode == 0, done.stderr
    return out


def test_kill_9_twice_then_resume_gives_the_uninterrupted_records(corpus, reference, tmp_path) -> None:
    out = tmp_path / "out"
    for at in (16, 80):  # two kills at different points, the second one in a resumed run
        proc = start("extract", str(corpus), "--out", str(out), "--model", "rules", "--quiet", "--resume")
        wait_for(lambda at=at: journal_lines(out) >= at, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert not (out / "extractions.jsonl").exists()  # the run did not finish
        assert journal_lines(out) >= at  # what was journaled survived the kill
    done = run("extract", str(corpus), "--out", str(out), "--model", "rules", "--quiet", "--resume")
    assert done.returncode == 0, done.stderr
    assert records(out) == records(reference)  # nothing lost, nothing twice, same order
    assert "skipped (--resume)" in done.stdout and " 0 skipped" not in done.stdout
    for name in ("targets.csv", "tasks.csv", "index.html", "summary.html", "indicators.csv"):
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name
    assert not (out / "extractions.jsonl.journal").exists() and not list(out.rglob("*.tmp"))


def test_a_line_cut_by_the_kill_is_dropped_and_its_document_extracted_again(corpus, reference, tmp_path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    whole = (reference / "extractions.jsonl").read_bytes().splitlines(keepends=True)
    (out / "extractions.jsonl.journal").write_bytes(b"".join(whole[:10]) + whole[10][:100])  # a write cut short
    done = run("extract", str(corpus), "--out", str(out), "--model", "rules", "--quiet", "--resume")
    assert done.returncode == 0, done.stderr
    assert records(out) == records(reference)


def test_a_kill_during_the_final_writing_is_repaired_by_resume(corpus, reference, tmp_path) -> None:
    """The state such a kill leaves: the journal complete, an old index.html, a half-written temporary
    file and the page of a document no longer in the run."""
    out = tmp_path / "out"
    (out / "html").mkdir(parents=True)
    (out / "extractions.jsonl.journal").write_bytes((reference / "extractions.jsonl").read_bytes())
    (out / "index.html").write_text("<p>1000 documents</p>", encoding="utf-8")
    (out / ".summary.html.x1y2.tmp").write_text("<html><body>half", encoding="utf-8")
    (out / "html" / ".doc0001.html.abc.tmp").write_text("half", encoding="utf-8")
    (out / "html" / "gone.html").write_text("an earlier run's page", encoding="utf-8")
    done = run("extract", str(corpus), "--out", str(out), "--model", "rules", "--quiet", "--resume")
    assert done.returncode == 0, done.stderr
    assert "0 document(s) extracted" in done.stdout  # everything came from the journal
    assert records(out) == records(reference)
    assert (out / "index.html").read_bytes() == (reference / "index.html").read_bytes()
    assert not list(out.rglob("*.tmp")) and not (out / "html" / "gone.html").exists()
    assert sorted(p.name for p in (out / "html").iterdir()) == sorted(p.name for p in (reference / "html").iterdir())


def test_a_second_run_on_the_same_folder_fails_at_once_naming_folder_and_process(corpus, tmp_path) -> None:
    out = tmp_path / "out"
    first = start("extract", str(corpus), "--out", str(out), "--model", "rules", "--quiet")
    wait_for(lambda: journal_lines(out) >= 8, first)
    other = tmp_path / "small"
    write_corpus(other, 3, lines=2)
    started = time.monotonic()
    second = run("extract", str(other), "--out", str(out), "--model", "rules", "--quiet", "--resume")
    assert second.returncode == 3 and time.monotonic() - started < 60
    assert str(out) in second.stderr and f"process {first.pid}" in second.stderr
    assert "Traceback" not in second.stderr and second.stderr.count("\n") == 1
    report = run("report", str(out))
    assert report.returncode == 3 and f"process {first.pid}" in report.stderr
    assert first.wait(timeout=600) == 0
    lines = records(out)
    assert len(lines) == 160 and all(r["doc_id"].startswith("doc") for r in lines)
    assert "160 documents" in (out / "index.html").read_text(encoding="utf-8")
    again = run("extract", str(other), "--out", str(out), "--model", "rules", "--quiet", "--resume")
    assert again.returncode == 0 and len(records(out)) == 163  # the lock went with the process


def test_broken_pipe_is_not_an_error(tmp_path) -> None:
    write_corpus(tmp_path / "in", 2, lines=2)
    proc = subprocess.Popen(
        planie("extract", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--model", "rules", "--quiet"),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # like `| head` that has already gone
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err
    assert os.path.exists(tmp_path / "out" / "extractions.jsonl")
