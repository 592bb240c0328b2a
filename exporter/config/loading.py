"""Loading the config: YAML file, then environment, then command-line overrides, then validation.

Precedence is flags (``overrides``) over environment over file. Secrets given as
files (``codat.api_key_file``, ``webhooks.secret_file``) are read here, so the
rest of the exporter only ever sees ``SecretStr`` values. Every problem becomes a
(field path, reason) pair in one ``ConfigError``; no message ever carries a
secret value.
"""

from __future__ import annotations

import difflib
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from exporter.config.schema import Config

ENV_API_KEY: Final = "CODAT_API_KEY"
ENV_API_KEY_FILE: Final = "CODAT_API_KEY_FILE"
ENV_BASE_URL: Final = "CODAT_BASE_URL"
ENV_LISTEN_ADDRESS: Final = "CODAT_EXPORTER_LISTEN_ADDRESS"
ENV_LOG_LEVEL: Final = "CODAT_EXPORTER_LOG_LEVEL"
ENV_WEBHOOK_SECRET: Final = "CODAT_WEBHOOK_SECRET"  # noqa: S105 - a variable name, not a secret
ENV_WEBHOOK_SECRET_FILE: Final = "CODAT_WEBHOOK_SECRET_FILE"  # noqa: S105

SECRET_FIELDS: Final[frozenset[str]] = frozenset({"codat.api_key", "webhooks.secret"})
REDACTED: Final = "[redacted]"

Problem = tuple[str, str]


