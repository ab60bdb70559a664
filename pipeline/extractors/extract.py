"""Extractors: anything that turns texts into entity spans and relations (rules, trained models)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

from pipeline.core.annotations import AnnotatedDoc, Relation, Span
from pipeline.core.defaults import DEFAULT_BATCH_SIZE, DEFAULT_PRECISION
from pipeline.core.defaults import DEFAULT_MODEL as DEFAULT_MODEL  # the shipped model
from pipeline.core.documents import Document
from pipeline.core.errors import MissingModelError, UsageError
from pipeline.extractors.model_files import check_device, check_model_dir, check_weights
from pipeline.extractors.relations import link_rules

BATCH_DOCS = 8  # documents per predict call in planie extract, evaluate and the Python API (same batches, same scores)


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
        from pipeline.extractors.rules import rule_spans

        out = []
        for text in texts:
            spans = rule_spans(text)
            out.append((spans, link_rules(text, spans)))
        return out


class ModelExtractor:
    """A trained NER model (pipeline.extractors.ner) with the rules linker or a learned relation model
    (pipeline.extractors.relation_model): ``relations`` is 'rules', a relation model folder, or None for
    MODEL_DIR/relations/ when that folder exists and the rules linker otherwise. ``section_rules``
    turns the section-rules step on or off (see NerModel); None follows the model's planie.json."""

    def __init__(
        self,
        model_dir: Path,
        device: str = "cpu",
        batch_size: int = DEFAULT_BATCH_SIZE,
        precision: str = DEFAULT_PRECISION,
        relations: str | Path | None = None,
        section_rules: bool | None = None,
    ) -> None:
        from pipeline.extractors.ner import NerModel

        self.ner = NerModel(
            model_dir, device=device, batch_size=batch_size, precision=precision, section_rules=section_rules
        )
        self.ner_id = self.ner.name
        self.relations_id = "rules-linker"
        self.linker = None
        rel_dir = Path(model_dir) / "relations" if relations is None else relations
        if rel_dir != "rules" and Path(rel_dir).is_dir():
            from pipeline.extractors.relation_model import RelationModel

            self.linker = RelationModel(rel_dir, batch_size=batch_size)
            self.relations_id = self.linker.name
        elif relations is not None and relations != "rules":
            raise MissingModelError(f"relations {str(relations)!r} is neither 'rules' nor a relation model folder")

    def predict(self, texts: Sequence[str]) -> list[tuple[list[Span], list[Relation]]]:
        return list(self.iter_predict(texts))

    def iter_predict(self, texts: Sequence[str]) -> Iterator[tuple[list[Span], list[Relation]]]:
        """As predict, each text as soon as the model has finished it (NerModel.iter_predict)."""
        link = self.linker.link if self.linker is not None else link_rules
        for text, spans in zip(texts, self.ner.iter_predict(texts), strict=True):
            yield spans, link(text, spans)


def check_relations_arg(model: str, relations: str | None) -> None:
    """A UsageError for a relation model with the rules model (which links by rules only)."""
    if model == "rules" and relations not in (None, "rules"):
        raise UsageError(f"--relations {relations}: needs a trained NER model (--model rules links by rules)")


def check_model_arg(model: str, relations: str | None = None, device: str = "cpu") -> None:
    """Before anything loads: a UsageError for --relations with the rules model, a MissingModelError
    unless ``model`` is 'rules' or a complete model folder (``relations`` likewise), a SetupError for
    an unavailable device."""
    check_relations_arg(model, relations)
    if model == "rules":
        return
    check_model_dir(model)
    if relations not in (None, "rules"):
        if not Path(relations).is_dir():
            raise MissingModelError(f"relations {relations!r} is neither 'rules' nor a relation model folder")
        check_weights(Path(relations))
    check_device(device)


def load_extractor(
    model: str,
    device: str = "cpu",
    batch_size: int = DEFAULT_BATCH_SIZE,
    precision: str = DEFAULT_PRECISION,
    relations: str | None = None,
) -> Extractor:
    """'rules' or a trained model folder (``relations``: see ModelExtractor); a MissingModelError otherwise."""
    check_model_arg(model, relations, device)
    if model == "rules":
        return RulesExtractor()
    return ModelExtractor(Path(model), device=device, batch_size=batch_size, precision=precision, relations=relations)


def extract_documents(documents: Sequence[Document], extractor: Extractor) -> list[AnnotatedDoc]:
    return list(iter_extract(documents, extractor))


def iter_extract(documents: Sequence[Document], extractor: Extractor) -> Iterator[AnnotatedDoc]:
    """extract_documents one document at a time: with an extractor that streams (``iter_predict``: the
    model), each as soon as it is done, with the same results; else after ``predict`` on all of them."""
    texts = [d.text for d in documents]
    stream = getattr(extractor, "iter_predict", None)
    results = stream(texts) if stream is not None else iter(extractor.predict(texts))
    for d, (spans, rels) in zip(documents, results, strict=True):
        yield AnnotatedDoc(d.doc_id, d.text, tuple(spans), tuple(rels), d.source)


def extract_batches(
    documents: Sequence[Document], extractor: Extractor, batch_docs: int = BATCH_DOCS
) -> Iterator[list[AnnotatedDoc]]:
    """extract_documents on ``batch_docs`` documents at a time (for progress bars and bounded batches)."""
    for start in range(0, len(documents), batch_docs):
        yield extract_documents(documents[start : start + batch_docs], extractor)
