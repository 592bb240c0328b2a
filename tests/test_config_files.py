"""The published config files: config.example.yaml documents every key; config.schema.json is in sync."""

from __future__ import annotations

import json
import re
import typing
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml
from pydantic import BaseModel

from exporter.config import Config, load_config
from exporter.config.schema_export import render_schema
from tests.support.tools import REPO_ROOT

EXAMPLE = REPO_ROOT / "config.example.yaml"
SCHEMA = REPO_ROOT / "config.schema.json"


def field_paths(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every leaf field path of the model; list-of-model fields descend into their item model."""
    paths = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        inner = typing.get_args(annotation)[0] if typing.get_origin(annotation) is list else annotation
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            paths.append((*prefix, name))
            paths.extend(field_paths(inner, (*prefix, name)))
        else:
            paths.append((*prefix, name))
    return paths


def lookup(data: Any, path: tuple[str, ...]) -> bool:
    for part in path:
        if isinstance(data, list):
            data = data[0]
        if not isinstance(data, dict) or part not in data:
            return False
        data = data[part]
    return True


def test_example_lists_every_config_field() -> None:
    example = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    missing = [".".join(path) for path in field_paths(Config) if not lookup(example, path)]
    assert missing == []


def test_every_key_in_example_has_a_comment_above_it() -> None:
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    undocumented = []
    for number, line in enumerate(lines):
        match = re.match(r"^(\s*)(?:- )?([a-z_]+):", line)
        if not match or not match.group(1):  # top-level sections are headings
            continue
        previous = lines[number - 1].strip()
        if not previous.startswith("#"):
            undocumented.append(match.group(2))
    assert undocumented == []


def test_example_loads_to_exactly_the_defaults() -> None:
    assert load_config(EXAMPLE, env={}) == Config.default()


def test_example_validates_against_published_schema() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(yaml.safe_load(EXAMPLE.read_text(encoding="utf-8")), schema)


def test_committed_schema_equals_generated_schema() -> None:
    assert SCHEMA.read_text(encoding="utf-8") == render_schema(), (
        "config.schema.json is stale: run python -m exporter.config.schema_export"
    )


@pytest.mark.parametrize(
    ("document", "valid"),
    [
        ({"polling": {"interval": "5m"}}, True),
        ({"polling": {"interval": 300}}, True),
        ({"polling": {"interval": "6 hours"}}, False),
        ({"polling": {"intervl": "5m"}}, False),
        ({"metrics": {"status_mode": "loud"}}, False),
    ],
)
def test_schema_accepts_what_the_loader_accepts(document: dict[str, Any], valid: bool) -> None:
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))
    assert validator.is_valid(document) is valid
