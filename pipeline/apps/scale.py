"""Batch extraction on Ray Data, for corpora beyond one machine (optional: ``pip install .[scale]``).

The same extraction as ``run_extraction`` (read → extractor.predict → extraction_record), run by a
pool of Ray actors: the input paths are cut into groups of ``batch_docs`` documents (the same groups
as the single-process run), ``map_batches`` sends each group to one of ``workers`` actors of ``ExtractGroups``, which
loads the model once in its constructor, and the driver collects the records in input order, writes
``extractions.jsonl`` atomically and builds the same tables and views (``write_tables_and_views``).

Each node reads the documents and the model from their paths, so on a cluster both must be on a
file system every node sees (or copied to the same paths). ``address="local"`` starts a local Ray
instance with ``workers`` CPUs and stops it at the end; any other address is passed to
``ray.init(address=...)`` (e.g. ``auto`` or ``ray://head:10001``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.apps.batch import RunSummary, finish_run, read_or_error, start_run
from pipeline.extractors.extract import Extractor, check_model_arg, extract_documents, load_extractor
from pipeline.extractors.records import extraction_record

if TYPE_CHECKING:
    from pipeline.apps.views import Embed
from pipeline.core.errors import SetupError

RAY_EXTRA = 'Ray is not installed: pip install -e ".[scale]" (ray[data])'


def extract_group(paths: Sequence[str], extractor: Extractor) -> tuple[list[dict[str, Any]], list[str]]:
    """One group of documents, as one batch of ``run_extraction``: records and read errors."""
    batch = [read_or_error(path) for path in paths]
    errors = [b for b in batch if isinstance(b, str)]
    documents = [b for b in batch if not isinstance(b, str)]
    return [extraction_record(doc, extractor) for doc in extract_documents(documents, extractor)], errors


class ExtractGroups:
    """Ray Data callable class: one extractor per actor, loaded once, applied to every batch of groups."""

    def __init__(self, model: str, options: dict[str, Any]) -> None:
        self.extractor = load_extractor(model, **options)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        out: dict[str, list] = {"group": [], "records": [], "errors": []}
        for group, paths in zip(batch["group"], batch["paths"], strict=True):
            records, errors = extract_group(json.loads(paths), self.extractor)
            out["group"].append(int(group))
            out["records"].append(json.dumps(records, ensure_ascii=False))
            out["errors"].append(json.dumps(errors, ensure_ascii=False))
        return out


def start_ray(address: str, workers: int) -> bool:
    """Connect to (or, for 'local', start) Ray; True if this call started it."""
    try:
        import ray
    except ImportError as exc:
        raise SetupError(RAY_EXTRA) from exc
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage reports sent anywhere
    if address == "local":
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    else:
        ray.init(address=address, log_to_driver=False)
    return True


def run_extraction_ray(
    paths: Sequence[Path],
    out_dir: Path,
    model: str,
    *,
    options: dict[str, Any] | None = None,
    address: str = "local",
    workers: int = 2,
    batch_docs: int = 8,
    resume: bool = False,
    progress: bool = True,
    embed: Embed | None = None,
    group_threshold: float = 0.9,
) -> RunSummary:
    """``run_extraction`` on Ray Data with ``workers`` actors, each loading ``model`` ('rules' or a
    model folder, with ``options`` for load_extractor) once. Same outputs, same records, same order."""
    check_model_arg(model)  # on the driver, before any actor starts
    started_at = time.perf_counter()
    out_dir = Path(out_dir)
    records, summary, pending = start_run(out_dir, paths, resume)
    todo = [str(p) for p in pending]
    groups = [
        {"group": n, "paths": json.dumps(todo[i : i + batch_docs], ensure_ascii=False)}
        for n, i in enumerate(range(0, len(todo), batch_docs))
    ]
    if groups:
        import ray

        we_started = start_ray(address, workers)
        try:
            ray.data.DataContext.get_current().enable_progress_bars = progress
            results = (
                ray.data.from_items(groups, override_num_blocks=len(groups))
                .map_batches(
                    ExtractGroups,
                    fn_constructor_kwargs={"model": model, "options": options or {}},
                    batch_size=1,
                    compute=ray.data.ActorPoolStrategy(size=min(workers, len(groups))),  # concurrency=N, deprecated
                    num_cpus=1,
                )
                .take_all()
            )
        finally:
            if we_started:
                ray.shutdown()
        for row in sorted(results, key=lambda r: r["group"]):
            new = json.loads(row["records"])
            records += new
            summary.errors += json.loads(row["errors"])
            summary.extracted += len(new)
            summary.chars += sum(len(r["text"]) for r in new)
    finish_run(out_dir, records, summary, embed, group_threshold)
    summary.seconds = time.perf_counter() - started_at
    return summary
