"""Batch extraction on Ray Data, for corpora beyond one machine (optional: ``pip install .[scale]``).

The same extraction as ``run_extraction`` (read → extractor.predict → extraction_record), run by a
pool of Ray actors: the documents are cut into groups of ``batch_docs`` (the same groups as the
single-process run), ``map_batches`` sends each group to one of ``workers`` actors of
``ExtractGroups``, which loads the model once in its constructor, and the driver appends each
group's records to the run's journal in input order as they arrive (``extraction_run``: the same
lock, journal, extractions.jsonl, tables and views as a run without Ray).

Each node reads the documents and the model from their paths, so on a cluster both must be on a
file system every node sees (or copied to the same paths). ``address="local"`` starts a local Ray
instance with ``workers`` CPUs and stops it at the end; any other address is passed to
``ray.init(address=...)`` (e.g. ``auto`` or ``ray://head:10001``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.apps.batch import RunSummary, batches, extract_batch, extraction_run, read_or_error
from pipeline.core.errors import SetupError
from pipeline.core.inputs import DocInput, DocumentSet
from pipeline.extractors.extract import Extractor, check_model_arg, load_extractor

if TYPE_CHECKING:
    from pipeline.apps.indicators import Embed

RAY_EXTRA = 'Ray is not installed: pip install -e ".[scale]" (ray[data])'


def extract_group(docs: Sequence[DocInput], extractor: Extractor) -> tuple[list[dict[str, Any]], list[str]]:
    """One group of documents, as one batch of ``run_extraction``: records and read errors."""
    return extract_batch([read_or_error(doc) for doc in docs], extractor)


class ExtractGroups:
    """Ray Data callable class: one extractor per actor, loaded once, applied to every batch of groups."""

    def __init__(self, model: str, options: dict[str, Any]) -> None:
        self.extractor = load_extractor(model, **options)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        out: dict[str, list] = {"group": [], "records": [], "errors": []}
        for group, docs in zip(batch["group"], batch["docs"], strict=True):
            records, errors = extract_group([DocInput(*d) for d in json.loads(docs)], self.extractor)
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


def _group_rows(todo: Iterator[DocInput], batch_docs: int) -> list[dict[str, Any]]:
    return [
        {"group": n, "docs": json.dumps([[d.path, d.root, d.doc_id] for d in batch])}
        for n, batch in enumerate(batches(todo, batch_docs))
    ]


def _results(
    groups: list[dict[str, Any]], model: str, options: dict[str, Any], workers: int, progress: bool
) -> Iterator[dict[str, Any]]:
    """The actors' output rows, in group order, as they come (not all held at once)."""
    import ray

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = progress
    context.execution_options.preserve_order = True  # the journal gets the groups in input order
    dataset = ray.data.from_items(groups, override_num_blocks=len(groups)).map_batches(
        ExtractGroups,
        fn_constructor_kwargs={"model": model, "options": options},
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=min(workers, len(groups))),  # concurrency=N, deprecated
        num_cpus=1,
    )
    yield from dataset.iter_rows()


def run_extraction_ray(
    paths: Sequence[Path | str | DocInput] | DocumentSet,
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
    model folder, with ``options`` for load_extractor) once. Same outputs, same records, same order;
    the driver appends each group to the journal as it arrives."""
    check_model_arg(model)  # on the driver, before any actor starts
    with extraction_run(Path(out_dir), paths, resume, embed, group_threshold) as (journal, todo, _, summary):
        groups = _group_rows(todo, batch_docs)
        if groups:
            we_started = start_ray(address, workers)
            try:
                for row in _results(groups, model, options or {}, workers, progress):
                    records = json.loads(row["records"])
                    journal.append(records)
                    summary.add(records, json.loads(row["errors"]))
            finally:
                if we_started:
                    import ray

                    ray.shutdown()
    return summary
