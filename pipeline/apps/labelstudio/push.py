"""Push: documents (or selected paragraphs) as Label Studio tasks with model pre-annotations."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.apps.labelstudio.client import LabelStudioClient, LabelStudioError, LSAPIError
from pipeline.core.annotations import (
    AnnotatedDoc,
    Relation,
    Span,
    load_export_tasks,
    pick_annotation,
    result_items,
)
from pipeline.core.documents import (
    Document,
    Segment,
    first_difference,
)
from pipeline.core.files import json_files
from pipeline.core.schema import Schema, label_studio_config
from pipeline.extractors.extract import iter_extract


def model_version(extractor: Any) -> str:
    """``<ner>+<relations>``, plus a fingerprint of the weights for a model folder, so a model
    retrained into the same folder is a new version (its predictions are pushed again)."""
    version = f"{extractor.ner_id}+{extractor.relations_id}"
    model_dir = getattr(getattr(extractor, "ner", None), "model_dir", None)
    if model_dir is not None:
        import hashlib

        digest = hashlib.sha256()
        for f in sorted(Path(model_dir).glob("*")):
            if f.suffix in (".safetensors", ".bin", ".json") and f.is_file():
                digest.update(f.name.encode())
                with f.open("rb") as fh:
                    for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                        digest.update(block)
        version += f"@{digest.hexdigest()[:8]}"
    return version


def prediction_items(spans: Sequence[Span], relations: Sequence[Relation]) -> list[dict[str, Any]]:
    """Label Studio result items of a prediction (per-span score, relations between kept spans)."""
    doc = AnnotatedDoc("", "", tuple(spans), tuple(r for r in relations))
    items = result_items(doc)
    for item in items:
        item.pop("origin", None)
    return items


def mean_score(spans: Sequence[Span]) -> float | None:
    scores = [s.score for s in spans if s.score is not None]
    return round(sum(scores) / len(scores), 4) if scores else None


def slice_prediction(
    spans: Sequence[Span], relations: Sequence[Relation], start: int, end: int
) -> tuple[list[Span], list[Relation]]:
    """Spans inside [start, end), shifted to the slice; relations whose ends both survive."""
    kept = [
        Span(s.id, s.start - start, s.end - start, s.label, s.text, s.score)
        for s in spans
        if start <= s.start and s.end <= end
    ]
    ids = {s.id for s in kept}
    return kept, [r for r in relations if r.head in ids and r.tail in ids]


def paragraph_entropies(ner: Any, texts: Sequence[str]) -> list[list[tuple[Segment, float]]]:
    """Per text, each paragraph with its token entropy summed over its pieces (nats), from the
    same probabilities that :meth:`pipeline.extractors.ner.NerModel.predict` decodes."""
    import numpy as np

    out: list[list[tuple[Segment, float]]] = [[] for _ in texts]
    for para in ner.paragraph_probabilities(texts):
        p = np.clip(para.probs, 1e-12, 1.0)
        out[para.text_index].append((para.paragraph, float(-(p * np.log(p)).sum())))
    return out


def task_key(data: dict[str, Any]) -> tuple[str, int | None]:
    offset = data.get("offset")
    return str(data.get("doc_id", "")), (int(offset) if offset is not None else None)


@dataclass
class PushReport:
    project_id: int
    project_created: bool = False
    config_updated: bool = False
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    predictions_added: int = 0
    conflicts: list[str] = field(default_factory=list)
    backend: str = ""

    def summary(self) -> str:
        lines = [
            f"project {self.project_id}"
            + (" (created)" if self.project_created else "")
            + (" (labeling config updated)" if self.config_updated else ""),
            f"tasks: {len(self.created)} created, {len(self.updated)} updated, {len(self.skipped)} unchanged; "
            f"{self.predictions_added} prediction(s) added",
        ]
        if self.backend:
            lines.append(f"ML backend: {self.backend}")
        lines += [f"conflict: {c}" for c in self.conflicts]
        return "\n".join(lines)


@dataclass(frozen=True)
class TaskSpec:
    """One task to push: its data and (optionally) a prediction."""

    data: dict[str, Any]
    result: list[dict[str, Any]] | None = None
    score: float | None = None

    @property
    def key(self) -> tuple[str, int | None]:
        return task_key(self.data)

    @property
    def name(self) -> str:
        doc_id, offset = self.key
        return doc_id if offset is None else f"{doc_id}@{offset}"


def ensure_project(client: LabelStudioClient, title: str, label_config: str) -> tuple[dict[str, Any], bool, bool]:
    """(project, created, config_updated): the project named ``title`` with this labeling config."""
    project = client.find_project(title)
    if project is None:
        return client.create_project(title, label_config), True, False
    if (project.get("label_config") or "").strip() != label_config.strip():
        return client.update_project(project["id"], label_config=label_config), False, True
    return project, False, False


def document_specs(documents: Sequence[Document], extractor: Any | None) -> list[TaskSpec]:
    """Whole-document tasks, with the extractor's predictions if one is given (a progress bar on stderr
    while the model pre-annotates)."""
    if extractor is None:
        return [TaskSpec(task_data(doc)) for doc in documents]
    from tqdm import tqdm

    specs = []
    for doc in tqdm(iter_extract(documents, extractor), total=len(documents), unit="doc", desc="pre-annotate"):
        specs.append(TaskSpec(task_data(doc), prediction_items(doc.spans, doc.relations), mean_score(doc.spans)))
    return specs


def task_data(doc: Document | AnnotatedDoc) -> dict[str, Any]:
    return {"text": doc.text, "doc_id": doc.doc_id, "source": doc.source}


def gold_coverage(paths: Sequence[str | Path]) -> dict[str, list[tuple[int, int]] | None]:
    """doc_id → the annotated regions of the gold exports in these files/folders (None: the whole
    document; paragraph-built files written by :func:`pull` record theirs in ``data.regions``)."""
    covered: dict[str, list[tuple[int, int]] | None] = {}
    for f in json_files(paths):
        for task in load_export_tasks(f):
            if pick_annotation(task) is None:
                continue
            doc_id = str(task["data"].get("doc_id") or "")
            regions = task["data"].get("regions")
            if regions is None:
                covered[doc_id] = None
            elif covered.get(doc_id, []) is not None:
                covered.setdefault(doc_id, []).extend((int(a), int(b)) for a, b in regions)  # type: ignore[union-attr]
    return covered


def select_paragraph_specs(
    documents: Sequence[Document],
    extractor: Any,
    n: int,
    exclude: set[tuple[str, int | None]] = frozenset(),  # type: ignore[assignment]
    with_predictions: bool = True,
    covered: dict[str, list[tuple[int, int]] | None] | None = None,
) -> list[TaskSpec]:
    """The ``n`` paragraphs with the highest summed token entropy under the model, most
    informative first, skipping paragraphs (and whole documents) already in the project
    (``exclude``: task keys) or already annotated (``covered``: see :func:`gold_coverage`)."""
    ner = getattr(extractor, "ner", None)
    if ner is None:
        raise LabelStudioError(
            "--select ranks paragraphs by the model's token entropy: it needs a trained model folder "
            "(--model DIR), the rules give no probabilities"
        )
    covered = covered or {}
    whole = {doc_id for doc_id, offset in exclude if offset is None} | {d for d, r in covered.items() if r is None}

    def unlabeled(doc_id: str, para: Segment) -> bool:
        regions = covered.get(doc_id) or []
        return (doc_id, para.start) not in exclude and not any(a < para.end and para.start < b for a, b in regions)

    todo = [d for d in documents if d.doc_id not in whole]
    candidates: list[tuple[float, Document, Segment]] = []
    for doc, paras in zip(todo, paragraph_entropies(ner, [d.text for d in todo]), strict=True):
        candidates += [(ent, doc, para) for para, ent in paras if unlabeled(doc.doc_id, para)]
    candidates.sort(key=lambda c: (-c[0], c[1].doc_id, c[2].start))
    chosen = candidates[:n]
    by_doc: dict[str, Document] = {d.doc_id: d for _, d, _ in chosen}
    preds = {}
    if with_predictions and by_doc:
        docs = list(by_doc.values())
        preds = dict(zip([d.doc_id for d in docs], extractor.predict([d.text for d in docs]), strict=True))
    specs = []
    for ent, doc, para in chosen:
        data = {
            "text": para.text,
            "doc_id": doc.doc_id,
            "offset": para.start,
            "source": doc.source,
            "entropy": round(ent, 4),
        }
        if doc.doc_id in preds:
            spans, relations = slice_prediction(*preds[doc.doc_id], para.start, para.end)
            specs.append(TaskSpec(data, prediction_items(spans, relations), mean_score(spans)))
        else:
            specs.append(TaskSpec(data))
    return specs


def push_specs(
    client: LabelStudioClient,
    title: str,
    specs: Sequence[TaskSpec],
    version: str,
    schema: Schema,
    backend_url: str | None = None,
) -> PushReport:
    """Create/update the project and its tasks; idempotent on (doc_id, offset).

    A task already present with the same text is left alone, except that a prediction of this
    model version is added if it has none. A task whose text changed is updated (old predictions
    dropped) unless it has annotations: that is a conflict, reported, not touched."""
    project, created, config_updated = ensure_project(client, title, label_studio_config(schema))
    report = PushReport(project["id"], created, config_updated)
    existing = {} if created else {task_key(t.get("data") or {}): t for t in client.list_tasks(project["id"])}
    new: list[dict[str, Any]] = []
    for spec in specs:
        task = existing.get(spec.key)
        if task is None:
            payload: dict[str, Any] = {"data": spec.data}
            if spec.result is not None:
                pred: dict[str, Any] = {"model_version": version, "result": spec.result}
                if spec.score is not None:
                    pred["score"] = spec.score
                payload["predictions"] = [pred]
            new.append(payload)
            report.created.append(spec.name)
            existing[spec.key] = {"data": spec.data}  # a document given twice is pushed once
            continue
        if "id" not in task:
            continue
        predictions = [p for p in task.get("predictions") or [] if isinstance(p, dict)]
        if task["data"].get("text") != spec.data["text"]:
            if task.get("annotations") or task.get("total_annotations") or task.get("drafts"):
                at = first_difference(task["data"].get("text", ""), spec.data["text"])
                report.conflicts.append(
                    f"{spec.name}: task {task['id']} is annotated but its text differs from the document "
                    f"at character {at}; not updated (annotate the new version in another project)"
                )
                continue
            client.update_task(task["id"], spec.data)
            for p in predictions:
                client.delete_prediction(p["id"])
            predictions = []
            report.updated.append(spec.name)
        else:
            report.skipped.append(spec.name)
        if spec.result is not None and not any(p.get("model_version") == version for p in predictions):
            client.create_prediction(task["id"], spec.result, version, spec.score)
            report.predictions_added += 1
    if new:
        client.import_tasks(project["id"], new)
        report.predictions_added += sum(1 for t in new if "predictions" in t)
    if version and any(spec.result is not None for spec in specs) and project.get("model_version") != version:
        client.update_project(project["id"], model_version=version)  # the UI pre-annotates with this version
    if backend_url:
        report.backend = connect_backend(client, project["id"], backend_url, version or "planie")
    return report


def connect_backend(client: LabelStudioClient, project_id: int, url: str, title: str) -> str:
    """Attach the ML backend at ``url`` to the project (once); return its state."""
    url = url.rstrip("/")
    for backend in client.ml_backends(project_id):
        if str(backend.get("url", "")).rstrip("/") == url:
            return f"{url} already connected (state {backend.get('state')})"
    try:
        backend = client.add_ml_backend(project_id, url, title)
    except LSAPIError as exc:
        raise LabelStudioError(
            f"Label Studio at {client.url} could not connect the ML backend {url}: {exc} "
            f"(is `planie ls backend` running? a backend on localhost needs the server started with "
            f"ML_BLOCK_LOCAL_IP=false, which `planie ls serve` does)"
        ) from exc
    return f"{url} connected (state {backend.get('state')}, model version {backend.get('model_version')})"
