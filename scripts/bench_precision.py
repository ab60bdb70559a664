"""Side-by-side benchmark of the NER encoder's precisions (issue 16): speed, memory, cold start and F1.

    .venv/bin/python scripts/bench_precision.py [--chars 100000] [--rounds 2] [--threads 2] [--no-sweep]

Every measurement runs in a child process of its own (``--child``), so peak RSS and cold start are that
process's. Per precision (``pipeline.extractors.precision.PRECISIONS``):

- cold start: child process start → first record of a run on the seeds (the five seeds are the first
  batch of ``run_extraction``, so its first record comes when all five are extracted); the model load and
  the imports separately;
- end to end: extraction (pieces, encoder, Viterbi/CRF decoding, span rules, rules linker, records) of the
  seeds repeated to ``--chars`` characters, in batches of 8 documents as ``planie extract`` does, without
  writing files; chars/s;
- encoder forward only: the same run's characters over the seconds spent in the encoder forward
  (``NerModel.forward``, timed around each batch);
- peak RSS of the child after the end-to-end run (``ru_maxrss``);
- F1 (first round only): ``planie evaluate``'s scoring (strict entity micro-F1, relations end to end) on
  the held-out split (annotations/003_*, 004_*) and on all gold documents.

With ``--cv RUN`` (a ``planie cv --keep-models`` run folder) it measures F1 only: every variant on every
fold's test documents with that fold's model, pooled over the folds (``precision_cv.md``/``.json``):

    nice -n 19 .venv/bin/python scripts/bench_precision.py --cv runs/cv-province

Variants are interleaved (round 1: A B C D E, round 2: B C D E A, ...) so that load from other processes
touches all of them alike; the table reports each as a ratio to bf16 (today's default) in the same run.
Then, for the fastest variant within 0.3 F1 points, a sweep of batch size, chunk length and threads.
The ONNX files are built (once, timed) before the timed runs. Writes scripts/results/bench_precision.json
and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SEEDS = REPO.parent / "shared" / "seeds"
sys.path.insert(0, str(REPO))

from pipeline.core.defaults import DEFAULT_BATCH_SIZE  # noqa: E402
from pipeline.extractors.precision import INSTALL_HINT, onnxruntime_available  # noqa: E402

DEFAULT = "bf16"
VARIANTS = ("fp32", "bf16", "int8", "onnx", "onnx-int8")
HELDOUT = ("003_", "004_")
F1_RULE = 0.003  # a faster variant counts only if its F1 drops by at most 0.3 points
SWEEP_BATCH = (8, 16, 32, 64)
SWEEP_CHUNK = (4096, 65536)


# ----------------------------------------------------------------------------------------------------
# child side


def _rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


class TimedForward:
    """Wraps NerModel.forward: seconds spent in the encoder forward, batches and padded tokens."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.seconds, self.batches, self.tokens = inner, 0.0, 0, 0
        self.precision = inner.precision

    def __call__(self, input_ids: Any, attention_mask: Any) -> Any:
        start = time.perf_counter()
        out = self.inner(input_ids, attention_mask)
        self.seconds += time.perf_counter() - start
        self.batches += 1
        self.tokens += int(input_ids.size)
        return out

    def reset(self) -> None:
        self.seconds, self.batches, self.tokens = 0.0, 0, 0


def _extract_run(extractor: Any, docs: list[Any]) -> tuple[float, int]:
    """As run_extraction: batches of 8 documents → records; seconds and characters."""
    from pipeline.extractors.extract import extract_documents
    from pipeline.extractors.records import extraction_record

    start = time.perf_counter()
    chars = 0
    for i in range(0, len(docs), 8):
        for doc in extract_documents(docs[i : i + 8], extractor):
            extraction_record(doc, extractor)
            chars += len(doc.text)
    return time.perf_counter() - start, chars


def _f1(extractor: Any, gold: list[Any]) -> dict[str, float]:
    from pipeline.core.schema import load_schema
    from pipeline.evaluation.report import evaluate_extractor

    report = evaluate_extractor(gold, extractor, load_schema(), "bench", with_baseline=False)
    m = report.metrics
    return {"entities_micro_f1": m["entities"]["micro"]["f1"], "relations_micro_f1": m["relations"]["micro"]["f1"]}


