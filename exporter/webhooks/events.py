"""Parsing Codat webhook bodies into typed events, tolerantly.

Only what the exporter acts on is required: the ``eventType``, the company id of
``read.completed`` (``payload.referenceCompany.id``), of ``connection.*``
(``payload.referenceCompany.id``) and of ``company.*`` (``payload.id``), and the
``expiryDate`` of ``client.rateLimit.reached``. Everything else is optional and
read leniently, because Codat adds fields and event types over time: an unknown
event type parses to ``OtherEvent`` (counted, then ignored), and the whole
``dataTypes`` array is always read, skipping entries that are not objects
rather than failing the delivery.

Shapes follow the Platform API spec's ``webhooks`` section (ReadCompletedWebhook,
ConnectionWebhook, CompanyWebhook, ClientRateLimitWebhook). ``read.completed`` is
sent when the fetch of a product's data types completes, so one event names
several data types; ``recordsModified`` says records were created, updated or
deleted, and ``issues[]`` items of type ``warning.validation`` point at the
validation log. Codat has no ``data.sync.complete`` event: its legacy "Data sync
completed" rule was deprecated on 2025-01-10 in favour of ``read.completed``
(codat-docs ``blog/241004-deprecation-legacy-webhook-event-types.md``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from exporter.exposition.selfspecs import WEBHOOK_EVENT_TYPES

READ_COMPLETED: Final = "read.completed"
READ_COMPLETED_INITIAL: Final = "read.completed.initial"
RATE_LIMIT_REACHED: Final = "client.rateLimit.reached"
RATE_LIMIT_RESET: Final = "client.rateLimit.reset"
COMPANY_CREATED: Final = "company.created"
COMPANY_DELETED: Final = "company.deleted"
OTHER_EVENT_TYPE: Final = "other"
"""The ``event_type`` label of every event type outside ``LABELLED_EVENT_TYPES`` (keeps it bounded)."""
LABELLED_EVENT_TYPES: Final[tuple[str, ...]] = tuple(t for t in WEBHOOK_EVENT_TYPES if t != OTHER_EVENT_TYPE)
"""Event types counted under their own name: every fixed name in Codat's event catalogue (listed once,
as the webhook counter's label values). The ``{dataType}.write.successful/unsuccessful`` family is
open-ended, so it counts as ``other``."""
CONNECTION_EVENT_TYPES: Final = tuple(t for t in LABELLED_EVENT_TYPES if t.startswith("connection."))
KNOWN_EVENT_TYPES: Final = frozenset(t for t in LABELLED_EVENT_TYPES if not t.startswith("company.product."))
"""Event types the exporter acts on."""
VALIDATION_ISSUE: Final = "warning.validation"

# Codat timestamps: date, optional time with 0–7 fractional digits, optional Z or offset.
_DATETIME_RE: Final = re.compile(
    r"\s*(\d{4})-(\d{1,2})-(\d{1,2})"
    r"(?:[T ](\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.(\d+))?)?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?\s*",
    re.IGNORECASE | re.ASCII,
)


class PayloadError(ValueError):
    """A webhook body the exporter cannot act on (not JSON, not an object, a required field missing)."""


@dataclass(frozen=True, slots=True)
class DataTypeResult:
    """One element of ``read.completed``'s ``dataTypes``: the outcome of fetching one data type."""

    data_type: str | None
    status: str | None
    connection_id: str | None = None
    records_modified: bool | None = None
    validation_issues: int = 0
    """How many ``issues[]`` of type ``warning.validation`` the read reported."""


@dataclass(frozen=True, slots=True)
class ReadCompleted:
    """``read.completed`` / ``read.completed.initial``: Codat finished fetching data types of a company."""

    event_type: str
    event_id: str | None
    generated_date: datetime | None
    company_id: str
    company_name: str | None
    modified_from_date: datetime | None
    data_types: tuple[DataTypeResult, ...]

    @property
    def data_type_names(self) -> tuple[str, ...]:
        """The data types the event names, in order, without repeats."""
        return tuple(dict.fromkeys(d.data_type for d in self.data_types if d.data_type))

    def validation_issues(self) -> dict[str, int]:
        """Data type → ``warning.validation`` issues reported for it (types with none left out)."""
        counts: dict[str, int] = {}
        for result in self.data_types:
            if result.data_type and result.validation_issues:
                counts[result.data_type] = counts.get(result.data_type, 0) + result.validation_issues
        return counts


@dataclass(frozen=True, slots=True)
class ConnectionEvent:
    """``connection.*``: a data connection of a company was created, linked, lost, re-linked,
    failed to link or was deleted (``connection_status`` is its status as sent, if any)."""

    event_type: str
    event_id: str | None
    generated_date: datetime | None
    company_id: str
    connection_id: str | None
    connection_status: str | None


@dataclass(frozen=True, slots=True)
class CompanyEvent:
    """``company.created`` / ``company.deleted``."""

    event_type: str
    event_id: str | None
    generated_date: datetime | None
    company_id: str
    company_name: str | None


@dataclass(frozen=True, slots=True)
class RateLimitReached:
    """``client.rateLimit.reached``: the client's daily quota is spent until ``expiry``."""

    event_type: str
    event_id: str | None
    generated_date: datetime | None
    expiry: datetime
    daily_quota: int | None
    quota_remaining: int | None


@dataclass(frozen=True, slots=True)
class RateLimitReset:
    """``client.rateLimit.reset``: the client's quota was reset; requests may resume."""

    event_type: str
    event_id: str | None
    generated_date: datetime | None
    daily_quota: int | None
    quota_remaining: int | None


