"""Durations as operators write them (``90``, ``"90s"``, ``"1h30m"``) and as the exporter shows them.

One format both ways, the Prometheus one: whole units from largest to smallest
with no padding (``7h2m``, ``1m30s``, ``2d3h``), so anything printed can be
pasted back into a config. Parsing is strict: a duration that cannot be read is
an error, never a silent zero.
"""

from __future__ import annotations

import math
import re
from typing import Final

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
_MAX_TEXT: Final = 64
"""Longer text is not a duration anyone meant; refusing it early keeps the regex cheap."""

DURATION_HINT: Final = "use e.g. 90s, 5m, 6h, 1d"
NEGATIVE: Final = "must not be negative"


def _seconds_of_text(text: str) -> float | None:
    """Seconds a duration string stands for, or None when it is not one."""
    if len(text) > _MAX_TEXT or not _WHOLE_RE.match(text):
        return None
    stripped = text.strip()
    try:
        return float(stripped)
    except ValueError:
        return sum(float(number) * UNIT_SECONDS[unit] for number, unit in _PART_RE.findall(stripped))


def parse_duration(value: object) -> float:
    """Return ``value`` as seconds; raise ``ValueError`` (with a hint) if it is not a duration.

    A negative duration (``-5m`` or ``-300``) is reported as negative, not as unreadable.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r} ({DURATION_HINT})")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (parsed := _seconds_of_text(value)) is not None:
        seconds = parsed
    elif isinstance(value, str) and _seconds_of_text(value.strip().removeprefix("-")) is not None:
        raise ValueError(NEGATIVE)
    else:
        shown = f'"{value[:_MAX_TEXT]}"' if isinstance(value, str) else repr(value)
        raise ValueError(f"not a duration: {shown} ({DURATION_HINT})")
    if math.isnan(seconds) or math.isinf(seconds):
        raise ValueError(f"not a duration: {value!r} ({DURATION_HINT})")
    if seconds < 0:
        raise ValueError(NEGATIVE)
    return seconds


def format_duration(seconds: float) -> str:
    """Render seconds compactly, two units at most: ``45s``, ``5m``, ``1m30s``, ``7h2m``, ``2d3h``."""
    total = max(0, round(seconds))
    if total < 60:
        return f"{total}s"
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h{minutes}m" if minutes else f"{hours}h"
    return f"{minutes}m{secs}s" if secs else f"{minutes}m"