def child_main(args: argparse.Namespace) -> None:
    t_spawn = args.spawned_at
    load_start = os.getloadavg()[0]
    t0 = time.time()
    from pipeline.core.documents import read_document
    from pipeline.extractors.extract import extract_documents, load_extractor
    from pipeline.extractors.records import extraction_record

    t_imports = time.time()
    extractor = load_extractor(args.model, precision=args.child, batch_size=args.batch_size)
    ner = extractor.ner  # type: ignore[attr-defined]
    ner.chunk_pieces = args.chunk_pieces
    t_loaded = time.time()
    seeds = [read_document(p) for p in sorted(SEEDS.glob("*.txt"))]
    first = extract_documents(seeds[:8], extractor)
    extraction_record(first[0], extractor)
    t_first = time.time()
    result: dict[str, Any] = {
        "variant": args.child,
        "ran_as": ner.precision,
        "threads": int(os.environ.get("OMP_NUM_THREADS", "0")),
        "batch_size": ner.batch_size,
        "chunk_pieces": ner.chunk_pieces,
        "python_start_to_main_s": round(t0 - t_spawn, 3),
        "imports_s": round(t_imports - t0, 3),
        "model_load_s": round(t_loaded - t_imports, 3),
        "first_batch_s": round(t_first - t_loaded, 3),
        "cold_start_s": round(t_first - t_spawn, 3),
        "rss_after_cold_start_mb": _rss_mb(),
    }
    timed = TimedForward(ner.forward)
    ner.forward = timed
    corpus = [read_document(p) for p in sorted(Path(args.corpus).glob("*.txt"))]
    shapes = [(args.batch_size, args.chunk_pieces)]
    if args.sweep:
        shapes = [(b, 16384) for b in SWEEP_BATCH] + [(32, c) for c in SWEEP_CHUNK]
    runs: dict[str, list[dict[str, float]]] = {f"{b}x{c}": [] for b, c in shapes}
    for _ in range(args.repeats):
        for b, c in shapes:
            ner.batch_size, ner.chunk_pieces = b, c
            timed.reset()
            seconds, chars = _extract_run(extractor, corpus)
            runs[f"{b}x{c}"].append(
                {
                    "seconds": round(seconds, 3),
                    "chars": chars,
                    "chars_per_s": round(chars / seconds),
                    "forward_s": round(timed.seconds, 3),
                    "forward_chars_per_s": round(chars / timed.seconds),
                    "batches": timed.batches,
                    "padded_tokens": timed.tokens,
                }
            )
    result["runs"] = runs
    result["peak_rss_mb"] = _rss_mb()
    if args.f1:
        from pipeline.core.annotations import load_gold_dir

        ner.forward = timed.inner
        ner.batch_size, ner.chunk_pieces = args.batch_size, args.chunk_pieces
        gold = load_gold_dir([REPO / "annotations"])
        result["f1_heldout"] = _f1(extractor, [d for d in gold if d.doc_id.startswith(HELDOUT)])
        if args.f1_all:
            result["f1_all_gold"] = _f1(extractor, gold)
        result["gold_docs"] = {"heldout": sum(d.doc_id.startswith(HELDOUT) for d in gold), "all": len(gold)}
    result["load_average_1min"] = [round(load_start, 2), round(os.getloadavg()[0], 2)]
    print("RESULT " + json.dumps(result), flush=True)


# ----------------------------------------------------------------------------------------------------
# parent side


def make_corpus(folder: Path, target_chars: int) -> tuple[int, int]:
    """The seeds repeated (whole documents) until ``target_chars``: (documents, characters)."""
    seeds = sorted(SEEDS.glob("*.txt"))
    total = n = 0
    while total < target_chars:
        seed = seeds[n % len(seeds)]
        text = seed.read_text(encoding="utf-8")
        (folder / f"{n:04d}_{seed.name}").write_text(text, encoding="utf-8")
        total += len(text)
        n += 1
    return n, total


