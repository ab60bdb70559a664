"""Cold start of the command line, before and after a change, in one run (issue 16).

    nice -n 19 .venv/bin/python scripts/bench_cold_start.py [--before REV] [--runs 5] [--precision bf16]

For each checkout — ``before``: ``git archive REV`` of this repository unpacked in a temporary folder (the
shipped model is tracked, so it comes along); ``after``: this checkout — and each run (the two
alternate, so that load from other processes touches both alike):

- ``planie extract SEEDS --out TMP --quiet`` (``python -m pipeline.cli``, PYTHONPATH = the checkout,
  OMP_NUM_THREADS = --threads): seconds from the process's start to the **first record written**
  (the first complete line of ``TMP/extractions.jsonl.journal``, or of ``extractions.jsonl`` once the
  run has renamed it; polled every 5 ms) and the process's CPU seconds (user + system, all threads, from
  ``/proc/PID/stat``) at that moment; then the process is stopped, or with ``--to-end`` left to finish
  (the whole run's wall seconds);
- ``planie --help`` and ``planie extract --help``: wall seconds, and whether torch was imported
  (``-X importtime`` on stderr).

Reports medians per checkout and after/before ratios, with the 1-minute load average at the start and
the end. Writes scripts/results/cold_start.json and .md (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SEEDS = REPO.parent / "shared" / "seeds"
TICKS = os.sysconf("SC_CLK_TCK")
HEAVY = ("torch", "transformers", "numpy", "pydantic", "datasets", "pandas", "matplotlib", "ray", "label_studio_sdk")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def first_line_written(out: Path) -> bool:
    for name in ("extractions.jsonl.journal", "extractions.jsonl"):
        try:
            with open(out / name, "rb") as fh:
                if b"\n" in fh.read(1 << 20):
                    return True
        except OSError:
            pass
    return False


def env_for(tree: Path, threads: int) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false"}


def run_extract(tree: Path, threads: int, precision: str, to_end: bool = False) -> dict[str, Any]:
    """One ``planie extract`` of the seeds; without ``to_end`` the process is stopped (SIGTERM) once its
    first record is written: what comes after is not the cold start, and on a busy machine it is minutes."""
    out = Path(tempfile.mkdtemp(prefix="cold_start_out_"))
    shutil.rmtree(out)
    cmd = [sys.executable, "-m", "pipeline.cli", "extract", str(SEEDS), "--out", str(out), "--quiet"]
    cmd += ["--precision", precision]
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=tree, env=env_for(tree, threads), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    first = cpu = None
    while proc.poll() is None:
        if first is None and first_line_written(out):
            first = time.perf_counter() - started
            try:
                cpu = cpu_seconds(proc.pid)
            except (OSError, IndexError):
                cpu = None
            if not to_end:
                proc.terminate()
        time.sleep(0.005)
    wall = time.perf_counter() - started
    stderr = proc.stderr.read() if proc.stderr else ""
    if proc.returncode != 0 and not (first is not None and not to_end):
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{stderr[-2000:]}")
    if first is None:  # finished between two polls
        first = wall
    shutil.rmtree(out, ignore_errors=True)
    whole = round(wall, 3) if to_end else None
    return {"first_record_s": round(first, 3), "cpu_at_first_record_s": cpu, "wall_s": whole}


def run_help(tree: Path, args: list[str]) -> dict[str, Any]:
    """Wall seconds of ``planie ARGS``, then (a second run, not timed) the heavy modules it imports."""
    cmd = [sys.executable, "-m", "pipeline.cli", *args]
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=tree, env=env_for(tree, 1), capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    cmd = [sys.executable, "-X", "importtime", "-m", "pipeline.cli", *args]
    proc = subprocess.run(cmd, cwd=tree, env=env_for(tree, 1), capture_output=True, text=True, check=False)
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time")}
    return {"wall_s": round(wall, 3), "imported": sorted(h for h in HEAVY if h in imported)}


def checkout(rev: str, folder: Path) -> Path:
    """``git archive REV`` unpacked in ``folder``."""
    archive = folder / "tree.tar"
    with open(archive, "wb") as fh:
        subprocess.run(["git", "archive", rev], cwd=REPO, stdout=fh, check=True)
    tree = folder / "tree"
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    archive.unlink()
    return tree


def median(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return round(statistics.median(values), 3) if values else None


def summarise(runs: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for name, by_kind in runs.items():
        table[name] = {
            "first_record_s": median(by_kind["extract"], "first_record_s"),
            "cpu_at_first_record_s": median(by_kind["extract"], "cpu_at_first_record_s"),
            "extract_wall_s": median(by_kind["extract"], "wall_s"),
            "help_s": median(by_kind["help"], "wall_s"),
            "extract_help_s": median(by_kind["extract_help"], "wall_s"),
            "help_imports": by_kind["help"][0]["imported"],
            "extract_help_imports": by_kind["extract_help"][0]["imported"],
        }
    if "before" in table:
        b, a = table["before"], table["after"]
        table["ratio_after_before"] = {
            k: round(a[k] / b[k], 3) for k in a if isinstance(a[k], float) and isinstance(b.get(k), float) and b[k]
        }
    return table


def to_markdown(res: dict[str, Any]) -> str:
    t = res["table"]
    names = [n for n in ("before", "after") if n in t]
    rows = [
        ("process start → first record, s", "first_record_s"),
        ("CPU s (all threads) at the first record", "cpu_at_first_record_s"),
        ("whole `extract` run, s", "extract_wall_s"),
        ("`planie --help`, s", "help_s"),
        ("`planie extract --help`, s", "extract_help_s"),
    ]
    head = "| | " + " | ".join(names) + (" | after / before |" if len(names) == 2 else " |")
    lines = [
        "# Cold start of `planie extract` on the seeds (issue 16)",
        "",
        f"Command: `{res['command']}` (written by `scripts/bench_cold_start.py`). "
        f"Before = `git archive {res['before_rev']}`, after = this checkout"
        + (f" ({res['after_rev']})" if res.get("after_rev") else "")
        + f". Each run: `{res['extract_command']}` with PYTHONPATH = the checkout, "
        f"OMP_NUM_THREADS={res['threads']}, precision {res['precision']}; "
        f"{res['runs']} runs per checkout planned, alternating; medians of the runs done ("
        + ", ".join(f"{n} {len(res['raw'][n]['extract'])}" for n in names)
        + ").",
        "",
        f"Machine: {res['nproc']} CPUs; 1-min load average {res['load_start']} at the start, {res['load_end']} at "
        f"the end; the bench itself ran at nice {res['nice']}. **Shared machine**: when other jobs keep both cores "
        "busy the absolute seconds are many times an idle machine's; compare the ratios (same session, runs "
        "interleaved). The CPU seconds vary less with the load than the wall seconds, but they grow with it too "
        "(two OpenMP threads on an oversubscribed machine spin while they wait for each other).",
        "",
        head,
        "|---|" + "---|" * (len(names) + (1 if len(names) == 2 else 0)),
    ]
    ratio = t.get("ratio_after_before", {})
    for label, key in rows:
        cells = [f"{t[n][key]:.2f}" if t[n][key] is not None else "–" for n in names]
        extra = [f"{ratio[key]:.2f}" if key in ratio else "–"] if len(names) == 2 else []
        lines.append(f"| {label} | " + " | ".join(cells + extra) + " |")
    for n in names:
        lines.append("")
        lines.append(
            f"Heavy modules imported by `planie --help` ({n}): {', '.join(t[n]['help_imports']) or 'none'}; "
            f"by `planie extract --help`: {', '.join(t[n]['extract_help_imports']) or 'none'}."
        )
    lines += ["", "Per run (seconds to the first record):", ""]
    for n in names:
        lines.append(f"- {n}: " + ", ".join(f"{r['first_record_s']:.2f}" for r in res["raw"][n]["extract"]))
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--before", default=None, help="git revision to compare with (default: none, only this checkout)")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--precision", default="bf16")
    p.add_argument("--to-end", action="store_true", help="let each extract finish (default: stop at the first record)")
    p.add_argument("--out", type=Path, default=REPO / "scripts" / "results")
    args = p.parse_args()
    load_start = [round(x, 2) for x in os.getloadavg()]
    tmp = Path(tempfile.mkdtemp(prefix="cold_start_"))
    try:
        trees = {"after": REPO}
        if args.before:
            trees = {"before": checkout(args.before, tmp), "after": REPO}
        runs: dict[str, dict[str, list[dict[str, Any]]]] = {
            n: {"extract": [], "help": [], "extract_help": []} for n in trees
        }
        for tree in trees.values():  # warm the page cache (weights, packages) once, untimed
            run_extract(tree, args.threads, args.precision, args.to_end)
        for i in range(args.runs):
            order = list(trees) if i % 2 == 0 else list(reversed(trees))
            for name in order:
                tree = trees[name]
                runs[name]["help"].append(run_help(tree, ["--help"]))
                runs[name]["extract_help"].append(run_help(tree, ["extract", "--help"]))
                runs[name]["extract"].append(run_extract(tree, args.threads, args.precision, args.to_end))
                print(f"run {i + 1} {name}: {json.dumps(runs[name]['extract'][-1])}", flush=True)
                if all(r["extract"] for r in runs.values()):  # results so far: a stopped bench leaves them
                    write_results(args, runs, load_start)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(to_markdown(write_results(args, runs, load_start)))


def write_results(
    args: argparse.Namespace, runs: dict[str, dict[str, list[dict[str, Any]]]], load_start: list[float]
) -> dict[str, Any]:
    after_rev = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True, text=True, check=False
    ).stdout.strip()
    result = {
        "command": "python scripts/bench_cold_start.py " + " ".join(sys.argv[1:]),
        "extract_command": "python -m pipeline.cli extract ../shared/seeds --out TMP --quiet",
        "before_rev": args.before,
        "after_rev": after_rev,
        "runs": args.runs,
        "threads": args.threads,
        "precision": args.precision,
        "nproc": os.cpu_count(),
        "nice": os.nice(0),
        "load_start": load_start,
        "load_end": [round(x, 2) for x in os.getloadavg()],
        "table": summarise(runs),
        "raw": runs,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cold_start.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (args.out / "cold_start.md").write_text(to_markdown(result), encoding="utf-8")
    return result


if __name__ == "__main__":
    main()