@dataclass(frozen=True, slots=True)
class OtherEvent:
    """An event type the exporter does not act on (``event_type`` is the raw value, for logs only)."""

    event_type: str
    event_id: str | None


Event = ReadCompleted | RateLimitReached | RateLimitReset | ConnectionEvent | CompanyEvent | OtherEvent


def event_type_label(event_type: str | None) -> str:
    """The bounded ``event_type`` label for a raw event type: itself if named, else ``other``."""
    if event_type in _LABELLED:
        return event_type
    return OTHER_EVENT_TYPE


_LABELLED: Final = frozenset(LABELLED_EVENT_TYPES)


def parse_lenient_datetime(value: object) -> datetime | None:
    """Read a Codat timestamp as an aware UTC datetime; ``None`` if it is not one.

    Out-of-range fields roll over instead of failing (the spec's own example
    ``2024-09-01T23:59:99Z`` becomes ``2024-09-02T00:00:39Z``); a missing zone
    means UTC; fractions beyond microseconds are truncated.
    """
    if not isinstance(value, str):
        return None
    match = _DATETIME_RE.fullmatch(value)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        # Month and day cannot roll over meaningfully; clamp the day to the month's last.
        base = datetime(int(year), int(month), 1, tzinfo=UTC)
        next_month = (base.replace(day=28) + timedelta(days=4)).replace(day=1)
        day_index = min(max(int(day), 1), (next_month - base).days) - 1
        offset = timedelta(
            days=day_index,
            hours=int(hour or 0),
            minutes=int(minute or 0),
            seconds=int(second or 0),
            microseconds=int((fraction or "0")[:6].ljust(6, "0")),
        )
        moment = base + offset - _zone_offset(zone)
    except (ValueError, OverflowError):
        return None
    return moment


def _zone_offset(zone: str | None) -> timedelta:
    if zone is None or zone.upper() == "Z":
        return timedelta(0)
    sign = -1 if zone[0] == "-" else 1
    digits = zone[1:].replace(":", "")
    return sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: object) -> int | None:
    # bool is an int subclass; a quota of True is not a number.
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _data_type_results(value: object) -> tuple[DataTypeResult, ...]:
    if not isinstance(value, list):
        return ()
    results = []
    for item in value:
        if not isinstance(item, dict):
            continue
        modified = item.get("recordsModified")
        issues = item.get("issues")
        results.append(
            DataTypeResult(
                data_type=_str(item.get("dataType")),
                status=_str(item.get("status")),
                connection_id=_str(item.get("connectionId")),
                records_modified=modified if isinstance(modified, bool) else None,
                validation_issues=sum(
                    1 for i in issues if isinstance(i, dict) and i.get("type") == VALIDATION_ISSUE
                )
                if isinstance(issues, list)
                else 0,
            )
        )
    return tuple(results)


def parse_event(body: bytes) -> Event:
    """Parse a verified webhook body; raise ``PayloadError`` if it cannot be acted on."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise PayloadError("body is not valid JSON") from None
    if not isinstance(document, dict):
        raise PayloadError("body is not a JSON object")
    event_type = document.get("eventType")
    if not isinstance(event_type, str) or not event_type:
        raise PayloadError("eventType is missing")
    event_id = _str(document.get("id"))
    generated = parse_lenient_datetime(document.get("generatedDate"))
    payload = document.get("payload")
    if event_type not in KNOWN_EVENT_TYPES:
        return OtherEvent(event_type, event_id)
    if not isinstance(payload, dict):
        raise PayloadError(f"{event_type}: payload is missing")
    if event_type in (READ_COMPLETED, READ_COMPLETED_INITIAL):
        company = _object(payload.get("referenceCompany"))
        company_id = _str(company.get("id"))
        if company_id is None:
            raise PayloadError(f"{event_type}: payload.referenceCompany.id is missing")
        return ReadCompleted(
            event_type=event_type,
            event_id=event_id,
            generated_date=generated,
            company_id=company_id,
            company_name=_str(company.get("name")),
            modified_from_date=parse_lenient_datetime(payload.get("modifiedFromDate")),
            data_types=_data_type_results(payload.get("dataTypes")),
        )
    if event_type in CONNECTION_EVENT_TYPES:
        company_id = _str(_object(payload.get("referenceCompany")).get("id"))
        if company_id is None:
            raise PayloadError(f"{event_type}: payload.referenceCompany.id is missing")
        connection = _object(payload.get("connection"))
        return ConnectionEvent(
            event_type,
            event_id,
            generated,
            company_id,
            _str(connection.get("id")),
            _str(connection.get("status")),
        )
    if event_type in (COMPANY_CREATED, COMPANY_DELETED):
        company_id = _str(payload.get("id"))
        if company_id is None:
            raise PayloadError(f"{event_type}: payload.id is missing")
        return CompanyEvent(event_type, event_id, generated, company_id, _str(payload.get("name")))
    daily_quota = _int(payload.get("dailyQuota"))
    remaining = _int(payload.get("quotaRemaining"))
    if event_type == RATE_LIMIT_REACHED:
        expiry = parse_lenient_datetime(payload.get("expiryDate"))
        if expiry is None:
            raise PayloadError(f"{event_type}: payload.expiryDate is missing or not a date")
        return RateLimitReached(event_type, event_id, generated, expiry, daily_quota, remaining)
    return RateLimitReset(event_type, event_id, generated, daily_quota, remaining)
