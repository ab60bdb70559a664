from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from pipeline.core.schema import label_studio_config, load_schema


def test_label_studio_config_is_generated_from_the_schema(schema):
    root = ET.fromstring(label_studio_config(schema))
    assert root.tag == "View"
    labels = root.find("Labels")
    assert labels.get("name") == "label" and labels.get("toName") == "text"
    assert [lab.get("value") for lab in labels] == ["AGENCY", "INDICATOR", "VALUE", "DEADLINE", "ACTION"]
    assert [lab.get("background") for lab in labels] == [e.colour for e in schema.entities]
    assert [r.get("value") for r in root.find("Relations")] == ["value_of", "deadline_of", "responsible_for"]
    assert root.find("Text").get("value") == "$text"


def test_bio_labels_and_relation_constraints(schema):
    assert schema.bio_labels()[:3] == ["O", "B-AGENCY", "I-AGENCY"]
    assert len(schema.bio_labels()) == 11
    assert schema.allows("deadline_of", "DEADLINE", "ACTION")
    assert schema.allows("deadline_of", "DEADLINE", "VALUE")
    assert not schema.allows("value_of", "INDICATOR", "VALUE")


def test_a_changed_schema_changes_the_config(tmp_path):
    path = tmp_path / "schema.yaml"
    path.write_text(
        "entities:\n  - {label: ORG, colour: '#123456'}\nrelations:\n  - {label: r, head: [ORG], tail: [ORG]}\n",
        encoding="utf-8",
    )
    config = label_studio_config(load_schema(path))
    assert 'value="ORG"' in config and 'background="#123456"' in config and 'value="r"' in config


def test_relation_naming_an_unknown_type_is_rejected(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("entities:\n  - {label: ORG, colour: '#1'}\nrelations:\n  - {label: r, head: [X], tail: [ORG]}\n")
    with pytest.raises(ValueError, match="unknown entity type 'X'"):
        load_schema(path)