class ConfigError(Exception):
    """The configuration is unusable; ``problems`` lists every (field path, reason) found."""

    def __init__(self, problems: list[Problem]) -> None:
        """Keep the problems; ``str()`` gives one ``path: reason`` line per problem."""
        self.problems = list(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        """One ``path: reason`` line per problem."""
        return "\n".join(f"{path}: {reason}" if path else reason for path, reason in self.problems)


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that rejects a key given twice in one mapping (PyYAML keeps the last)."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if isinstance(key, str) and key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_unique_mapping,
)


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse a YAML config file into a mapping (empty file → ``{}``); raise ``ConfigError`` if unusable."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([(name, "config file not found")]) from None
    except IsADirectoryError:
        raise ConfigError([(name, "is a directory, not a config file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ConfigError([(name, f"cannot read config file: {reason}")]) from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError([(name, f"{where}invalid YAML: {problem}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([(name, f"invalid YAML: {exc}")]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([(name, f"the top level must be a mapping of settings, not a {_kind(data)}")])
    return data


def load_config(
    path: Path | None,
    env: Mapping[str, str] = os.environ,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Load and validate the config: file (optional), then ``env``, then ``overrides``.

    ``overrides`` (from command-line flags) takes nested sections
    (``{"sharding": {"shard": 1}}``) or dotted keys (``{"sharding.shard": 1}``);
    ``None`` values (flags not given) are ignored.
    """
    file_layer = read_config_file(path) if path is not None else {}
    layers = [_drop_empty_sections(file_layer), env_layer(env), _nest(overrides or {})]
    merged: dict[str, Any] = {}
    for layer in layers:
        _merge_layer(merged, layer)
    problems: list[Problem] = []
    _resolve_secret_file(merged, "codat", "api_key", "api_key_file", problems)
    _resolve_secret_file(merged, "webhooks", "secret", "secret_file", problems)
    secrets = _secret_values(merged)
    try:
        config = Config.model_validate(merged)
    except ValidationError as exc:
        problems.extend(problems_from(exc, secrets))
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    return config


def env_layer(env: Mapping[str, str]) -> dict[str, Any]:
    """The settings the environment gives, as a nested mapping (unset or empty variables give nothing)."""
    layer: dict[str, Any] = {}

    def put(section: str, key: str, value: Any) -> None:
        layer.setdefault(section, {})[key] = value

    if env.get(ENV_API_KEY):
        put("codat", "api_key", env[ENV_API_KEY].strip())
    if env.get(ENV_API_KEY_FILE):
        put("codat", "api_key_file", env[ENV_API_KEY_FILE])
    if env.get(ENV_BASE_URL):
        put("codat", "base_url", env[ENV_BASE_URL])
    if env.get(ENV_LISTEN_ADDRESS):
        put("server", "listen_address", env[ENV_LISTEN_ADDRESS])
    if env.get(ENV_LOG_LEVEL):
        put("logging", "level", env[ENV_LOG_LEVEL])
    if env.get(ENV_WEBHOOK_SECRET):
        put("webhooks", "secret", env[ENV_WEBHOOK_SECRET].strip())
        put("webhooks", "enabled", True)
    if env.get(ENV_WEBHOOK_SECRET_FILE):
        put("webhooks", "secret_file", env[ENV_WEBHOOK_SECRET_FILE])
        put("webhooks", "enabled", True)
    return layer


def _merge_layer(merged: dict[str, Any], layer: Mapping[str, Any]) -> None:
    """Merge one layer into ``merged`` section by section.

    A secret and its file are one setting: a layer that gives either replaces
    both of a lower layer (an env key file beats a key in the YAML file).
    """
    for section, values in layer.items():
        if not isinstance(values, Mapping) or not isinstance(merged.get(section), dict):
            merged[section] = dict(values) if isinstance(values, Mapping) else values
            continue
        target = merged[section]
        for secret, secret_file in (("api_key", "api_key_file"), ("secret", "secret_file")):
            if secret in values or secret_file in values:
                target.pop(secret, None)
                target.pop(secret_file, None)
        target.update(values)


def _nest(overrides: Mapping[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for key, value in overrides.items():
        if value is None:  # a flag that was not given overrides nothing
            continue
        if "." in key:
            section, _, name = key.partition(".")
            nested.setdefault(section, {})[name] = value
        elif isinstance(value, Mapping):
            nested.setdefault(key, {}).update(value)
        else:
            nested[key] = value
    return nested


def _drop_empty_sections(data: dict[str, Any]) -> dict[str, Any]:
    # "auto_refresh:" with every key commented out is YAML null: treat it as "all defaults".
    return {key: value for key, value in data.items() if not (value is None and key in Config.model_fields)}


def _resolve_secret_file(
    merged: dict[str, Any], section: str, secret: str, secret_file: str, problems: list[Problem]
) -> None:
    values = merged.get(section)
    if not isinstance(values, dict) or values.get(secret) is not None:
        return
    file_name = values.get(secret_file)
    if not isinstance(file_name, str) or not file_name:
        return
    try:
        text = Path(file_name).read_text(encoding="utf-8").strip()
    except OSError as exc:
        problems.append((f"{section}.{secret_file}", f"cannot read {file_name}: {exc.strerror or exc}"))
        return
    except UnicodeDecodeError:
        problems.append((f"{section}.{secret_file}", f"cannot read {file_name}: not UTF-8 text"))
        return
    if not text:
        problems.append((f"{section}.{secret_file}", f"{file_name} is empty"))
        return
    values[secret] = text


def _secret_values(merged: Mapping[str, Any]) -> list[str]:
    found = []
    for dotted in SECRET_FIELDS:
        section, _, key = dotted.partition(".")
        values = merged.get(section)
        if isinstance(values, Mapping) and isinstance(values.get(key), str) and values[key]:
            found.append(values[key])
    return found


# --- turning pydantic errors into (path, reason) ---------------------------------


def problems_from(error: ValidationError, secrets: list[str] | None = None) -> list[Problem]:
    """Translate pydantic's errors into (field path, reason) pairs with secrets scrubbed."""
    problems = []
    for detail in error.errors(include_url=False):
        loc = tuple(detail["loc"])
        ctx = detail.get("ctx") or {}
        if detail["type"] == "cross_field":
            loc = (*loc, str(ctx["field"]))
        path = format_path(loc)
        reason = _reason(detail, loc)
        if path in SECRET_FIELDS:
            reason = _without_input(detail, reason)
        for value in secrets or []:
            reason = reason.replace(value, REDACTED)
        problems.append((path, reason))
    return problems


def format_path(loc: tuple[int | str, ...]) -> str:
    """``("auto_refresh", "rules", 0, "max_staleness")`` → ``auto_refresh.rules[0].max_staleness``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _reason(detail: ErrorDetails, loc: tuple[int | str, ...]) -> str:
    kind = detail["type"]
    ctx = detail.get("ctx") or {}
    value = detail.get("input")
    if kind == "extra_forbidden":
        return _unknown_key(loc)
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        word = {
            "greater_than_equal": "at least",
            "greater_than": "greater than",
            "less_than_equal": "at most",
            "less_than": "less than",
        }[kind]
        bound = next(iter(ctx.values()))
        return f"must be {word} {_number(bound)}"
    if kind == "literal_error":
        expected = str(ctx.get("expected", "")).replace("'", "")
        return f"must be one of {expected} (got {_shown(value)})"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"must be a whole number (got {_shown(value)})"
    if kind in ("float_type", "float_parsing"):
        return f"must be a number (got {_shown(value)})"
    if kind in ("bool_type", "bool_parsing"):
        return f"must be true or false (got {_shown(value)})"
    if kind == "string_type":
        return f"must be a string (got {_kind(value)})"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"must be a mapping of settings (got {_kind(value)})"
    if kind == "list_type":
        return f"must be a list (got {_kind(value)})"
    if kind == "too_short":
        return "must not be empty"
    if kind == "missing":
        return "is required"
    return detail["msg"]


def _without_input(detail: ErrorDetails, reason: str) -> str:
    # Secret fields: describe the kind of value, never the value.
    if detail["type"] in ("string_type",):
        return reason
    if "got" in reason:
        return reason.split(" (got", 1)[0]
    return reason


def _unknown_key(loc: tuple[int | str, ...]) -> str:
    known = _known_keys(loc[:-1])
    key = str(loc[-1])
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f"unknown key (did you mean {close[0]}?)"
    if known:
        return f"unknown key (known keys: {', '.join(known)})"
    return "unknown key"


def _known_keys(loc: tuple[int | str, ...]) -> list[str]:
    """The field names of the model found at ``loc`` (``[]`` if ``loc`` is not a model)."""
    model: Any = Config
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return []
        model = _model_of(model.model_fields[part].annotation)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


def _model_of(annotation: Any) -> Any:
    """The model inside ``X``, ``list[X]`` or ``X | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (list, typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _model_of(arg)
            if found is not None:
                return found
    return None


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


def _kind(value: Any) -> str:
    return {
        dict: "mapping",
        list: "list",
        str: "string",
        int: "number",
        float: "number",
        bool: "boolean",
        type(None): "null",
    }.get(type(value), type(value).__name__)