def spawn(variant: str, corpus: Path, args: argparse.Namespace, threads: int, *extra: str) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, __file__, "--child", variant, "--corpus", str(corpus), "--model", args.model, *extra]
    spawned = time.time()
    proc = subprocess.run(
        [*cmd, "--spawned-at", repr(spawned)], cwd=REPO, env=env, capture_output=True, text=True, check=False
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"child {variant} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    wall = time.time() - spawned
    result = json.loads(lines[-1][len("RESULT ") :])
    result["child_wall_s"] = round(wall, 2)
    warnings = [ln for ln in proc.stderr.splitlines() if ln.startswith("planie:")]
    if warnings:
        result["messages"] = warnings
    print(f"  {variant:10s} threads={threads} {json.dumps(_brief(result))}", flush=True)
    return result


def _brief(r: dict[str, Any]) -> dict[str, Any]:
    first = next(iter(r["runs"].values()))[0]
    return {"cold_s": r["cold_start_s"], "e2e": first["chars_per_s"], "fwd": first["forward_chars_per_s"]}


def prepare(args: argparse.Namespace) -> dict[str, Any]:
    """Build the cached ONNX files before anything is timed (in a child: its memory is not the runs')."""
    code = (
        "import json, sys, time\n"
        "from pathlib import Path\n"
        "from pipeline.extractors.ner import load_token_classifier\n"
        "from pipeline.extractors import precision as pr\n"
        "d = Path(sys.argv[1]); out = {}\n"
        "for q in (False, True):\n"
        "    t = time.perf_counter()\n"
        "    p = pr.onnx_artifact(d, q, lambda: load_token_classifier(d))\n"
        "    out[p.name] = {'seconds': round(time.perf_counter() - t, 2), 'bytes': p.stat().st_size, 'path': str(p)}\n"
        "print('RESULT ' + json.dumps(out))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, args.model], cwd=REPO, capture_output=True, text=True, check=False
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"ONNX export failed:\n{proc.stderr[-3000:]}")
    built = "planie: exporting" in proc.stderr
    return {"built_now": built, "files": json.loads(lines[-1][7:])}


def _median(rows: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def summarise(results: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = {}
    for v, runs in results.items():
        e2e = [row for r in runs for row in r["runs"].values() for row in row]
        f1 = next(r for r in runs if "f1_heldout" in r)
        table[v] = {
            "e2e_chars_per_s": round(_median(e2e, "chars_per_s")),
            "e2e_chars_per_s_best": max(row["chars_per_s"] for row in e2e),
            "forward_chars_per_s": round(_median(e2e, "forward_chars_per_s")),
            "forward_chars_per_s_best": max(row["forward_chars_per_s"] for row in e2e),
            "encoder_share": round(_median(e2e, "forward_s") / _median(e2e, "seconds"), 3),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
            "cold_start_s": statistics.median(r["cold_start_s"] for r in runs),
            "cold_start_s_min": min(r["cold_start_s"] for r in runs),
            "imports_s": statistics.median(r["imports_s"] for r in runs),
            "model_load_s": statistics.median(r["model_load_s"] for r in runs),
            "first_batch_s": statistics.median(r["first_batch_s"] for r in runs),
            "f1_heldout": f1["f1_heldout"],
            "f1_all_gold": f1.get("f1_all_gold"),
            "ran_as": runs[0]["ran_as"],
        }
    base = table[DEFAULT]
    for row in table.values():
        row["e2e_ratio"] = round(row["e2e_chars_per_s"] / base["e2e_chars_per_s"], 2)
        row["forward_ratio"] = round(row["forward_chars_per_s"] / base["forward_chars_per_s"], 2)
        row["cold_start_ratio"] = round(row["cold_start_s"] / base["cold_start_s"], 2)
        deltas = {}
        for split in ("f1_heldout", "f1_all_gold"):
            if row[split] is None:
                continue
            for k in ("entities_micro_f1", "relations_micro_f1"):
                deltas[f"{split}.{k}"] = round((row[split][k] - base[split][k]) * 100, 2)
        row["f1_delta_points"] = deltas
        row["qualifies"] = all(d >= -F1_RULE * 100 for k, d in deltas.items() if k.startswith("f1_heldout"))
    return table


def to_markdown(res: dict[str, Any]) -> str:
    m, t = res["machine"], res["table"]
    lines = [
        "# NER encoder precisions side by side (issue 16)",
        "",
        f"Command: `{res['command']}`. Machine: {m['nproc']} CPUs ({m['cpu']}), torch {m['torch']}, "
        f"onnxruntime {m['onnxruntime']}, Python {m['python']}; **shared with other engineers' jobs** "
        f"(1-min load average {m['load_average_start']} at the start, {m['load_average_end']} at the end, "
        "per-child values in the JSON), so absolute numbers are pessimistic and noisy: compare the ratios to "
        "bf16 (today's default) measured in the same run.",
        "",
        f"Data: the five seeds repeated to {res['corpus_chars']:,} characters ({res['corpus_docs']} documents); "
        f"{res['rounds']} rounds, each a fresh child process per variant, order rotated per round "
        f"({', '.join(res['order'])}); OMP_NUM_THREADS={res['threads']}, batch {res['batch_size']}, "
        f"chunk {res['chunk_pieces']} pieces. Medians over the rounds.",
        "",
        "| variant | e2e chars/s | ratio | encoder-only chars/s | ratio | encoder share | peak RSS MB "
        "| cold start s (ratio) | ΔF1 ent held-out | ΔF1 rel held-out | ΔF1 ent all gold | ΔF1 rel all gold "
        "| ≤ 0.3 pt |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for v, r in t.items():
        d = r["f1_delta_points"]
        lines.append(
            f"| {v} | {r['e2e_chars_per_s']:,} | {r['e2e_ratio']:.2f} | {r['forward_chars_per_s']:,} "
            f"| {r['forward_ratio']:.2f} | {r['encoder_share']:.0%} | {r['peak_rss_mb']:.0f} "
            f"| {r['cold_start_s']:.2f} ({r['cold_start_ratio']:.2f}) "
            f"| {d['f1_heldout.entities_micro_f1']:+.2f} | {d['f1_heldout.relations_micro_f1']:+.2f} "
            f"| {_delta(d, 'f1_all_gold.entities_micro_f1')} | {_delta(d, 'f1_all_gold.relations_micro_f1')} "
            f"| {'yes' if r['qualifies'] else 'no'} |"
        )
    b = t[DEFAULT]
    lines += [
        "",
        f"F1 of bf16 (the reference): held-out entities {b['f1_heldout']['entities_micro_f1']:.4f}, relations "
        f"{b['f1_heldout']['relations_micro_f1']:.4f}"
        + (
            f"; all gold entities {b['f1_all_gold']['entities_micro_f1']:.4f}, "
            f"relations {b['f1_all_gold']['relations_micro_f1']:.4f}"
            if b["f1_all_gold"]
            else " (all gold: not run, `--f1-all`)"
        )
        + ". ΔF1 in points (×100). The shipped model was "
        "trained on all 12 gold documents (planie.json `train_docs`), 003/004 included: its absolute scores "
        "there are training-set scores, and the deltas measure how far each variant moves the same weights' "
        "predictions, which is what the 0.3-point rule is about.",
        "",
        "Cold start = child process start → first record on the seeds (imports, model load, the first batch "
        "= the five seeds, 43,901 characters):",
        "",
        "| variant | imports s | model load s | first batch s | cold start s (min) |",
        "|---|---|---|---|---|",
        *(
            f"| {v} | {r['imports_s']:.2f} | {r['model_load_s']:.2f} | {r['first_batch_s']:.2f} "
            f"| {r['cold_start_s']:.2f} ({r['cold_start_s_min']:.2f}) |"
            for v, r in t.items()
        ),
        "",
        f"ONNX export (once, cached beside the model): {json.dumps(res['onnx_build'])}.",
    ]
    if res.get("sweep"):
        s = res["sweep"]
        lines += [
            "",
            f"## Batch shape and threads for {s['variant']}",
            "",
            f"One child per thread count; in it, each shape runs the corpus {s['repeats']}× (shapes interleaved). "
            "Median chars/s.",
            "",
            "| threads | batch × chunk | e2e chars/s | encoder-only chars/s | batches | padded tokens |",
            "|---|---|---|---|---|---|",
        ]
        for threads, r in s["by_threads"].items():
            for shape, rows in r["runs"].items():
                lines.append(
                    f"| {threads} | {shape} | {round(_median(rows, 'chars_per_s')):,} "
                    f"| {round(_median(rows, 'forward_chars_per_s')):,} | {rows[0]['batches']} "
                    f"| {rows[0]['padded_tokens']:,} |"
                )
        lines += [
            "",
            f"Encoder forward-only limit on this machine (best shape, {s['variant']}): "
            f"{s['forward_limit_chars_per_s']:,} chars/s (median; best single run "
            f"{s['forward_limit_best_chars_per_s']:,}).",
        ]
    return "\n".join(lines) + "\n"


def _delta(deltas: dict[str, float], key: str) -> str:
    return f"{deltas[key]:+.2f}" if key in deltas else "–"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--chars", type=int, default=100_000)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    p.add_argument("--chunk-pieces", type=int, default=16384)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--model", default=str(REPO / "models" / "planie-ner"))
    p.add_argument("--out", type=Path, default=REPO / "scripts" / "results")
    p.add_argument("--f1-all", action="store_true", help="also score on all gold documents (all seen in training)")
    p.add_argument("--no-sweep", dest="sweep", action="store_false")
    p.add_argument("--sweep-repeats", type=int, default=1)
    p.add_argument("--sweep-variant", help="default: the fastest variant within 0.3 F1 points")
    p.add_argument(
        "--cv",
        metavar="RUN",
        help="instead: F1 of each variant on the folds of a `planie cv --keep-models` run (RUN/folds.json, "
        "RUN/FOLD/model); writes precision_cv.md/.json",
    )
    p.add_argument("--annotations", default=str(REPO / "annotations"), help="with --cv: the gold exports")
    p.add_argument(
        "--work", default=str(Path(tempfile.gettempdir()) / "bench_precision_cv"), help="with --cv: model copies"
    )
    # child mode
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--corpus", help=argparse.SUPPRESS)
    p.add_argument("--spawned-at", type=float, help=argparse.SUPPRESS)
    p.add_argument("--f1", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--repeats", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--sweep-shapes", dest="sweep_shapes", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        args.sweep = args.sweep_shapes
        child_main(args)
        return
    if args.cv:
        cv_main(args)
        return
    import onnxruntime
    import torch

    started = time.time()
    machine = {
        "nproc": os.cpu_count(),
        "cpu": _cpu_name(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
    }
    variants = args.variants.split(",")
    wants_onnx = any(v.startswith("onnx") for v in variants)
    if wants_onnx and not onnxruntime_available():
        raise SystemExit(f"the onnx variants need onnxruntime: {INSTALL_HINT} (or --variants fp32,bf16,int8)")
    onnx_build = prepare(args) if wants_onnx else {}
    tmp = Path(tempfile.mkdtemp(prefix="bench_precision_"))
    try:
        corpus = tmp / "corpus"
        corpus.mkdir()
        docs, chars = make_corpus(corpus, args.chars)
        common = ["--batch-size", str(args.batch_size), "--chunk-pieces", str(args.chunk_pieces)]
        results: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
        order = []
        for r in range(args.rounds):
            rotated = variants[r % len(variants) :] + variants[: r % len(variants)]
            order.append(" ".join(rotated))
            print(f"round {r + 1}: {' '.join(rotated)}", flush=True)
            for v in rotated:
                extra = [*common, *(["--f1"] if r == 0 else []), *(["--f1-all"] if r == 0 and args.f1_all else [])]
                results[v].append(spawn(v, corpus, args, args.threads, *extra))
        table = summarise(results)
        sweep = None
        if args.sweep:
            qualifying = [v for v in variants if table[v]["qualifies"]]
            best = args.sweep_variant or max(qualifying, key=lambda v: table[v]["e2e_chars_per_s"])
            print(f"sweep: {best}", flush=True)
            by_threads = {}
            for threads in (1, 2):
                extra = [*common, "--repeats", str(args.sweep_repeats), *(["--sweep-shapes"] if threads == 2 else [])]
                by_threads[str(threads)] = spawn(best, corpus, args, threads, *extra)
            rows = by_threads["2"]["runs"]
            best_shape = max(rows, key=lambda k: _median(rows[k], "forward_chars_per_s"))
            sweep = {
                "variant": best,
                "repeats": args.sweep_repeats,
                "by_threads": by_threads,
                "best_forward_shape": best_shape,
                "forward_limit_chars_per_s": round(_median(rows[best_shape], "forward_chars_per_s")),
                "forward_limit_best_chars_per_s": max(row["forward_chars_per_s"] for row in rows[best_shape]),
            }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    machine["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    argv = " ".join(sys.argv[1:])
    result = {
        "command": f".venv/bin/python scripts/bench_precision.py {argv}".strip(),
        "machine": machine,
        "corpus_chars": chars,
        "corpus_docs": docs,
        "rounds": args.rounds,
        "order": order,
        "threads": args.threads,
        "batch_size": args.batch_size,
        "chunk_pieces": args.chunk_pieces,
        "onnx_build": onnx_build,
        "table": table,
        "sweep": sweep,
        "raw": results,
        "wall_s": round(time.time() - started, 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_precision.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (args.out / "bench_precision.md").write_text(to_markdown(result), encoding="utf-8")
    print(to_markdown(result))


# ----------------------------------------------------------------------------------------------------
# --cv RUN: F1 per precision on the test documents of each fold of a `planie cv --keep-models` run


def cv_main(args: argparse.Namespace) -> None:
    """Score every variant on every fold's test documents with that fold's model (copied to ``--work``
    first: an ONNX export is cached beside the model, and the run folder is not ours to write), then
    pool tp/fp/fn over the folds as ``planie cv`` does and report ΔF1 vs bf16."""
    from pipeline.core.schema import load_schema
    from pipeline.evaluation.report import evaluate_extractor
    from pipeline.extractors.extract import ModelExtractor
    from pipeline.training.splits import gold_groups

    run = Path(args.cv)
    folds = json.loads((run / "folds.json").read_text(encoding="utf-8"))
    docs, _ = gold_groups(args.annotations, folds["group"])
    schema = load_schema()
    variants = args.variants.split(",")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    done_path = work / "scores.json"  # resumable: (fold, variant) pairs already scored
    done: dict[str, Any] = json.loads(done_path.read_text(encoding="utf-8")) if done_path.exists() else {}
    load_start = [round(x, 2) for x in os.getloadavg()]
    for fold in folds["folds"]:
        name = fold["name"]
        source = run / name / "model"
        if not source.is_dir():
            raise SystemExit(f"{source}: missing (run planie cv with --keep-models)")
        model = work / name / "model"
        if not model.is_dir():
            shutil.copytree(source, model, ignore=shutil.ignore_patterns("onnx", "training_args.bin"))
        test = [docs[d] for d in fold["test"]]
        reference = json.loads((run / name / "metrics.json").read_text(encoding="utf-8"))
        for v in variants:
            key = f"{name}/{v}"
            if key in done:
                continue
            started = time.perf_counter()
            extractor = ModelExtractor(model, precision=v)
            loaded = time.perf_counter()
            report = evaluate_extractor(test, extractor, schema, f"{name} {v}", with_baseline=False, progress=False)
            m = report.metrics
            done[key] = {
                "fold": name,
                "variant": v,
                "ran_as": extractor.ner.precision,
                "docs": len(test),
                "chars": sum(len(d.text) for d in test),
                "load_s": round(loaded - started, 2),
                "score_s": round(time.perf_counter() - loaded, 2),
                "entities": m["entities"],
                "relations": m["relations"],
                "targets": m["targets"],
                "same_as_cv_metrics": all(m[sec] == reference[sec] for sec in ("entities", "relations", "targets")),
            }
            done_path.write_text(json.dumps(done, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
            d = done[key]
            print(
                f"{key}: entities micro F1 {m['entities']['micro']['f1']:.4f}, relations "
                f"{m['relations']['micro']['f1']:.4f} ({d['score_s']:.0f} s; same as cv: {d['same_as_cv_metrics']})",
                flush=True,
            )
    result = {
        "command": "python scripts/bench_precision.py " + " ".join(sys.argv[1:]),
        "run": str(run),
        "group": folds["group"],
        "k": folds["k"],
        "seed": folds["seed"],
        "variants": variants,
        "load_average_start": load_start,
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "nproc": os.cpu_count(),
        "pooled": pool_cv(done, variants, [f["name"] for f in folds["folds"]]),
        "per_fold": done,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "precision_cv.json").write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", "utf-8")
    (args.out / "precision_cv.md").write_text(cv_markdown(result), encoding="utf-8")
    print(cv_markdown(result))


def pool_cv(done: dict[str, Any], variants: list[str], folds: list[str]) -> dict[str, Any]:
    """Per variant and section: tp/fp/fn summed over the folds (PRF), and ΔF1 in points vs bf16."""
    from pipeline.core.metrics import PRF

    def section(fold: str, v: str, sec: str) -> dict[str, Any]:  # targets: one cell, as planie cv keeps it
        cell = done[f"{fold}/{v}"][sec]
        return {"triples": cell} if sec == "targets" else cell

    pooled: dict[str, Any] = {}
    for v in variants:
        pooled[v] = {}
        for sec in ("entities", "relations", "targets"):
            labels = list(section(folds[0], v, sec))
            cells = {lab: [section(f, v, sec)[lab] for f in folds] for lab in labels}
            pooled[v][sec] = {
                lab: PRF(*(sum(c[k] for c in cs) for k in ("tp", "fp", "fn"))).as_dict() for lab, cs in cells.items()
            }
    base = pooled[DEFAULT]
    for v in variants:
        pooled[v]["delta_f1_points"] = {
            f"{sec}.{lab}": round((pooled[v][sec][lab]["f1"] - base[sec][lab]["f1"]) * 100, 2)
            for sec in ("entities", "relations", "targets")
            for lab in pooled[v][sec]
        }
        d = pooled[v]["delta_f1_points"]
        pooled[v]["qualifies"] = d["entities.micro"] >= -F1_RULE * 100 and d["relations.micro"] >= -F1_RULE * 100
    return pooled


def cv_markdown(res: dict[str, Any]) -> str:
    p, variants = res["pooled"], res["variants"]
    folds = sorted({r["fold"] for r in res["per_fold"].values()})
    labels = [lab for lab in p[DEFAULT]["entities"] if lab != "micro"]
    rel_labels = [lab for lab in p[DEFAULT]["relations"] if lab != "micro"]
    n_docs = sum(res["per_fold"][f"{f}/{DEFAULT}"]["docs"] for f in folds)
    n_chars = sum(res["per_fold"][f"{f}/{DEFAULT}"]["chars"] for f in folds)
    lines = [
        "# Encoder precisions: F1 on province-grouped cross-validation folds (issue 16)",
        "",
        f"Command: `{res['command']}` (under `nice -n 19`). Run: `{res['run']}` (`planie cv --group {res['group']} "
        f"--folds {res['k']} --keep-models`, seed {res['seed']}): each fold's model scores that fold's test "
        f"documents ({n_docs} documents, {n_chars:,} characters over {len(folds)} folds, none seen in training), "
        "once per precision, with `evaluate_extractor` as `planie cv` scores (strict entity spans; relations end "
        "to end, the rules linker on the predicted entities; target triples). The fold models were copied to a "
        "work folder first (the ONNX files are cached beside the model). Pooled: tp/fp/fn summed over the folds.",
        "",
        "bf16 reproduces each fold's `metrics.json` of the cv run: "
        + ", ".join(f"{f} {'yes' if res['per_fold'][f'{f}/{DEFAULT}']['same_as_cv_metrics'] else 'NO'}" for f in folds)
        + ".",
        "",
        "## ΔF1 vs bf16, pooled, in points (×100)",
        "",
        "| variant | entities micro F1 | Δ entities | "
        + " | ".join(f"Δ {lab}" for lab in labels)
        + " | relations micro F1 | Δ relations | "
        + " | ".join(f"Δ {lab}" for lab in rel_labels)
        + " | Δ target triples | ≤ 0.3 pt |",
        "|---" * (6 + len(labels) + len(rel_labels)) + "|",
    ]
    for v in variants:
        d, q = p[v]["delta_f1_points"], p[v]
        lines.append(
            f"| {v} | {q['entities']['micro']['f1']:.4f} | {d['entities.micro']:+.2f} | "
            + " | ".join(f"{d[f'entities.{lab}']:+.2f}" for lab in labels)
            + f" | {q['relations']['micro']['f1']:.4f} | {d['relations.micro']:+.2f} | "
            + " | ".join(f"{d[f'relations.{lab}']:+.2f}" for lab in rel_labels)
            + f" | {d['targets.triples']:+.2f} | {'yes' if q['qualifies'] else 'no'} |"
        )
    lines += [
        "",
        "## Entity micro F1 per fold",
        "",
        "| fold | docs | " + " | ".join(variants) + " |",
        "|---" * (2 + len(variants)) + "|",
    ]
    for f in folds:
        r = res["per_fold"]
        lines.append(
            f"| {f} | {r[f'{f}/{DEFAULT}']['docs']} | "
            + " | ".join(f"{r[f'{f}/{v}']['entities']['micro']['f1']:.4f}" for v in variants)
            + " |"
        )
    lines += [
        "",
        f"Machine: {res['nproc']} CPUs shared with a training job (1-min load average {res['load_average_start']} "
        f"at the start, {res['load_average_end']} at the end); the F1 values do not depend on the load, the "
        "seconds in the JSON (`score_s`) do.",
    ]
    return "\n".join(lines) + "\n"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


if __name__ == "__main__":
    main()
