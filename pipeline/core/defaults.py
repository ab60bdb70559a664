"""Default paths and choices that the command line shows in its help, in a module that imports nothing
heavy: ``planie --help`` and ``planie COMMAND --help`` build every parser from these without importing
the modules that use them (schema, extractors, training, evaluation), which take them from here."""

from __future__ import annotations

from pipeline.core.files import REPO

DEFAULT_SCHEMA_PATH = REPO / "configs" / "schema.yaml"
DEFAULT_MODEL = REPO / "models" / "planie-ner"  # the shipped model
# inference: windows per encoder forward and the encoder's precision (measurements: README, Results)
DEFAULT_BATCH_SIZE = 32
DEFAULT_PRECISION = "bf16"

# the packaged encoder's import (planie import-encoder, prune-vocab)
DEFAULT_FULL_DIR = REPO / "models" / "base" / "e5-small"
DEFAULT_ZH_DIR = REPO / "models" / "base" / "e5-small-zh"
DEFAULT_KEEP_FILE = REPO / "configs" / "vocab_zh.txt"
DEFAULT_SEEDS_DIR = REPO.parent / "shared" / "seeds"

# cross-validation (planie cv, evaluate-rel --cv)
CV_GROUPS = ("doc", "province")  # each document alone, or the gold's data.meta.province
DEFAULT_K = 5
