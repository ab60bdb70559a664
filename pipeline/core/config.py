"""Typed config files: one loader for every YAML config (NER, relations, pretraining, splits, schema).

A config is a pydantic model that forbids unknown keys. Values are converted where the meaning is
plain and refused otherwise; the error names the file and the key:

- numbers: ``1e-4`` (a string to PyYAML, which follows YAML 1.1) is the float 0.0001; ``twenty`` is an error;
- booleans: YAML's true/false/yes/no (unquoted), and the strings "true"/"false"/"yes"/"no"/"on"/"off"/"1"/"0"
  are read as the bool they name (``crf: "no"`` switches the CRF off); any other string is an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from pipeline.core.errors import ConfigError

C = TypeVar("C", bound="Config")


class Config(BaseModel):
    """Base of the typed configs: unknown keys are errors, assignments are checked too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @classmethod
    def load(cls: type[C], path: str | Path, **overrides: Any) -> C:
        """The config in ``path``; ``overrides`` that are not None replace its values (command-line options)."""
        raw = read_yaml_mapping(path)
        raw.update({k: v for k, v in overrides.items() if v is not None})
        return cls.parse(raw, path)

    @classmethod
    def parse(cls: type[C], raw: dict[str, Any], source: str | Path) -> C:
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise ConfigError(describe(exc, source)) from None

    def replace(self: C, **changes: Any) -> C:
        """A checked copy with ``changes`` applied."""
        return type(self).parse({**self.model_dump(), **changes}, f"{type(self).__name__} update")


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values, got {type(raw).__name__}")
    return raw


def describe(exc: ValidationError, source: str | Path) -> str:
    """One line per bad key: ``FILE: key: what is wrong (got VALUE)``."""
    lines = []
    for e in exc.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
        lines.append(f"{source}: {key}: {msg} (got {e['input']!r})")
    return "; ".join(lines)
