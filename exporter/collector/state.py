"""Per-company poll state kept by the scheduler, and the pure steps that update it.

A ``CompanyState`` is immutable: each poll produces a new one from the old one
(``with_status_read``, ``with_failure``), and the snapshot is built from the
current states. A failed poll keeps every last good value and only flips
``up`` and ``last_error``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from exporter.codat.models import Company, DataTypeStatus, PullOperation
from exporter.codat.statuses import is_in_progress
from exporter.collector.history import HistoryLedger, ScanResult
from exporter.collector.planner import CompanyPollState
from exporter.collector.snapshot import CompanySnapshot, Snapshot
from exporter.globs import matches_any


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
        )


def new_company_state(company: Company, seen_operations_limit: int) -> CompanyState:
    """The state of a company the exporter has not polled yet."""
    return CompanyState(company=company, ledger=HistoryLedger(limit=seen_operations_limit))


def with_status_read(
    state: CompanyState,
    statuses: Mapping[str, DataTypeStatus],
    scan: tuple[HistoryLedger, ScanResult] | None,
    listed: Company,
    now: datetime,
    data_type_allowed: DataTypeFilter,
) -> CompanyState:
    """The state after a successful dataStatus read (and history scan, if one was made)."""
    kept = {dt: s for dt, s in statuses.items() if data_type_allowed(dt)}
    totals = dict(state.totals)
    ledger = state.ledger
    in_progress = dict(state.in_progress)
    if scan is not None:
        ledger, result = scan
        for op in result.new_terminal:
            if data_type_allowed(op.data_type):
                key = (op.data_type, op.status)
                # A baseline operation finished before the exporter watched: its series starts
                # at zero, so the first sync after start-up shows up in increase().
                totals[key] = totals.get(key, 0) + (0 if result.baseline else 1)
        in_progress = open_by_data_type(result.open, data_type_allowed)
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
        up=True,
        last_success=now,
        last_error=None,
        attempted=True,
    )


def with_failure(state: CompanyState, error: str, now: datetime) -> CompanyState:
    """The state after a failed poll: last good values kept, marked down."""
    poll = replace(state.poll, failures=state.poll.failures + 1, last_attempt=now)
    return replace(state, poll=poll, up=False, last_error=error, attempted=True)


def open_by_data_type(
    operations: Iterable[PullOperation], data_type_allowed: DataTypeFilter
) -> dict[str, int]:
    """Count open operations per (allowed) data type."""
    counts: dict[str, int] = {}
    for op in operations:
        if data_type_allowed(op.data_type):
            counts[op.data_type] = counts.get(op.data_type, 0) + 1
    return counts


class DataTypeFilter:
    """Data-type allow/deny globs: allowed when it matches an include (or there are none) and no exclude."""

    def __init__(self, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> None:
        """Keep the glob lists."""
        self.include = tuple(include)
        self.exclude = tuple(exclude)

    def __call__(self, data_type: str) -> bool:
        """True when ``data_type`` is exported."""
        if self.include and not matches_any(data_type, self.include):
            return False
        return not matches_any(data_type, self.exclude)


class CompanyFilter:
    """Company include/exclude globs (on id or name) and an optional explicit id list."""

    def __init__(
        self, ids: Sequence[str] = (), include: Sequence[str] = (), exclude: Sequence[str] = ()
    ) -> None:
        """Keep the selection."""
        self.ids = frozenset(ids)
        self.include = tuple(include)
        self.exclude = tuple(exclude)

    def __call__(self, company: Company) -> bool:
        """True when ``company`` is selected."""
        if self.ids and company.id not in self.ids:
            return False
        names = (company.id, company.name)
        if self.include and not any(matches_any(n, self.include) for n in names):
            return False
        return not any(matches_any(n, self.exclude) for n in names)


class SnapshotBuilder:
    """Builds snapshots, reusing a company's ``CompanySnapshot`` object while nothing of it changed.

    The exposition re-renders only companies whose snapshot object is new (or unequal): handing it
    the same object for an unchanged company spares both the copy here and a deep comparison there
    for every company on every publish. Used by the poll thread only.
    """

    def __init__(self) -> None:
        """Start with nothing to reuse."""
        self._made: dict[str, tuple[CompanyState, dict[str, datetime], CompanySnapshot]] = {}

    def build(
        self,
        states: Mapping[str, CompanyState],
        now: datetime,
        ready: bool,
        refresh_attempts: Mapping[tuple[str, str], datetime] | None = None,
    ) -> Snapshot:
        """A new immutable snapshot of every company polled at least once."""
        by_company: dict[str, dict[str, datetime]] = {}
        for (company_id, data_type), when in (refresh_attempts or {}).items():
            by_company.setdefault(company_id, {})[data_type] = when
        made: dict[str, tuple[CompanyState, dict[str, datetime], CompanySnapshot]] = {}
        for company_id, state in sorted(states.items()):
            if not state.attempted:
                continue
            attempts = by_company.get(company_id, {})
            kept = self._made.get(company_id)
            if kept is not None and kept[0] is state and kept[1] == attempts:
                made[company_id] = kept
            else:
                made[company_id] = (state, attempts, state.snapshot(attempts))
        self._made = made
        companies = {company_id: entry[2] for company_id, entry in made.items()}
        return Snapshot(companies=companies, generated_at=now, ready=ready)
