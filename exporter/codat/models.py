"""Typed, immutable views of the Codat API objects the exporter reads.

Field names follow Codat's Platform API spec in snake_case. Optional fields are
``None`` when Codat leaves them out, which it does in documented cases (a data
type that never synced has no ``currentStatus`` and no ``lastSuccessfulSync``).
Parsing from JSON lives in ``exporter.codat.parsing``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class DataTypeStatus:
    """One entry of ``GET /companies/{id}/dataStatus``."""

    data_type: str
    current_status: str | None
    last_successful_sync: datetime | None = None
    latest_sync_id: str | None = None
    latest_successful_sync_id: str | None = None


@dataclass(frozen=True, slots=True)
class PullOperation:
    """A dataset: one queued, running or finished sync of one data type."""

    id: str
    company_id: str
    connection_id: str | None
    data_type: str
    status: str
    requested: datetime
    completed: datetime | None = None
    progress: int = 0
    is_completed: bool = False
    is_errored: bool = False
    status_description: str | None = None
    error_message: str | None = None


@dataclass(frozen=True, slots=True)
class DataConnectionError:
    """One ``dataConnectionErrors[]`` entry of a connection (spec: ``Connection.dataConnectionError``).

    ``status`` is ``Active`` or ``Resolved`` for a transient error, ``None`` for one that is not.
    """

    status_code: str | None = None
    status_text: str | None = None
    error_message: str | None = None
    errored_on: datetime | None = None
    status: str | None = None
    resolved_on: datetime | None = None

    @property
    def active(self) -> bool:
        """True while Codat reports the error as ``Active``."""
        return self.status == "Active"


@dataclass(frozen=True, slots=True)
class Connection:
    """A company's data connection (``dataConnections[]`` of a company)."""

    id: str
    platform_name: str
    status: str
    integration_key: str | None = None
    source_type: str | None = None
    last_sync: datetime | None = None
    created: datetime | None = None
    errors: tuple[DataConnectionError, ...] = ()

    @property
    def active_errors(self) -> int:
        """How many of its ``dataConnectionErrors`` are ``Active``."""
        return sum(1 for e in self.errors if e.active)


@dataclass(frozen=True, slots=True)
class SyncSetting:
    """How often Codat refreshes one data type (spec: ``SyncSetting``; ``syncSchedule`` is in hours)."""

    data_type: str
    sync_schedule_hours: int
    fetch_on_first_link: bool = False
    sync_order: int = 0
    is_locked: bool = False

    @property
    def schedule_seconds(self) -> float | None:
        """The schedule in seconds; None when Codat syncs it on no schedule (``syncSchedule`` 0)."""
        return self.sync_schedule_hours * 3600.0 if self.sync_schedule_hours > 0 else None


@dataclass(frozen=True, slots=True)
class SyncSettings:
    """A company's (``GET /companies/{id}/syncSettings``) or the client's (``GET /profile/syncSettings``)
    sync settings, one per data type."""

    settings: tuple[SyncSetting, ...]
    company_id: str | None = None
    client_id: str | None = None
    overrides_defaults: bool = False

    def schedules(self) -> dict[str, float]:
        """Data type → schedule in seconds, for the types that have one."""
        return {s.data_type: s.schedule_seconds for s in self.settings if s.schedule_seconds is not None}


@dataclass(frozen=True, slots=True)
class Company:
    """A Codat company as listed by ``GET /companies``."""

    id: str
    name: str
    description: str | None = None
    created: datetime | None = None
    last_sync: datetime | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    connections: tuple[Connection, ...] = ()

    @property
    def platform(self) -> str:
        """Platform names of the company's connections, sorted and comma-joined ('' if none)."""
        return ",".join(sorted({c.platform_name for c in self.connections}))


@dataclass(frozen=True, slots=True)
class RecordFailure:
    """One record of a list page that could not be parsed; the rest of the page is kept.

    ``id`` is the record's ``id`` when it had a usable one (the company to mark
    failed), else None; ``reason`` names the field and the problem (redacted).
    """

    index: int
    id: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a Codat list endpoint (``failures``: records skipped because they did not parse)."""

    results: tuple[T, ...]
    page_number: int
    page_size: int
    total_results: int
    next_href: str | None = None
    self_href: str | None = None
    failures: tuple[RecordFailure, ...] = ()

    @property
    def has_next(self) -> bool:
        """True when another page follows (a ``next`` link, or fewer results seen than the total)."""
        if self.next_href is not None:
            return True
        return self.page_number * self.page_size < self.total_results


@dataclass(frozen=True, slots=True)
class CompanyListing:
    """Every company of a complete ``GET /companies`` walk, and the records that did not parse.

    A company listed in ``failures`` with an id is one Codat listed but whose
    record was unreadable: mark it failed with ``reason``, keep polling the rest.
    A failure without an id cannot be attributed to a company.
    """

    companies: tuple[Company, ...]
    failures: tuple[RecordFailure, ...]
    pages: int


@dataclass(frozen=True, slots=True)
class RateLimitInfo:
    """The ``X-Rate-Limit-*`` headers of the most recent Codat response that carried them."""

    limit: int | None
    remaining: int | None
    reset: datetime | None
    observed_at: datetime
