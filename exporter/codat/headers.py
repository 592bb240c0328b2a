"""Pure parsing of the HTTP headers Codat's answers carry: ``Retry-After`` and ``X-Rate-Limit-*``."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Final

from exporter.codat.models import RateLimitInfo
from exporter.codat.timestamps import parse_timestamp

MAX_RETRY_AFTER: Final = 86400.0
"""Longest ``Retry-After`` taken at its word: Codat's quota is daily, so no wait needs to be longer."""
# Epoch readings below this are taken as "seconds from now", not as a date in 1973.
_RELATIVE_RESET_LIMIT: Final = 1_000_000_000


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value.strip()
    return None


def parse_http_date(value: str) -> datetime | None:
    """An RFC 1123 / RFC 850 / asctime HTTP date as aware UTC, or None."""
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date); None if absent/bad.

    At most ``MAX_RETRY_AFTER``: callers add the wait to a datetime, which a huge value would overflow.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        when = parse_http_date(text)
        if when is None:
            return None
        return min(MAX_RETRY_AFTER, max(0.0, (when - now).total_seconds()))
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return min(MAX_RETRY_AFTER, seconds)


def parse_rate_limit_reset(value: str | None, now: datetime) -> datetime | None:
    """``X-Rate-Limit-Reset``, whose format Codat does not document: RFC 1123, ISO 8601 or epoch.

    A small number is read as seconds from ``now`` (some APIs send a delta); an
    epoch in milliseconds is scaled down. Anything else gives None.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        if number != number or number < 0:
            return None
        if number < _RELATIVE_RESET_LIMIT:
            return now + timedelta(seconds=number)
        if number > _RELATIVE_RESET_LIMIT * 1000:
            number /= 1000
        try:
            return datetime.fromtimestamp(number, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    try:
        return parse_timestamp(text)
    except ValueError:
        return parse_http_date(text)


def _header_int(headers: Mapping[str, str], name: str) -> int | None:
    value = _header(headers, name)
    if value is None:
        return None
    try:
        return int(float(value))
    except (ValueError, OverflowError):  # not a number, NaN, or infinite
        return None


def parse_rate_limit(headers: Mapping[str, str], now: datetime) -> RateLimitInfo | None:
    """The ``X-Rate-Limit-Limit/-Remaining/-Reset`` headers, or None when none is usable."""
    limit = _header_int(headers, "X-Rate-Limit-Limit")
    remaining = _header_int(headers, "X-Rate-Limit-Remaining")
    reset = parse_rate_limit_reset(_header(headers, "X-Rate-Limit-Reset"), now)
    if limit is None and remaining is None and reset is None:
        return None
    return RateLimitInfo(limit=limit, remaining=remaining, reset=reset, observed_at=now)
