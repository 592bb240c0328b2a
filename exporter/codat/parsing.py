"""Pure, tolerant parsing of Codat JSON bodies and headers into the typed models.

Tolerant where Codat is known to be loose (a never-synced data type has no
``currentStatus``; the ``dataStatus`` object may hold ``null`` entries;
timestamps carry 0–7 fractional digits; status values beyond the documented
enum), strict where a wrong value would make the exporter lie (a missing id,
an unparsable timestamp, a list that is not a list). Every strict failure
raises :class:`ShapeError` naming the field path; the client turns it into a
``MalformedResponseError`` naming the endpoint and company.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Final, TypeVar

from exporter.codat.models import Company, Connection, DataTypeStatus, Page, PullOperation, RateLimitInfo

T = TypeVar("T")

_TIMESTAMP_RE: Final = re.compile(
    r"""^(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})
        [Tt ](?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:[.,](?P<fraction>\d{1,7}))?)?
        (?P<zone>[Zz]|[+-]\d{2}:?\d{2})?$""",
    re.VERBOSE,
)
# Epoch readings below this are taken as "seconds from now", not as a date in 1973.
_RELATIVE_RESET_LIMIT: Final = 1_000_000_000
MAX_RETRY_AFTER: Final = 86400.0
"""Longest ``Retry-After`` taken at its word: Codat's quota is daily, so no wait needs to be longer."""


class ShapeError(ValueError):
    """A response body did not have the documented shape; the message names the field path."""


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
    return parsed.astimezone(UTC)


