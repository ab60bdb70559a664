"""Benchmark `planie extract`: characters per second and peak memory, for the shipped model and
the rules baseline, on the seed documents repeated to about 1M characters.

    python scripts/bench_extract.py [--chars 1000000] [--model models/planie-ner] [--out scripts/results]
    python scripts/bench_extract.py --long [--model models/planie-ner] [--out scripts/results]

Each run is its own child process (`planie extract`), so peak RSS is that process's own.
Writes bench_extract.json and bench_extract.md; with ``--long``, one document of 20k and one of 200k
characters (the seeds joined and cut) through the model, peak RSS of each, to bench_long.json/.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SEEDS = REPO.parent / "shared" / "seeds"


def make_corpus(folder: Path, target_chars: int) -> tuple[int, int]:
    seeds = sorted(SEEDS.glob("*.txt"))
    total = n = 0
    while total < target_chars:
        for seed in seeds:
            text = seed.read_text(encoding="utf-8")
            (folder / f"{n:04d}_{seed.name}").write_text(text, encoding="utf-8")
            total += len(text)
            n += 1
            if total >= target_chars:
                break
    return n, total


CHILD = (
    "import resource, sys\n"
    "from pipeline.cli import main\n"
    "rc = main(sys.argv[1:])\n"
    "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(rc)\n"
)


def run(model: str, corpus: Path, out: Path) -> dict:
    """One extraction in a child process; its own peak RSS is printed last on its stderr."""
    started = time.perf_counter()
    cmd = [sys.executable, "-c", CHILD, "extract", str(corpus), "--out", str(out), "--model", model]
    proc = subprocess.run(cmd, check=True, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - started
    peak_kb = int(proc.stderr.strip().splitlines()[-1])
    return {"model": model, "seconds": round(seconds, 2), "peak_rss_mb": round(peak_kb / 1024, 1)}


LONG_SIZES = (20_000, 200_000)


def long_document(chars: int) -> str:
    """The seeds joined by line breaks, repeated and cut to ``chars`` characters (at a line end)."""
    seeds = "\n".join(p.read_text(encoding="utf-8") for p in sorted(SEEDS.glob("*.txt")))
    text = "\n".join([seeds] * (chars // len(seeds) + 1))[:chars]
    return text[: text.rfind("\n")] if "\n" in text else text


def bench_long(model: str, out: Path) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench_long_"))
    rows = []
    try:
        for chars in LONG_SIZES:
            doc = tmp / f"long_{chars}" / "long.txt"
            doc.parent.mkdir()
            text = long_document(chars)
            doc.write_text(text, encoding="utf-8")
            row = {"characters": len(text), "lines": text.count("\n") + 1, **run(model, doc, tmp / f"out_{chars}")}
            rows.append(row)
            print(row, flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    result = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform()}, "runs": rows}
    (out / "bench_long.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    lines = [
        "# planie extract: one long document",
        "",
        f"One document (the five seeds joined, repeated and cut), {os.cpu_count()} CPUs. "
        "Command: `OMP_NUM_THREADS=1 python scripts/bench_extract.py --long`. "
        "Peak RSS of the whole `planie extract` process.",
        "",
        "| model | characters | seconds | peak RSS (MB) |",
        "|---|---|---|---|",
        *(f"| {Path(r['model']).name} | {r['characters']:,} | {r['seconds']} | {r['peak_rss_mb']} |" for r in rows),
    ]
    (out / "bench_long.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chars", type=int, default=1_000_000)
    parser.add_argument("--model", default=str(REPO / "models" / "planie-ner"))
    parser.add_argument("--out", default=str(REPO / "scripts" / "results"))
    parser.add_argument("--long", action="store_true", help="peak RSS for one 20k and one 200k character document")
    args = parser.parse_args()
    if args.long:
        bench_long(args.model, Path(args.out))
        return
    tmp = Path(tempfile.mkdtemp(prefix="bench_extract_"))
    try:
        corpus = tmp / "corpus"
        corpus.mkdir()
        docs, chars = make_corpus(corpus, args.chars)
        rows = []
        for model in ("rules", args.model):
            row = run(model, corpus, tmp / f"out_{len(rows)}")
            row["chars_per_second"] = round(chars / row["seconds"])
            rows.append(row)
            print(row, flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result = {
        "documents": docs,
        "characters": chars,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "runs": rows,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_extract.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    lines = [
        "# planie extract benchmark",
        "",
        f"{docs} documents, {chars:,} characters (the five seeds repeated), {os.cpu_count()} CPUs, "
        f"{platform.platform()}. Command: `python scripts/bench_extract.py --chars {args.chars}`.",
        "",
        "| model | seconds | chars/s | peak RSS (MB) |",
        "|---|---|---|---|",
        *(f"| {r['model']} | {r['seconds']} | {r['chars_per_second']:,} | {r['peak_rss_mb']} |" for r in rows),
    ]
    (out / "bench_extract.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
