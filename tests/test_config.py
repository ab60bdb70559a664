"""Typed configs: wrong types and unknown keys are errors naming the file and the key (exit code 2)."""

from __future__ import annotations

import pytest

from pipeline.cli.main import main
from pipeline.core.errors import ConfigError
from pipeline.core.schema import load_schema
from pipeline.training.ner_training import NerConfig
from pipeline.training.pretrain import PretrainConfig
from pipeline.training.relation_training import RelConfig
from pipeline.training.splits import SplitsConfig


def write(tmp_path, text: str):
    path = tmp_path / "run.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_yaml_1_1_exponent_without_dot_is_a_float(tmp_path):
    cfg = NerConfig.load(write(tmp_path, "learning_rate: 1e-4\n"))  # PyYAML reads 1e-4 as a string
    assert cfg.learning_rate == pytest.approx(1e-4) and isinstance(cfg.learning_rate, float)


@pytest.mark.parametrize(("text", "expected"), [("crf: no\n", False), ('crf: "no"\n', False), ('crf: "yes"\n', True)])
def test_booleans_as_words_are_read_as_the_bool_they_name(tmp_path, text, expected):
    assert NerConfig.load(write(tmp_path, text)).crf is expected


@pytest.mark.parametrize(
    ("text", "key"),
    [("epochs: twenty\n", "epochs"), ('crf: "maybe"\n', "crf"), ("lerning_rate: 0.1\n", "lerning_rate")],
)
def test_wrong_type_or_unknown_key_names_file_and_key(tmp_path, text, key):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        NerConfig.load(path)
    assert str(path) in str(err.value) and f": {key}:" in str(err.value)


def test_relation_variant_and_splits_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="variant"):
        RelConfig.load(write(tmp_path, "variant: transformer\n"))
    with pytest.raises(ConfigError, match="train"):
        SplitsConfig.load(write(tmp_path, "test: [a]\n"))
    with pytest.raises(ConfigError, match="num_layers"):
        PretrainConfig.parse({"out": "x", "num_layers": "four"}, "options")


def test_schema_file_is_checked(tmp_path):
    path = tmp_path / "schema.yaml"
    path.write_text("entities:\n  - {label: ORG}\nrelations: []\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"entities\.0\.colour"):
        load_schema(path)


def test_shipped_configs_load():
    for name in ("ner", "ner-ship"):
        NerConfig.load(f"configs/{name}.yaml")
    RelConfig.load("configs/relations.yaml")
    for name in ("splits", "splits-all"):
        SplitsConfig.load(f"configs/{name}.yaml")


def test_bad_config_is_one_line_and_exit_code_2(tmp_path, capsys):
    path = write(tmp_path, "epochs: twenty\n")
    assert main(["train-ner", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "epochs" in err and str(path) in err and "Traceback" not in err