def format_timestamp(value: datetime) -> str:
    """Format an aware datetime as ISO 8601 UTC with a ``Z`` (what ``--json`` output uses)."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- field readers: each names the path of the field it failed on --------------------------------


def _object(value: object, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ShapeError(f"{path}: expected an object, got {_kind(value)}")
    return value


def _kind(value: object) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def _required_str(obj: Mapping[str, Any], key: str, path: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise ShapeError(f"{path}.{key}: expected a non-empty string, got {_kind(value)}")
    return value


def _optional_str(obj: Mapping[str, Any], key: str, path: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ShapeError(f"{path}.{key}: expected a string, got {_kind(value)}")
    return value


def _optional_timestamp(obj: Mapping[str, Any], key: str, path: str) -> datetime | None:
    value = obj.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ShapeError(f"{path}.{key}: expected a timestamp string, got {_kind(value)}")
    try:
        return parse_timestamp(value)
    except ValueError as exc:
        raise ShapeError(f"{path}.{key}: {exc}") from exc


def _required_timestamp(obj: Mapping[str, Any], key: str, path: str) -> datetime:
    value = _optional_timestamp(obj, key, path)
    if value is None:
        raise ShapeError(f"{path}.{key}: missing timestamp")
    return value


def _optional_bool(obj: Mapping[str, Any], key: str, path: str) -> bool:
    value = obj.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ShapeError(f"{path}.{key}: expected a boolean, got {_kind(value)}")
    return value


def _optional_int(obj: Mapping[str, Any], key: str, path: str, default: int = 0) -> int:
    value = obj.get(key)
    if value is None:
        return default
    # JSON decoders accept Infinity and NaN; int() of those raises something other than ShapeError.
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value != int(value)
    ):
        raise ShapeError(f"{path}.{key}: expected an integer, got {_kind(value)}")
    return int(value)


def _optional_list(obj: Mapping[str, Any], key: str, path: str) -> list[Any]:
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ShapeError(f"{path}.{key}: expected a list, got {_kind(value)}")
    return value


# --- models ---------------------------------------------------------------------------------------


def parse_data_status(key: str, entry: object, path: str = "dataStatus") -> DataTypeStatus:
    """Parse one entry of the ``dataStatus`` object (keyed by ``key``)."""
    here = f"{path}.{key}"
    obj = _object(entry, here)
    data_type = _optional_str(obj, "dataType", here) or key
    return DataTypeStatus(
        data_type=data_type,
        current_status=_optional_str(obj, "currentStatus", here) or None,
        last_successful_sync=_optional_timestamp(obj, "lastSuccessfulSync", here),
        latest_sync_id=_optional_str(obj, "latestSyncId", here) or None,
        latest_successful_sync_id=_optional_str(obj, "latestSuccessfulSyncId", here) or None,
    )


def parse_data_statuses(body: object) -> dict[str, DataTypeStatus]:
    """Parse a ``dataStatus`` body: an object keyed by data type; ``null`` entries are skipped."""
    obj = _object(body, "dataStatus")
    statuses: dict[str, DataTypeStatus] = {}
    for key, entry in obj.items():
        if entry is None:
            continue
        status = parse_data_status(key, entry)
        statuses[status.data_type] = status
    return statuses


def parse_pull_operation(body: object, path: str = "pullOperation", company_id: str = "") -> PullOperation:
    """Parse a pull operation (dataset); ``company_id`` fills a missing ``companyId``."""
    obj = _object(body, path)
    return PullOperation(
        id=_required_str(obj, "id", path),
        company_id=_optional_str(obj, "companyId", path) or company_id,
        connection_id=_optional_str(obj, "connectionId", path) or None,
        data_type=_required_str(obj, "dataType", path),
        status=_required_str(obj, "status", path),
        requested=_required_timestamp(obj, "requested", path),
        completed=_optional_timestamp(obj, "completed", path),
        progress=_optional_int(obj, "progress", path),
        is_completed=_optional_bool(obj, "isCompleted", path),
        is_errored=_optional_bool(obj, "isErrored", path),
        status_description=_optional_str(obj, "statusDescription", path),
        error_message=_optional_str(obj, "errorMessage", path),
    )


def parse_connection(body: object, path: str = "connection") -> Connection:
    """Parse one ``dataConnections[]`` entry of a company."""
    obj = _object(body, path)
    return Connection(
        id=_required_str(obj, "id", path),
        platform_name=_optional_str(obj, "platformName", path) or "",
        status=_optional_str(obj, "status", path) or "",
        integration_key=_optional_str(obj, "integrationKey", path),
        source_type=_optional_str(obj, "sourceType", path),
        last_sync=_optional_timestamp(obj, "lastSync", path),
        created=_optional_timestamp(obj, "created", path),
    )


def parse_company(body: object, path: str = "company") -> Company:
    """Parse a company as listed by ``GET /companies``."""
    obj = _object(body, path)
    raw_tags = obj.get("tags")
    tags: dict[str, str] = {}
    if raw_tags is not None:
        for tag, value in _object(raw_tags, f"{path}.tags").items():
            tags[str(tag)] = value if isinstance(value, str) else str(value)
    raw_connections = _optional_list(obj, "dataConnections", path)
    return Company(
        id=_required_str(obj, "id", path),
        name=_optional_str(obj, "name", path) or "",
        description=_optional_str(obj, "description", path),
        created=_optional_timestamp(obj, "created", path),
        last_sync=_optional_timestamp(obj, "lastSync", path),
        tags=tags,
        connections=tuple(
            parse_connection(item, f"{path}.dataConnections[{i}]") for i, item in enumerate(raw_connections)
        ),
    )


def parse_page(body: object, parse_item: Callable[[object, str], T], path: str = "page") -> Page[T]:
    """Parse a paged list body (``results``, ``pageNumber``, ``pageSize``, ``totalResults``, ``_links``)."""
    obj = _object(body, path)
    results = _optional_list(obj, "results", path)
    for key in ("pageNumber", "pageSize", "totalResults"):
        if key not in obj:
            raise ShapeError(f"{path}.{key}: missing")
    next_href: str | None = None
    links = obj.get("_links")
    if isinstance(links, Mapping):
        nxt = links.get("next")
        if isinstance(nxt, Mapping) and isinstance(nxt.get("href"), str):
            next_href = nxt["href"]
    return Page(
        results=tuple(parse_item(item, f"{path}.results[{i}]") for i, item in enumerate(results)),
        page_number=_optional_int(obj, "pageNumber", path),
        page_size=_optional_int(obj, "pageSize", path),
        total_results=_optional_int(obj, "totalResults", path),
        next_href=next_href,
    )


# --- headers --------------------------------------------------------------------------------------


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
