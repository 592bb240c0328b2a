"""Durations as a config field type: validated to float seconds, published in the JSON Schema.

Parsing and formatting live in ``exporter.common.durations``; this module only
adapts them to pydantic, so a bad duration is a field-path error like any other.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from pydantic import BeforeValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

from exporter.common.durations import DURATION_PATTERN, parse_duration


def _validate_duration(value: Any) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        # A custom error keeps the message exactly as written (no "Value error, " prefix).
        raise PydanticCustomError("duration", "{reason}", {"reason": str(exc)}) from None


DURATION_JSON_SCHEMA: Final[dict[str, Any]] = {
    "anyOf": [
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": DURATION_PATTERN},
    ],
    "description": "Seconds as a number, or a string such as 90s, 5m, 6h, 1d or 1h30m.",
}

Duration = Annotated[float, BeforeValidator(_validate_duration), WithJsonSchema(DURATION_JSON_SCHEMA)]
"""A config duration: validated to float seconds; published in the JSON Schema as number or string."""
