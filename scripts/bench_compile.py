"""torch.compile (inductor, dynamic shapes) against eager for the shipped encoder's bf16 forward (issue 16).

    .venv/bin/python scripts/bench_compile.py [--out scripts/results]

The seeds (twice) go through `NerModel.predict` once to record the exact batches `planie extract` runs
(default batch size); then, in one process, the encoder forward alone on those batches: eager twice,
the first compiled call (compile time), compiled twice, eager once more. Writes bench_compile.json/.md.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def forward_seconds(model: Any, batches: list, torch: Any) -> float:
    start = time.perf_counter()
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        for ids, mask in batches:
            model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))
    return round(time.perf_counter() - start, 2)


def recorded_batches(model: Any, texts: list[str]) -> list:
    batches, forward = [], model.forward

    def record(ids: Any, mask: Any) -> Any:
        batches.append((ids.copy(), mask.copy()))
        return forward(ids, mask)

    model.forward = record
    model.predict(texts)
    model.forward = forward
    return batches


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "scripts" / "results"))
    args = ap.parse_args()
    import torch

    from pipeline.extractors.ner import NerModel

    texts = [p.read_text(encoding="utf-8") for p in sorted((REPO.parent / "shared" / "seeds").glob("*.txt"))] * 2
    ner = NerModel(REPO / "models" / "planie-ner")
    batches = recorded_batches(ner, texts)
    eager = ner.model

    def timed(model: Any) -> float:
        return forward_seconds(model, batches, torch)

    res: dict[str, Any] = {"omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
    res["torch_threads"] = torch.get_num_threads()
    res["batches"] = len(batches)
    res["chars"] = sum(len(t) for t in texts)
    res["eager_s"] = [timed(eager), timed(eager)]
    compiled = torch.compile(eager, dynamic=True)
    start = time.perf_counter()
    forward_seconds(compiled, batches[:1], torch)
    res["compile_first_call_s"] = round(time.perf_counter() - start, 1)
    res["compiled_s"] = [timed(compiled), timed(compiled)]
    res["eager_s"].append(timed(eager))
    res["speedup_best"] = round(min(res["eager_s"]) / min(res["compiled_s"]), 3)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_compile.json").write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    prefix = f"OMP_NUM_THREADS={res['omp_num_threads']} " if res["omp_num_threads"] else ""
    md = [
        "# torch.compile vs eager, bf16 encoder forward (issue 16)",
        "",
        f"Command: `{prefix}.venv/bin/python scripts/bench_compile.py`; {res['torch_threads']} torch threads, "
        f"{res['batches']} batches, {res['chars']:,} characters (the seeds twice), one process.",
        "",
        "| | seconds per pass |",
        "|---|---|",
        f"| eager (passes 1, 2, and after the compiled ones) | {', '.join(map(str, res['eager_s']))} |",
        f"| compiled: first call (compilation) | {res['compile_first_call_s']} |",
        f"| compiled (passes 1, 2; pass 1 recompiles for new shapes) | {', '.join(map(str, res['compiled_s']))} |",
        "",
        f"Best eager / best compiled: {res['speedup_best']}×.",
    ]
    (out / "bench_compile.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    print(out / "bench_compile.md")


if __name__ == "__main__":
    main()
