"""A declared post-decoding step: drop predicted spans of a label in the section kinds where the
schema gives that label no span (``absent_in`` in configs/schema.yaml; kinds from
pipeline.core.sections). ACTION, for instance, has no span in a purpose preamble, a goals section,
a report of past work, a notice header or a signature. Section kind ``other`` is never ruled out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pipeline.core.annotations import Span
from pipeline.core.schema import DEFAULT_SCHEMA_PATH, load_schema
from pipeline.core.sections import SectionIndex

SectionRules = Mapping[str, Sequence[str]]  # label → the section kinds holding no span of that label


def schema_section_rules(schema_path: str = str(DEFAULT_SCHEMA_PATH)) -> dict[str, tuple[str, ...]]:
    """The section rules the schema declares."""
    return load_schema(schema_path).section_rules


def drop_by_section(text: str, spans: Sequence[Span], rules: SectionRules | None = None) -> list[Span]:
    """The spans that do not lie in a section kind ruled out for their label (``rules``: the
    schema's by default); a span's kind is the kind of the sentence its first character stands in."""
    rules = schema_section_rules() if rules is None else rules
    if not spans or not any(rules.values()):
        return list(spans)
    index = SectionIndex(text)
    return [s for s in spans if index.kind_at(s.start) not in rules.get(s.label, ())]
