"""How the simulator writes things the way Codat does: timestamps and ErrorMessage bodies."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any


def codat_timestamp(when: datetime) -> str:
    """A UTC timestamp with 7 fractional digits and ``Z``, as Codat's .NET services write them."""
    if when.tzinfo is not UTC:
        when = when.astimezone(UTC)
    # Hand-formatted: strftime is the slowest part of listing thousands of companies.
    return (
        f"{when.year:04d}-{when.month:02d}-{when.day:02d}T"
        f"{when.hour:02d}:{when.minute:02d}:{when.second:02d}.{when.microsecond:06d}0Z"
    )


def http_date(when: datetime) -> str:
    """An RFC 1123 date (``Mon, 05 Jan 2026 00:00:00 GMT``) for headers."""
    return format_datetime(when.astimezone(UTC), usegmt=True)


def error_body(status: int, service: str, error: str, *, can_be_retried: str = "Unknown") -> dict[str, Any]:
    """Codat's ErrorMessage shape with a fresh correlation id."""
    return {
        "statusCode": status,
        "service": service,
        "error": error,
        "correlationId": uuid.uuid4().hex,
        "canBeRetried": can_be_retried,
        "detailedErrorCode": 0,
    }


def dumps(payload: Any) -> bytes:
    """Compact JSON bytes."""
    return json.dumps(payload, separators=(",", ":")).encode()


REASON_TEXT = {
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "You are using an outdated API key or a key not associated with that resource.",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    429: "You have made too many requests in a given amount of time; please retry later.",
    500: "An internal error occurred; please retry later.",
    502: "Bad Gateway",
    503: "The service is temporarily unavailable; please retry later.",
    504: "Gateway Timeout",
}


def reason_text(status: int) -> str:
    """The ``error`` text the simulator uses for an injected status code."""
    return REASON_TEXT.get(status, f"HTTP {status}")
