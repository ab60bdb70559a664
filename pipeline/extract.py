"""Extraction: documents in, structured records out (JSONL contract, CSV tables)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pipeline.annotations import AnnotatedDoc, Relation, Span, write_atomic
from pipeline.documents import Document
from pipeline.relations import SentenceIndex, link_rules

if TYPE_CHECKING:
    from pipeline.views import Embed


@dataclass(frozen=True)
class Target:
    indicator: str
    value: str
    deadline: str | None
    sentence: str
    indicator_start: int
    value_start: int
    deadline_start: int | None


@dataclass(frozen=True)
class Task:
    action: str
    agencies: tuple[str, ...]
    deadline: str | None
    sentence: str
    action_start: int


class Extractor(Protocol):
    """Anything that turns texts into entity spans and relations."""

    ner_id: str
    relations_id: str

    def predict(self, texts: Sequence[str]) -> list[tuple[list[Span], list[Relation]]]: ...


class RulesExtractor:
    """The regex + lexicon baseline with the rules linker."""

    ner_id = "rules"
    relations_id = "rules-linker"

    def predict(self, texts: Sequence[str]) -> list[tuple[list[Span], list[Relation]]]:
        from pipeline.rules import rule_spans

        out = []
        for text in texts:
            spans = rule_spans(text)
            out.append((spans, link_rules(text, spans)))
        return out


class ModelExtractor:
    """A trained NER model (pipeline.ner) with the rules linker or a learned relation model
    (pipeline.relation_model): ``relations`` is 'rules', a relation model folder, or None for
    MODEL_DIR/relations/ when that folder exists and the rules linker otherwise."""

    def __init__(
        self,
        model_dir: Path,
        device: str = "cpu",
        batch_size: int = 32,
        precision: str = "bf16",
        relations: str | Path | None = None,
    ) -> None:
        from pipeline.ner import NerModel

        self.ner = NerModel(model_dir, device=device, batch_size=batch_size, precision=precision)
        self.ner_id = self.ner.name
        self.relations_id = "rules-linker"
        self.linker = None
        rel_dir = Path(model_dir) / "relations" if relations is None else relations
        if rel_dir != "rules" and Path(rel_dir).is_dir():
            from pipeline.relation_model import RelationModel

            self.linker = RelationModel(rel_dir, batch_size=batch_size)
            self.relations_id = self.linker.name
        elif relations is not None and relations != "rules":
            raise ValueError(f"relations {str(relations)!r} is neither 'rules' nor a relation model folder")

    def predict(self, texts: Sequence[str]) -> list[tuple[list[Span], list[Relation]]]:
        link = self.linker.link if self.linker is not None else link_rules
        return [(spans, link(text, spans)) for text, spans in zip(texts, self.ner.predict(texts), strict=True)]


def check_model_arg(model: str) -> None:
    """A ValueError unless ``model`` is 'rules' or an existing folder."""
    if model != "rules" and not Path(model).is_dir():
        raise ValueError(f"model {model!r} is neither 'rules' nor a model folder")


def load_extractor(
    model: str, device: str = "cpu", batch_size: int = 32, precision: str = "bf16", relations: str | None = None
) -> Extractor:
    """'rules' or a trained model folder (``relations``: see ModelExtractor); a clear ValueError otherwise."""
    check_model_arg(model)
    if model == "rules":
        return RulesExtractor()
    return ModelExtractor(Path(model), device=device, batch_size=batch_size, precision=precision, relations=relations)


def _sentence_of(index: SentenceIndex, text: str, s: Span) -> str:
    i = index.of(s.start)
    return index.sentences[i].text if i >= 0 else text[s.start : s.end]


def build_targets(doc: AnnotatedDoc, index: SentenceIndex | None = None) -> list[Target]:
    index = index or SentenceIndex(doc.text)
    by_id = doc.span_by_id()
    deadline_of = {r.tail: by_id.get(r.head) for r in doc.relations if r.label == "deadline_of"}
    targets = []
    for r in doc.relations:
        if r.label != "value_of" or r.head not in by_id or r.tail not in by_id:
            continue
        value, indicator = by_id[r.head], by_id[r.tail]
        deadline = deadline_of.get(value.id)
        targets.append(
            Target(
                indicator.text,
                value.text,
                deadline.text if deadline else None,
                _sentence_of(index, doc.text, value),
                indicator.start,
                value.start,
                deadline.start if deadline else None,
            )
        )
    return sorted(targets, key=lambda t: (t.value_start, t.indicator_start))


def build_tasks(doc: AnnotatedDoc, index: SentenceIndex | None = None) -> list[Task]:
    index = index or SentenceIndex(doc.text)
    by_id = doc.span_by_id()
    agencies: dict[str, list[Span]] = {}
    deadlines: dict[str, Span] = {}
    for r in doc.relations:
        if r.head in by_id and r.label == "responsible_for":
            agencies.setdefault(r.tail, []).append(by_id[r.head])
        elif r.head in by_id and r.label == "deadline_of":
            deadlines[r.tail] = by_id[r.head]
    tasks = []
    for s in doc.spans:
        if s.label != "ACTION":
            continue
        names = tuple(a.text for a in sorted(agencies.get(s.id, []), key=lambda a: a.start))
        deadline = deadlines.get(s.id)
        tasks.append(
            Task(s.text, names, deadline.text if deadline else None, _sentence_of(index, doc.text, s), s.start)
        )
    return tasks


def extraction_record(doc: AnnotatedDoc, extractor: Extractor) -> dict[str, Any]:
    """One line of extractions.jsonl (the contract in the annotation schema)."""
    index = SentenceIndex(doc.text)
    return {
        "doc_id": doc.doc_id,
        "source": doc.source,
        "text": doc.text,
        "entities": [
            {"id": s.id, "start": s.start, "end": s.end, "label": s.label, "text": s.text, "score": s.score}
            for s in doc.spans
        ],
        "relations": [{"head": r.head, "tail": r.tail, "label": r.label, "score": r.score} for r in doc.relations],
        "targets": [
            {"indicator": t.indicator, "value": t.value, "deadline": t.deadline, "sentence": t.sentence}
            for t in build_targets(doc, index)
        ],
        "tasks": [
            {"action": t.action, "agencies": list(t.agencies), "deadline": t.deadline, "sentence": t.sentence}
            for t in build_tasks(doc, index)
        ],
        "model": {"ner": extractor.ner_id, "relations": extractor.relations_id},
    }


def doc_from_record(record: dict[str, Any]) -> AnnotatedDoc:
    spans = tuple(
        Span(e["id"], e["start"], e["end"], e["label"], e["text"], e.get("score")) for e in record["entities"]
    )
    relations = tuple(Relation(r["head"], r["tail"], r["label"], r.get("score")) for r in record["relations"])
    return AnnotatedDoc(record["doc_id"], record["text"], spans, relations, record.get("source", ""))


def extract_documents(documents: Sequence[Document], extractor: Extractor) -> list[AnnotatedDoc]:
    results = extractor.predict([d.text for d in documents])
    return [
        AnnotatedDoc(d.doc_id, d.text, tuple(spans), tuple(rels), d.source)
        for d, (spans, rels) in zip(documents, results, strict=True)
    ]


def _csv(rows: Iterable[dict[str, Any]], fields: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def write_tables_and_views(
    out_dir: Path, records: Sequence[dict[str, Any]], embed: Embed | None = None, group_threshold: float = 0.9
) -> dict[str, Path]:
    """targets.csv, tasks.csv and the views; ``embed``/``group_threshold``: indicator grouping (views)."""
    from pipeline.views import write_views

    paths = {name: out_dir / name for name in ("targets.csv", "tasks.csv")}
    target_rows, task_rows = [], []
    for record in records:
        doc = doc_from_record(record)
        index = SentenceIndex(doc.text)  # one per document, shared by both tables
        target_rows += [{"doc_id": doc.doc_id, **asdict(t)} for t in build_targets(doc, index)]
        task_rows += [
            {"doc_id": doc.doc_id, **asdict(t), "agencies": "、".join(t.agencies)} for t in build_tasks(doc, index)
        ]
    write_atomic(paths["targets.csv"], _csv(target_rows, ["doc_id", *Target.__dataclass_fields__]))
    write_atomic(paths["tasks.csv"], _csv(task_rows, ["doc_id", *Task.__dataclass_fields__]))
    paths.update(write_views(out_dir, list(records), embed=embed, threshold=group_threshold))
    return paths


@dataclass
class RunSummary:
    extracted: int = 0
    skipped: int = 0
    chars: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    outputs: dict[str, Path] = field(default_factory=dict)


def read_existing(jsonl: Path) -> list[dict[str, Any]]:
    if not jsonl.exists():
        return []
    records = []
    for n, line in enumerate(jsonl.read_text(encoding="utf-8").splitlines(), 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"{jsonl}: line {n}: not JSON ({exc.msg}); remove the file or run without --resume"
            ) from exc
    return records


def read_or_error(path: str | Path) -> Document | str:
    """The document, or the reader's error message naming the file (the run goes on without it)."""
    from pipeline.documents import DocumentError, read_document

    try:
        return read_document(path)
    except DocumentError as exc:
        return str(exc)


