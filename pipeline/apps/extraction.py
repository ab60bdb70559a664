"""``planie extract`` as one library call: inputs → extractor (or Ray actors) → output folder."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.apps.batch import DOCSET_NAME, RunSummary, run_extraction
from pipeline.core.defaults import DEFAULT_BATCH_SIZE, DEFAULT_PRECISION
from pipeline.core.errors import InputError, MissingModelError, UsageError
from pipeline.core.inputs import DocumentSet
from pipeline.core.outdir import locked_out_dir
from pipeline.extractors.extract import check_model_arg, check_relations_arg, load_extractor

if TYPE_CHECKING:
    from pipeline.apps.indicators import Embed


@dataclass(frozen=True)
class ExtractOptions:
    model: str = "rules"
    relations: str | None = None
    device: str = "cpu"
    batch_size: int = DEFAULT_BATCH_SIZE
    precision: str = DEFAULT_PRECISION
    workers: int = 1
    resume: bool = False
    progress: bool = True
    group_indicators: str = "strings"  # strings | embeddings
    group_threshold: float = 0.9
    embed_model: str | None = None
    ray: str | None = None  # a Ray address ('local' starts one); None: this process
    ray_workers: int = 2


def embed_model_name(opts: ExtractOptions) -> str | None:
    """The encoder folder for indicator grouping (None: the string rules only); a UsageError if
    embeddings are asked for without one."""
    if opts.group_indicators != "embeddings":
        return None
    embed_model = opts.embed_model or (None if opts.model == "rules" else opts.model)
    if embed_model is None:
        raise UsageError(
            "--group-indicators embeddings needs an encoder: with --model rules, "
            "give one with --embed-model DIR (e.g. models/planie-ner)"
        )
    return embed_model


def indicator_embedder(opts: ExtractOptions) -> Embed | None:
    """The encoder embedding indicator names for grouping, or None for the string rules only."""
    embed_model = embed_model_name(opts)
    if embed_model is None:
        return None
    from pipeline.apps.embeddings import load_embedder

    try:
        return load_embedder(embed_model, device=opts.device)
    except (OSError, ValueError) as exc:
        raise MissingModelError(f"cannot load the embedding model {embed_model}: {exc}") from exc


@contextmanager
def run_documents(out: Path, inputs: list[str]) -> Iterator[DocumentSet]:
    """The documents of ``inputs`` in a DocumentSet file in ``out`` (removed at the end); an InputError if none."""
    docs = DocumentSet(str(out / DOCSET_NAME)).add_inputs(inputs)
    try:
        if not docs.count():
            raise InputError(f"no input documents found in {' '.join(inputs)}")
        yield docs
    finally:
        docs.close()
        (out / DOCSET_NAME).unlink(missing_ok=True)


def extract_inputs(inputs: list[str], out_dir: Path, opts: ExtractOptions) -> RunSummary:
    """Extract every document found in ``inputs`` (files, folders, globs) into ``out_dir``.

    Everything that can fail without extracting fails first: usage errors (before the output folder is
    created), no documents, the output folder (a file,
    not writable, in use by another run: its lock is held from here to the end), the model folder,
    the relation model, the device."""
    check_relations_arg(opts.model, opts.relations)  # usage errors before the folder is touched
    embed_model_name(opts)
    with locked_out_dir(out_dir) as out, run_documents(out, inputs) as docs:
        check_model_arg(opts.model, opts.relations, opts.device)
        embed = indicator_embedder(opts)
        options = {"device": opts.device, "batch_size": opts.batch_size, "precision": opts.precision}
        options["relations"] = opts.relations
        grouping = {"embed": embed, "group_threshold": opts.group_threshold, "resume": opts.resume}
        if opts.ray:
            from pipeline.apps.scale import run_extraction_ray

            return run_extraction_ray(
                docs,
                out_dir,
                opts.model,
                options=options,
                address=opts.ray,
                workers=opts.ray_workers,
                progress=opts.progress,
                **grouping,
            )
        extractor = load_extractor(opts.model, **options)
        return run_extraction(docs, out_dir, extractor, workers=opts.workers, progress=opts.progress, **grouping)
