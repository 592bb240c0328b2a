"""Configuration problems: one ``(field path, reason)`` pair each, collected in a ``ConfigError``.

Pydantic's errors are translated here into reasons an operator can act on
(``must be at least 1``, ``unknown key (did you mean interval?)``), with every
secret value scrubbed and every reason folded onto one bounded line.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from typing import Any, Final

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from exporter.common.redaction import redact
from exporter.config.schema import Config

SECRET_FIELDS: Final[frozenset[str]] = frozenset({"codat.api_key", "webhooks.secret"})
MAX_PROBLEMS: Final = 20
"""Problems listed one per line; the rest are counted on one more line."""
MAX_REASON_CHARS: Final = 300

Problem = tuple[str, str]


class ConfigError(Exception):
    """The configuration is unusable; ``problems`` lists every (field path, reason) found."""

    def __init__(self, problems: list[Problem]) -> None:
        """Keep the problems, each folded onto one bounded line; ``str()`` gives one line per problem."""
        self.total = len(problems)
        """How many problems were found (``problems`` may list fewer and count the rest)."""
        folded = [(path, _one_line(reason)) for path, reason in problems]
        if len(folded) > MAX_PROBLEMS:
            rest = len(folded) - MAX_PROBLEMS
            folded = [*folded[:MAX_PROBLEMS], ("", f"... and {rest} more problem{'s' if rest != 1 else ''}")]
        self.problems = folded
        super().__init__(str(self))

    def __str__(self) -> str:
        """One ``path: reason`` line per problem."""
        return "\n".join(f"{path}: {reason}" if path else reason for path, reason in self.problems)


def _one_line(reason: str) -> str:
    # PyYAML's messages span lines ("... in <unicode string>, line 3"); a problem is one line.
    text = re.sub(r"\s*\n\s*", " ", reason).strip()
    return text if len(text) <= MAX_REASON_CHARS else text[:MAX_REASON_CHARS] + "..."


def problems_from(error: ValidationError, secrets: list[str] | None = None) -> list[Problem]:
    """Translate pydantic's errors into (field path, reason) pairs with secrets scrubbed."""
    problems = []
    # Past the listed problems only the count matters: skip the work of wording them.
    for index, detail in enumerate(error.errors(include_url=False)):
        if index > MAX_PROBLEMS:
            problems.append(("", "unlisted problem"))
            continue
        loc = tuple(detail["loc"])
        ctx = detail.get("ctx") or {}
        if detail["type"] == "cross_field":
            loc = (*loc, str(ctx["field"]))
        path = format_path(loc)
        reason = _reason(detail, loc)
        if path in SECRET_FIELDS:
            reason = _without_input(detail, reason)
        reason = redact(reason, secrets or [])
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
        return f"must be a string (got {kind_of(value)})"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"must be a mapping of settings (got {kind_of(value)})"
    if kind == "list_type":
        return f"must be a list (got {kind_of(value)})"
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


def kind_of(value: Any) -> str:
    """How a YAML value is called in messages: mapping, list, string, number, boolean, null."""
    return {
        dict: "mapping",
        list: "list",
        str: "string",
        int: "number",
        float: "number",
        bool: "boolean",
        type(None): "null",
    }.get(type(value), type(value).__name__)
