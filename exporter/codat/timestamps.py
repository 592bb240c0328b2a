"""Codat timestamps: parsing the forms Codat sends into aware UTC datetimes, and formatting them."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Final

_TIMESTAMP_RE: Final = re.compile(
    r"""^(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})
        [Tt ](?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:[.,](?P<fraction>\d{1,7}))?)?
        (?P<zone>[Zz]|[+-]\d{2}:?\d{2})?$""",
    re.VERBOSE,
)


def parse_timestamp(value: str) -> datetime:
    """Parse a Codat timestamp into an aware UTC datetime.

    Accepts 0–7 fractional digits (digits past microseconds are truncated),
    ``Z`` or ``±HH:MM``/``±HHMM`` offsets, and naive values, which Codat-made
    sync timestamps mean as UTC. Raises ``ValueError`` naming the problem for
    anything else, including impossible values such as ``23:59:99Z``.
    """
    match = _TIMESTAMP_RE.match(value.strip())
    if match is None:
        raise ValueError(f"not an ISO 8601 timestamp: {value!r}")
    fraction = (match["fraction"] or "").ljust(6, "0")[:6]
    tz: timezone = UTC
    zone = match["zone"]
    if zone and zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:])
        if hours > 23 or minutes > 59:
            raise ValueError(f"invalid UTC offset in timestamp {value!r}")
        tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
    try:
        parsed = datetime(
            int(match["year"]),
            int(match["month"]),
            int(match["day"]),
            int(match["hour"]),
            int(match["minute"]),
            int(match["second"] or 0),
            int(fraction),
            tzinfo=tz,
        )
    except ValueError as exc:
        raise ValueError(f"invalid timestamp {value!r}: {exc}") from exc
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        # 9999-12-31T23:59:59-01:00 is a valid local time whose UTC instant is past year 9999.
        raise ValueError(f"timestamp {value!r} is out of range once converted to UTC") from None


def format_timestamp(value: datetime) -> str:
    """Format an aware datetime as ISO 8601 UTC with a ``Z`` (what ``--json`` output uses)."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
