"""Peak RSS of `planie extract` against the number of documents (issue 14: memory must not grow with it).

    python scripts/bench_memory.py [--cases rules:1000 rules:100000 model:2000] [--out scripts/results]

Each case writes N small documents (three lines, about 90 characters, each with a target and
tasks; the indicator names come from a set of 40, so the indicator summary does not grow with N)
and runs one `planie extract` child process over the folder (``bench_extract.run``: its own peak
RSS from getrusage). ``model`` is the shipped model, models/planie-ner. Writes bench_memory.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_extract import REPO, run  # noqa: E402

LINES = (
    "第{i}号文件。到{year}年，全省第{k}类产品质量合格率达到9{d}%以上。",
    "各级质监部门要加强第{k}类产品的质量监督。",
    "省发展改革委负责推进第{k}号品牌建设工程。",
)
INDICATORS = 40  # documents share their indicators, as plans do: the summary has 40 groups, not one per document
MODELS = {"rules": "rules", "model": str(REPO / "models" / "planie-ner")}


def make_docs(folder: Path, n: int) -> int:
    """N small documents; returns their characters."""
    folder.mkdir(parents=True)
    chars = 0
    for i in range(n):
        text = "\n".join(line.format(i=i, k=i % INDICATORS, year=2015 + i % 10, d=i % 10) for line in LINES) + "\n"
        (folder / f"d{i:06d}.txt").write_text(text, encoding="utf-8")
        chars += len(text)
    return chars


def bench(case: str, work: Path) -> dict:
    kind, n = case.split(":")
    corpus = work / f"{kind}-{n}"
    chars = make_docs(corpus, int(n))
    result = run(MODELS[kind], corpus, work / f"out-{kind}-{n}")
    shutil.rmtree(corpus)
    shutil.rmtree(work / f"out-{kind}-{n}")
    return {"case": case, "docs": int(n), "chars": chars, **result}


def markdown(rows: list[dict]) -> str:
    lines = [
        "# Peak RSS against the number of documents (`python scripts/bench_memory.py`)",
        "",
        f"{platform.node()}, {os.cpu_count()} cores shared with other jobs, {time.strftime('%Y-%m-%d')}. "
        "One `planie extract DIR --out OUT --model M` child process per row; peak RSS from getrusage.",
        "",
        "| model | documents | characters | wall time (s) | peak RSS (MB) |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        model = "rules" if r["model"] == "rules" else "shipped (models/planie-ner)"
        lines.append(f"| {model} | {r['docs']:,} | {r['chars']:,} | {r['seconds']:,.0f} | {r['peak_rss_mb']:,.1f} |")
    by_model: dict[str, list[dict]] = {}
    for r in rows:
        by_model.setdefault(r["model"], []).append(r)
    for model, group in by_model.items():
        if len(group) > 1:
            small, large = min(group, key=lambda r: r["docs"]), max(group, key=lambda r: r["docs"])
            growth = 100 * (large["peak_rss_mb"] / small["peak_rss_mb"] - 1)
            lines += [
                "",
                f"{model}: {large['docs']:,} documents need {growth:+.1f} % of the peak RSS of {small['docs']:,}.",
            ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=["rules:1000", "rules:100000", "model:2000"])
    parser.add_argument("--out", default=str(REPO / "scripts" / "results"))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_memory_") as tmp:
        for case in args.cases:
            rows.append(bench(case, Path(tmp)))
            print(rows[-1], flush=True)
    Path(args.out, "bench_memory.md").write_text(markdown(rows), encoding="utf-8")
    print(markdown(rows))


if __name__ == "__main__":
    main()
