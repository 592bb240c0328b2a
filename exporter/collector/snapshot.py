"""The poll snapshot: plain, immutable data that the scheduler replaces whole.

The scheduler builds a new ``Snapshot`` after every change and swaps one
reference; the exposition renderer, the landing page, auto-refresh and the
``once`` command only read it. Nobody mutates a snapshot, so a scrape never
sees a half-updated company.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from exporter.codat.models import Company, DataTypeStatus


@dataclass(frozen=True, slots=True)
class CompanySnapshot:
    """Everything the exporter knows about one company after its last poll.

    When a poll fails, the scheduler keeps the previous ``statuses`` and
    counters and only flips ``up`` and ``last_error``: one bad response never
    erases good values.
    """

    company: Company
    statuses: Mapping[str, DataTypeStatus] = field(default_factory=dict)
    """Data status by data type, already filtered by the data-type allow/deny lists."""
    pull_operations_total: Mapping[tuple[str, str], int] = field(default_factory=dict)
    """Terminal pull operations counted so far, by (data_type, status)."""
    pull_operations_in_progress: Mapping[str, int] = field(default_factory=dict)
    """Open pull operations by data type."""
    up: bool = False
    last_poll_success: datetime | None = None
    last_error: str | None = None
    refresh_last_attempt: Mapping[str, datetime] = field(default_factory=dict)
    """Last auto-refresh attempt by data type (``"all"`` for a refresh of every type)."""
    sync_schedules: Mapping[str, float] = field(default_factory=dict)
    """Codat's sync schedule (``syncSchedule``) in seconds, by data type, for types that have one."""
    oldest_open_requested: Mapping[str, datetime] = field(default_factory=dict)
    """When the oldest still-open pull operation of each data type was requested (types with one)."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The exporter's whole view of this shard's companies at one moment."""

    companies: Mapping[str, CompanySnapshot] = field(default_factory=dict)
    generated_at: datetime | None = None
    """When this snapshot was built; ``None`` for the empty start-up snapshot."""
    ready: bool = False
    """True once every company of the shard has been polled at least once."""
    cycle: int = 0
    """Poll cycles finished when this snapshot was built: listeners that act once per cycle
    (auto-refresh) compare it, since snapshots are also published while a cycle reads companies."""
