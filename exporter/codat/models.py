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
class Connection:
    """A company's data connection (``dataConnections[]`` of a company)."""

    id: str
    platform_name: str
    status: str
    integration_key: str | None = None
    source_type: str | None = None
    last_sync: datetime | None = None
    created: datetime | None = None


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
class Page(Generic[T]):
    """One page of a Codat list endpoint."""

    results: tuple[T, ...]
    page_number: int
    page_size: int
    total_results: int
    next_href: str | None = None

    @property
    def has_next(self) -> bool:
        """True when another page follows (a ``next`` link, or fewer results seen than the total)."""
        if self.next_href is not None:
            return True
        return self.page_number * self.page_size < self.total_results


@dataclass(frozen=True, slots=True)
class RateLimitInfo:
    """The ``X-Rate-Limit-*`` headers of the most recent Codat response that carried them."""

    limit: int | None
    remaining: int | None
    reset: datetime | None
    observed_at: datetime