def start_run(
    out_dir: Path, paths: Sequence[Path], resume: bool
) -> tuple[list[dict[str, Any]], RunSummary, list[Path]]:
    """The records kept from ``out_dir/extractions.jsonl`` (with ``resume``), a summary counting the
    documents skipped for being there, and the paths still to extract."""
    out_dir.mkdir(parents=True, exist_ok=True)
    records = read_existing(out_dir / "extractions.jsonl") if resume else []
    done = {r["source"] for r in records}
    summary = RunSummary(skipped=sum(1 for p in paths if str(p) in done))
    return records, summary, [p for p in paths if str(p) not in done]


def finish_run(
    out_dir: Path, records: Sequence[dict[str, Any]], summary: RunSummary, embed: Embed | None, group_threshold: float
) -> RunSummary:
    """Write extractions.jsonl atomically, then the tables and views; record the outputs in the summary."""
    jsonl = out_dir / "extractions.jsonl"
    write_atomic(jsonl, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    summary.outputs = {"extractions.jsonl": jsonl, **write_tables_and_views(out_dir, records, embed, group_threshold)}
    return summary


def run_extraction(
    paths: Sequence[Path],
    out_dir: Path,
    extractor: Extractor,
    *,
    batch_docs: int = 8,
    workers: int = 1,
    resume: bool = False,
    progress: bool = True,
    embed: Embed | None = None,
    group_threshold: float = 0.9,
) -> RunSummary:
    """Read, extract and write in document batches. Records go to a temporary JSONL renamed into
    place at the end, so extractions.jsonl is never half-written; with ``resume`` the documents
    already in it are kept and skipped."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    out_dir = Path(out_dir)
    records, summary, todo = start_run(out_dir, paths, resume)
    started = time.perf_counter()
    bar = tqdm(total=len(todo), unit="doc", disable=not progress, desc="extract")
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for i in range(0, len(todo), batch_docs):
            batch = list(pool.map(read_or_error, todo[i : i + batch_docs]))
            summary.errors += [b for b in batch if isinstance(b, str)]
            documents = [b for b in batch if not isinstance(b, str)]
            for doc in extract_documents(documents, extractor):
                records.append(extraction_record(doc, extractor))
                summary.chars += len(doc.text)
            summary.extracted += len(documents)
            bar.update(len(batch))
            bar.set_postfix(chars_per_s=f"{summary.chars / max(time.perf_counter() - started, 1e-9):,.0f}")
    bar.close()
    finish_run(out_dir, records, summary, embed, group_threshold)
    summary.seconds = time.perf_counter() - started
    return summary
