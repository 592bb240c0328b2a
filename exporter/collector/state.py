"""Per-company poll state kept by the scheduler, and the pure steps that update it.

A ``CompanyState`` is immutable: each poll produces a new one from the old one
(``with_status_read``, ``with_failure``), and the snapshot is built from the
current states (``exporter.collector.publishing``). A failed poll keeps every
last good value and only flips ``up`` and ``last_error``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from exporter.codat.models import Company, DataTypeStatus, PullOperation
from exporter.codat.statuses import is_in_progress, is_terminal
from exporter.collector.history import HistoryLedger, HistoryRead
from exporter.collector.planner import CompanyPollState
from exporter.collector.snapshot import CompanySnapshot

DataTypeAllowed = Callable[[str], bool]


@dataclass(frozen=True, slots=True)
class CompanyState:
    """Everything the scheduler knows about one company."""

    company: Company
    poll: CompanyPollState = field(default_factory=CompanyPollState)
    ledger: HistoryLedger = field(default_factory=HistoryLedger)
    statuses: Mapping[str, DataTypeStatus] | None = None
    """Filtered data status from the last successful read (None before the first)."""
    totals: Mapping[tuple[str, str], int] = field(default_factory=dict)
    in_progress: Mapping[str, int] = field(default_factory=dict)
    up: bool = False
    last_success: datetime | None = None
    last_error: str | None = None
    attempted: bool = False
    """Polled at least once (successfully or not): counts towards readiness and the snapshot."""
    oldest_open: Mapping[str, datetime] = field(default_factory=dict)
    """``requested`` of the oldest open pull operation per data type (from the last history read)."""
    sync_schedules: Mapping[str, float] = field(default_factory=dict)
    """Codat's sync schedule in seconds per data type (from ``GET /companies/{id}/syncSettings``)."""
    sync_settings_read: datetime | None = None
    """When the sync settings were last asked for (successfully or not); None before the first."""

    def snapshot(self, refresh_last_attempt: Mapping[str, datetime] | None = None) -> CompanySnapshot:
        """The immutable view of this company that goes into a ``Snapshot``."""
        return CompanySnapshot(
            company=self.company,
            statuses=dict(self.statuses or {}),
            pull_operations_total=dict(self.totals),
            pull_operations_in_progress=dict(self.in_progress),
            up=self.up,
            last_poll_success=self.last_success,
            last_error=self.last_error,
            refresh_last_attempt=dict(refresh_last_attempt or {}),
            sync_schedules=dict(self.sync_schedules),
            oldest_open_requested=dict(self.oldest_open),
        )


def new_company_state(company: Company, seen_operations_limit: int) -> CompanyState:
    """The state of a company the exporter has not polled yet."""
    return CompanyState(company=company, ledger=HistoryLedger(limit=seen_operations_limit))


def with_status_read(
    state: CompanyState,
    statuses: Mapping[str, DataTypeStatus],
    history: HistoryRead | None,
    listed: Company,
    now: datetime,
    data_type_allowed: DataTypeAllowed,
) -> CompanyState:
    """The state after a successful dataStatus read (and history read, if one was made)."""
    kept = {dt: s for dt, s in statuses.items() if data_type_allowed(dt)}
    totals = dict(state.totals)
    ledger = state.ledger
    in_progress = dict(state.in_progress)
    oldest_open = dict(state.oldest_open)
    if history is not None:
        ledger, result = history.ledger, history.result
        for op in result.zero:
            if data_type_allowed(op.data_type):
                totals.setdefault((op.data_type, op.status), 0)
        for op in result.new_terminal:
            if data_type_allowed(op.data_type):
                key = (op.data_type, op.status)
                # A baseline operation finished before the exporter watched: its series starts
                # at zero, so the first sync after start-up shows up in increase().
                totals[key] = totals.get(key, 0) + (0 if result.baseline else 1)
        in_progress = open_by_data_type(result.open, data_type_allowed)
        oldest_open = oldest_open_by_data_type(result.open, data_type_allowed)
    elif state.statuses is None:
        # A first read without history (nothing was running): each data type's last outcome
        # starts its series at zero, so the first sync after start-up shows up in increase().
        for dt, status in kept.items():
            if status.current_status is not None and is_terminal(status.current_status):
                totals.setdefault((dt, status.current_status), 0)
    open_sync = bool(ledger.open) or any(is_in_progress(s.current_status) for s in kept.values())
    poll = CompanyPollState(
        last_sync_seen=listed.last_sync,
        connection_syncs_seen={c.id: c.last_sync for c in listed.connections},
        last_status_poll=now,
        open_sync=open_sync,
        failures=0,
        last_attempt=now,
    )
    return replace(
        state,
        company=listed,
        poll=poll,
        ledger=ledger,
        statuses=kept,
        totals=totals,
        in_progress=in_progress,
        oldest_open=oldest_open,
        up=True,
        last_success=now,
        last_error=None,
        attempted=True,
    )


def with_failure(
    state: CompanyState, error: str, now: datetime, listed: Company | None = None
) -> CompanyState:
    """The state after a failed poll: last good values kept, marked down.

    With ``listed`` (the listing's view at the attempt), its ``lastSync`` values become the
    ones "seen": a later move of them means new data, which is read at once whatever the
    retry backoff says, while an unchanged listing keeps the company on its backoff.
    """
    poll = replace(state.poll, failures=state.poll.failures + 1, last_attempt=now)
    if listed is not None:
        poll = replace(
            poll,
            last_sync_seen=listed.last_sync,
            connection_syncs_seen={c.id: c.last_sync for c in listed.connections},
        )
    return replace(state, poll=poll, up=False, last_error=error, attempted=True)


def oldest_open_by_data_type(
    operations: Iterable[PullOperation], data_type_allowed: DataTypeAllowed
) -> dict[str, datetime]:
    """``requested`` of the oldest open operation per (allowed) data type."""
    oldest: dict[str, datetime] = {}
    for op in operations:
        if data_type_allowed(op.data_type) and (
            op.data_type not in oldest or op.requested < oldest[op.data_type]
        ):
            oldest[op.data_type] = op.requested
    return oldest


def open_by_data_type(
    operations: Iterable[PullOperation], data_type_allowed: DataTypeAllowed
) -> dict[str, int]:
    """Count open operations per (allowed) data type."""
    counts: dict[str, int] = {}
    for op in operations:
        if data_type_allowed(op.data_type):
            counts[op.data_type] = counts.get(op.data_type, 0) + 1
    return counts
