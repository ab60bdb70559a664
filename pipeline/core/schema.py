"""The annotation schema (configs/schema.yaml) as typed records; the Label Studio labeling config."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from xml.sax.saxutils import quoteattr

from pipeline.core.config import Config, read_yaml_mapping
from pipeline.core.defaults import DEFAULT_SCHEMA_PATH as DEFAULT_SCHEMA_PATH
from pipeline.core.errors import ConfigError
from pipeline.core.sections import SECTION_KINDS


@dataclass(frozen=True)
class EntityType:
    label: str
    colour: str
    hotkey: str
    description: str
    absent_in: tuple[str, ...] = ()  # section kinds (pipeline.core.sections) that hold no span of this label


@dataclass(frozen=True)
class RelationType:
    label: str
    head: tuple[str, ...]
    tail: tuple[str, ...]
    window: str
    description: str


@dataclass(frozen=True)
class Schema:
    version: int
    entities: tuple[EntityType, ...]
    relations: tuple[RelationType, ...]

    @property
    def entity_labels(self) -> tuple[str, ...]:
        return tuple(e.label for e in self.entities)

    @property
    def relation_labels(self) -> tuple[str, ...]:
        return tuple(r.label for r in self.relations)

    def relation(self, label: str) -> RelationType:
        for rel in self.relations:
            if rel.label == label:
                return rel
        raise KeyError(f"unknown relation label {label!r}; known: {', '.join(self.relation_labels)}")

    @property
    def section_rules(self) -> dict[str, tuple[str, ...]]:
        """label → the section kinds in which the schema says it has no span (labels without rules left out)."""
        return {e.label: e.absent_in for e in self.entities if e.absent_in}

    def colour(self, label: str) -> str:
        return next((e.colour for e in self.entities if e.label == label), "#999999")

    def bio_labels(self) -> list[str]:
        """The token-classification label list: O, then B-/I- per entity type, in schema order."""
        return ["O"] + [f"{p}-{e}" for e in self.entity_labels for p in ("B", "I")]

    def allows(self, relation: str, head_label: str, tail_label: str) -> bool:
        rel = self.relation(relation)
        return head_label in rel.head and tail_label in rel.tail


class _EntityEntry(Config):
    label: str
    colour: str
    hotkey: str = ""
    description: str = ""
    absent_in: list[str] = []


class _RelationEntry(Config):
    label: str
    head: list[str]
    tail: list[str]
    window: str = "sentence"
    description: str = ""


class _SchemaFile(Config):
    version: int = 1
    entities: list[_EntityEntry]
    relations: list[_RelationEntry]


def _parse(raw: dict, path: Path) -> Schema:
    checked = _SchemaFile.parse(raw, path)
    entities = tuple(
        EntityType(e.label, e.colour, e.hotkey, e.description, tuple(e.absent_in)) for e in checked.entities
    )
    for e in entities:
        unknown = [k for k in e.absent_in if k not in SECTION_KINDS]
        if unknown:
            raise ConfigError(
                f"{path}: entity {e.label!r}: absent_in names unknown section kind(s) {', '.join(map(repr, unknown))};"
                f" known: {', '.join(SECTION_KINDS)}"
            )
    relations = tuple(
        RelationType(r.label, tuple(r.head), tuple(r.tail), r.window, r.description) for r in checked.relations
    )
    known = {e.label for e in entities}
    for rel in relations:
        for lab in rel.head + rel.tail:
            if lab not in known:
                raise ConfigError(f"{path}: relation {rel.label!r} names unknown entity type {lab!r}")
    return Schema(checked.version, entities, relations)


@lru_cache(maxsize=8)
def load_schema(path: str | Path = DEFAULT_SCHEMA_PATH) -> Schema:
    path = Path(path)
    return _parse(read_yaml_mapping(path), path)


def label_studio_config(schema: Schema) -> str:
    """The Label Studio labeling config (<View> with <Labels>, <Relations> on one <Text>)."""
    labels = "\n".join(
        f"    <Label value={quoteattr(e.label)} background={quoteattr(e.colour)} hotkey={quoteattr(e.hotkey)}/>"
        for e in schema.entities
    )
    relations = "\n".join(f"    <Relation value={quoteattr(r.label)}/>" for r in schema.relations)
    return (
        "<View>\n"
        '  <Labels name="label" toName="text">\n'
        f"{labels}\n"
        "  </Labels>\n"
        "  <Relations>\n"
        f"{relations}\n"
        "  </Relations>\n"
        '  <Text name="text" value="$text" granularity="symbol"/>\n'
        "</View>\n"
    )
