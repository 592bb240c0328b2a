"""Durations in the config: ``90``, ``"90s"``, ``"5m"``, ``"6h"``, ``"1d"`` (or ``"1h30m"``) → seconds.

Operators write durations the way Prometheus does; the exporter works in float
seconds. Parsing is strict: a duration that cannot be read is a config error,
never a silent zero.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Final

from pydantic import BeforeValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

UNIT_SECONDS: Final[dict[str, float]] = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
}

_PART = r"(?:\d+(?:\.\d+)?)(?:ms|s|m|h|d|w)"
DURATION_PATTERN: Final = rf"^\s*(?:\d+(?:\.\d+)?|(?:{_PART})+)\s*$"
"""A bare number of seconds, or one or more number+unit parts (``1h30m``)."""

_PART_RE: Final = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_WHOLE_RE: Final = re.compile(DURATION_PATTERN)

DURATION_HINT: Final = "use e.g. 90s, 5m, 6h, 1d"


def parse_duration(value: object) -> float:
    """Return ``value`` as seconds; raise ``ValueError`` (with a hint) if it is not a duration."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r} ({DURATION_HINT})")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and _WHOLE_RE.match(value):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            seconds = sum(float(number) * UNIT_SECONDS[unit] for number, unit in _PART_RE.findall(text))
    else:
        shown = f'"{value}"' if isinstance(value, str) else repr(value)
        raise ValueError(f"not a duration: {shown} ({DURATION_HINT})")
    if math.isnan(seconds) or math.isinf(seconds):
        raise ValueError(f"not a duration: {value!r} ({DURATION_HINT})")
    if seconds < 0:
        raise ValueError("must not be negative")
    return seconds


def format_duration(seconds: float) -> str:
    """Render seconds compactly for logs and summaries: ``45s``, ``5m``, ``7h02m``, ``2d3h``."""
    total = round(seconds)
    if total < 60:
        return f"{total}s"
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h{minutes:02d}m" if minutes else f"{hours}h"
    return f"{minutes}m{secs:02d}s" if secs else f"{minutes}m"


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
