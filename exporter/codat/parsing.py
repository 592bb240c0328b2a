"""Pure, tolerant parsing of Codat JSON bodies into the typed models.

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
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Final, TypeVar

# Re-exported: timestamp and header parsing lived here before they got modules of their own.
from exporter.codat.headers import MAX_RETRY_AFTER as MAX_RETRY_AFTER
from exporter.codat.headers import parse_http_date as parse_http_date
from exporter.codat.headers import parse_rate_limit as parse_rate_limit
from exporter.codat.headers import parse_rate_limit_reset as parse_rate_limit_reset
from exporter.codat.headers import parse_retry_after as parse_retry_after
from exporter.codat.models import (
    Company,
    Connection,
    DataConnectionError,
    DataTypeStatus,
    Page,
    PullOperation,
    RecordFailure,
    SyncSetting,
    SyncSettings,
)
from exporter.codat.timestamps import format_timestamp as format_timestamp
from exporter.codat.timestamps import parse_timestamp

T = TypeVar("T")

MAX_FUTURE_SKEW: Final = timedelta(days=1)
"""How far past "now" a Codat timestamp may lie before it is malformed data rather than clock skew."""
_MAX_ID_IN_REASON: Final = 100


class ShapeError(ValueError):
    """A response body did not have the documented shape; the message names the field path."""


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


def _optional_timestamp(
    obj: Mapping[str, Any], key: str, path: str, now: datetime | None = None
) -> datetime | None:
    value = obj.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ShapeError(f"{path}.{key}: expected a timestamp string, got {_kind(value)}")
    try:
        parsed = parse_timestamp(value)
    except ValueError as exc:
        raise ShapeError(f"{path}.{key}: {exc}") from exc
    if now is not None and parsed - now > MAX_FUTURE_SKEW:
        # Every Codat timestamp records something that already happened; an age below zero would lie.
        days = (parsed - now).total_seconds() / 86400
        raise ShapeError(f"{path}.{key}: {value!r} is {days:,.0f} days in the future (malformed data)")
    return parsed


def _required_timestamp(obj: Mapping[str, Any], key: str, path: str, now: datetime | None = None) -> datetime:
    value = _optional_timestamp(obj, key, path, now)
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


def parse_data_status(
    key: str, entry: object, path: str = "dataStatus", now: datetime | None = None
) -> DataTypeStatus:
    """Parse one entry of the ``dataStatus`` object (keyed by ``key``).

    With ``now``, a timestamp more than ``MAX_FUTURE_SKEW`` ahead of it is malformed.
    """
    here = f"{path}.{key}"
    obj = _object(entry, here)
    data_type = _optional_str(obj, "dataType", here) or key
    return DataTypeStatus(
        data_type=data_type,
        current_status=_optional_str(obj, "currentStatus", here) or None,
        last_successful_sync=_optional_timestamp(obj, "lastSuccessfulSync", here, now),
        latest_sync_id=_optional_str(obj, "latestSyncId", here) or None,
        latest_successful_sync_id=_optional_str(obj, "latestSuccessfulSyncId", here) or None,
    )


def parse_data_statuses(body: object, now: datetime | None = None) -> dict[str, DataTypeStatus]:
    """Parse a ``dataStatus`` body: an object keyed by data type; ``null`` entries are skipped."""
    obj = _object(body, "dataStatus")
    statuses: dict[str, DataTypeStatus] = {}
    for key, entry in obj.items():
        if entry is None:
            continue
        status = parse_data_status(key, entry, now=now)
        statuses[status.data_type] = status
    return statuses


def parse_pull_operation(
    body: object, path: str = "pullOperation", company_id: str = "", now: datetime | None = None
) -> PullOperation:
    """Parse a pull operation (dataset); ``company_id`` fills a missing ``companyId``."""
    obj = _object(body, path)
    return PullOperation(
        id=_required_str(obj, "id", path),
        company_id=_optional_str(obj, "companyId", path) or company_id,
        connection_id=_optional_str(obj, "connectionId", path) or None,
        data_type=_required_str(obj, "dataType", path),
        status=_required_str(obj, "status", path),
        requested=_required_timestamp(obj, "requested", path, now),
        completed=_optional_timestamp(obj, "completed", path, now),
        progress=_optional_int(obj, "progress", path),
        is_completed=_optional_bool(obj, "isCompleted", path),
        is_errored=_optional_bool(obj, "isErrored", path),
        status_description=_optional_str(obj, "statusDescription", path),
        error_message=_optional_str(obj, "errorMessage", path),
    )


def parse_connection(body: object, path: str = "connection", now: datetime | None = None) -> Connection:
    """Parse one ``dataConnections[]`` entry of a company (or one ``GET …/connections`` result)."""
    obj = _object(body, path)
    return Connection(
        id=_required_str(obj, "id", path),
        platform_name=_optional_str(obj, "platformName", path) or "",
        status=_optional_str(obj, "status", path) or "",
        integration_key=_optional_str(obj, "integrationKey", path),
        source_type=_optional_str(obj, "sourceType", path),
        last_sync=_optional_timestamp(obj, "lastSync", path, now),
        created=_optional_timestamp(obj, "created", path, now),
        errors=parse_connection_errors(obj.get("dataConnectionErrors")),
    )


def parse_connection_errors(value: object) -> tuple[DataConnectionError, ...]:
    """Read ``dataConnectionErrors`` leniently: they only inform a gauge, so an odd entry is
    skipped and an odd field left empty rather than failing the company that carries them."""
    if not isinstance(value, list):
        return ()
    errors = []
    for item in value:
        if not isinstance(item, Mapping):
            continue
        code = item.get("statusCode")
        errors.append(
            DataConnectionError(
                status_code=str(code) if isinstance(code, str | int) and not isinstance(code, bool) else None,
                status_text=_lenient_str(item.get("statusText")),
                error_message=_lenient_str(item.get("errorMessage")),
                errored_on=_lenient_timestamp(item.get("erroredOnUtc")),
                status=_lenient_str(item.get("status")),
                resolved_on=_lenient_timestamp(item.get("resolvedOnUtc")),
            )
        )
    return tuple(errors)


def _lenient_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _lenient_timestamp(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_timestamp(value)
    except ValueError:
        return None


def parse_sync_setting(body: object, path: str = "syncSetting") -> SyncSetting:
    """Parse one ``SyncSetting`` (``dataType`` and ``syncSchedule`` in whole hours are required)."""
    obj = _object(body, path)
    hours = _optional_int(obj, "syncSchedule", path, default=-1)
    if hours < 0:
        raise ShapeError(
            f"{path}.syncSchedule: expected hours (0 or more), got {_kind(obj.get('syncSchedule'))}"
        )
    return SyncSetting(
        data_type=_required_str(obj, "dataType", path),
        sync_schedule_hours=hours,
        fetch_on_first_link=_optional_bool(obj, "fetchOnFirstLink", path),
        sync_order=_optional_int(obj, "syncOrder", path),
        is_locked=_optional_bool(obj, "isLocked", path),
    )


def parse_sync_settings(body: object, path: str = "syncSettings") -> SyncSettings:
    """Parse ``CompanySyncSettings`` or the client-wide ``SyncSettings``."""
    obj = _object(body, path)
    items = _optional_list(obj, "settings", path)
    return SyncSettings(
        settings=tuple(parse_sync_setting(item, f"{path}.settings[{i}]") for i, item in enumerate(items)),
        company_id=_optional_str(obj, "companyId", path),
        client_id=_optional_str(obj, "clientId", path),
        overrides_defaults=_optional_bool(obj, "overridesDefaults", path),
    )


def parse_company(body: object, path: str = "company", now: datetime | None = None) -> Company:
    """Parse a company as listed by ``GET /companies``."""
    obj = _object(body, path)
    raw_tags = obj.get("tags")
    tags: dict[str, str] = {}
    if raw_tags is not None:
        for tag, value in _object(raw_tags, f"{path}.tags").items():
            # A null value is no value: it must not become the label value "None".
            if value is not None:
                tags[str(tag)] = value if isinstance(value, str) else str(value)
    raw_connections = _optional_list(obj, "dataConnections", path)
    return Company(
        id=_required_str(obj, "id", path),
        name=_optional_str(obj, "name", path) or "",
        description=_optional_str(obj, "description", path),
        created=_optional_timestamp(obj, "created", path, now),
        last_sync=_optional_timestamp(obj, "lastSync", path, now),
        tags=tags,
        connections=tuple(
            parse_connection(item, f"{path}.dataConnections[{i}]", now)
            for i, item in enumerate(raw_connections)
        ),
    )


def _href(links: object, name: str) -> str | None:
    if isinstance(links, Mapping):
        link = links.get(name)
        if isinstance(link, Mapping) and isinstance(link.get("href"), str):
            return str(link["href"])
    return None


def parse_page(
    body: object, parse_item: Callable[[object, str], T], path: str = "page", *, per_record: bool = False
) -> Page[T]:
    """Parse a paged list body (``results``, ``pageNumber``, ``pageSize``, ``totalResults``, ``_links``).

    By default one bad record fails the page. With ``per_record``, a record that
    cannot be parsed becomes a :class:`RecordFailure` in ``Page.failures`` (its
    id when it has a readable one, and why) and every other record is kept.
    """
    obj = _object(body, path)
    items = _optional_list(obj, "results", path)
    for key in ("pageNumber", "pageSize", "totalResults"):
        if key not in obj:
            raise ShapeError(f"{path}.{key}: missing")
    results: list[T] = []
    failures: list[RecordFailure] = []
    for i, item in enumerate(items):
        here = f"{path}.results[{i}]"
        if not per_record:
            results.append(parse_item(item, here))
            continue
        try:
            results.append(parse_item(item, here))
        except ShapeError as exc:
            failures.append(RecordFailure(index=i, id=_record_id(item), reason=str(exc)))
    links = obj.get("_links")
    return Page(
        results=tuple(results),
        page_number=_optional_int(obj, "pageNumber", path),
        page_size=_optional_int(obj, "pageSize", path),
        total_results=_optional_int(obj, "totalResults", path),
        next_href=_href(links, "next"),
        self_href=_href(links, "self"),
        failures=tuple(failures),
    )


def _record_id(item: object) -> str | None:
    """The ``id`` of a record that failed to parse, when it has a usable one (to say who failed)."""
    if not isinstance(item, Mapping):
        return None
    value = item.get("id")
    if not isinstance(value, str) or not value or len(value) > _MAX_ID_IN_REASON:
        return None
    return value
