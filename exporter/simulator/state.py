"""The simulated Codat account: companies, connections, data types and the sync lifecycle.

Nothing here reads a clock: every method takes ``now``. A sync's whole timeline
(the stages it passes through and its outcome) is drawn when it is queued, so
its status at any instant is a lookup. Only the moments that change the world
(a sync finishing, a scheduled sync falling due) are events on a heap, which
makes moving the clock a day ahead cheap even for thousands of companies.
History that existed before the simulation started is generated on demand from
a per-company seed, so large scenarios cost memory only for what is read.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from datetime import datetime, timedelta

from exporter.codat.statuses import is_terminal
from exporter.simulator.engine import SyncEngine
from exporter.simulator.records import (
    ERROR_MESSAGES,
    CompanyNotFoundError,
    CompanyState,
    ConnectionErrorState,
    ConnectionState,
    DatasetAlreadyInProgressError,
    DataTypeState,
    EventListener,
    FetchGroup,
    GroupListener,
    Operation,
    SimulatorError,
    TerminalListener,
    connection_for,
    new_uuid,
    schedule_hours,
    type_matches,
)
from exporter.simulator.scenario import CompanySpec, ConnectionSpec, Profile, Scenario
from exporter.simulator.seeding import apply_seed, make_connection, make_op, seed_history

__all__ = [
    "CompanyNotFoundError",
    "CompanyState",
    "ConnectionErrorState",
    "ConnectionState",
    "DataTypeState",
    "DatasetAlreadyInProgressError",
    "EventListener",
    "FetchGroup",
    "GroupListener",
    "Operation",
    "SimState",
    "SimulatorError",
    "TerminalListener",
    "schedule_hours",
]


class SimState(SyncEngine):
    """The whole simulated account and its event heap (not thread-safe: the caller holds a lock)."""

    def __init__(self, scenario: Scenario, now: datetime, *, keep_seeded_below: int = 2000) -> None:
        """Build every company of ``scenario`` as it stands at ``now``."""
        super().__init__(scenario, now)
        self._next_index = 0
        self._keep_seeded = scenario.total_companies() < keep_seeded_below
        for spec in scenario.companies:
            profile = scenario.profile_for(spec)
            for copy in range(spec.count):
                name = spec.name if spec.count == 1 else f"{spec.name} {copy + 1}"
                self._create(spec, profile, name, now, explicit_id=spec.id if spec.count == 1 else None)

    def _create(
        self, spec: CompanySpec, profile: Profile, name: str, now: datetime, explicit_id: str | None = None
    ) -> CompanyState:
        index = self._next_index
        self._next_index += 1
        seed_key = self.scenario.seed * 1_000_003 + index
        rng = random.Random(seed_key)
        company_id = explicit_id or new_uuid(rng)
        if company_id in self.companies:
            raise ValueError(f"duplicate company id {company_id}")
        created = now - timedelta(days=profile.created_days_ago, seconds=rng.uniform(0, 86400))
        connections = [make_connection(c, company_id, created, rng) for c in spec.connections]
        data_types = spec.data_types or self.scenario.data_types
        types: dict[str, DataTypeState] = {}
        for data_type in data_types:
            conn = connection_for(data_type, connections)
            supported = not type_matches(profile.not_supported, data_type)
            types[data_type] = DataTypeState(
                data_type=data_type,
                connection_id=conn.id if conn else "",
                supported=supported,
                schedule_hours=schedule_hours(profile, data_type) if supported else None,
                fetch_on_first_link=not type_matches(profile.not_fetched_on_first_link, data_type),
            )
        company = CompanyState(
            index=index,
            id=company_id,
            name=name,
            description=spec.description,
            created=created,
            tags=dict(spec.tags),
            profile=profile,
            connections=connections,
            types=types,
            seed_key=seed_key,
            seeded_at=now,
        )
        seeded, running = seed_history(company, self.scenario.sync)
        apply_seed(company, seeded, now)
        if self._keep_seeded:
            company.seeded_ops = seeded
        for op in running:
            self._start(company, company.types[op.data_type], op, now)
        for state in types.values():
            if state.running is None:
                self._schedule_next(company, state, now, initial=True)
        self.companies[company_id] = company
        self.order.append(company_id)
        return company

    def company(self, company_id: str) -> CompanyState:
        """The company with this id, or ``CompanyNotFoundError``."""
        company = self.companies.get(company_id)
        if company is None:
            raise CompanyNotFoundError(company_id)
        return company

    def queue(
        self,
        company_id: str,
        data_type: str,
        now: datetime,
        *,
        connection_id: str | None = None,
        outcome: str | None = None,
        group: FetchGroup | None = None,
    ) -> Operation:
        """Queue a sync as ``POST /data/queue/{dataType}`` does; raises ``SimulatorError`` like Codat.

        A single queued type is reported in a read.completed of its own unless ``group`` is given.
        """
        company = self.company(company_id)
        state = company.types.get(data_type)
        if state is None:
            platforms = ", ".join(sorted({c.platform_name for c in company.connections})) or "none"
            raise SimulatorError(
                404, "PullApi", f"Datatype {data_type} not supported by platform(s) {platforms}"
            )
        if connection_id is not None and company.connection(connection_id) is None:
            raise SimulatorError(404, "PublicApi", f"Data connection {connection_id} not found")
        if state.running is not None:
            raise DatasetAlreadyInProgressError(data_type, company_id, state.running.id)
        if not (connection_id or state.connection_id):
            raise SimulatorError(400, "PullApi", f"Company {company_id} has no data connection")
        op = make_op(
            self.scenario.sync, company, state, now, outcome, company.rng, False, connection_id=connection_id
        )
        self._start(company, state, op, now, group or self.new_group(company, now))
        return op

    def queue_all(self, company_id: str, now: datetime, *, initial: bool = False) -> list[Operation]:
        """Queue what ``POST /data/all`` queues: each data type marked fetch-on-first-link that the
        company's *linked* connections support and that is not already running.

        Codat docs, "Queue data syncs" / "Refresh company data": a dataset "for each of the data
        types marked as Fetch on first link ... where that data type is supported by the company's
        linked data connections". A company without a linked connection gets nothing queued.
        """
        company = self.company(company_id)
        group = self.new_group(company, now, initial=initial)
        queued = []
        for data_type, state in company.types.items():
            conn = company.connection(state.connection_id)
            if (
                state.supported
                and state.fetch_on_first_link
                and state.running is None
                and conn is not None
                and conn.status == "Linked"
            ):
                queued.append(self.queue(company_id, data_type, now, group=group))
        return queued

    def finish_running(self, now: datetime, company_id: str | None = None, status: str | None = None) -> int:
        """Finish every running sync now (optionally of one company, optionally forcing the status)."""
        count = 0
        targets = [self.company(company_id)] if company_id else [self.companies[c] for c in self.order]
        for company in targets:
            for state in company.types.values():
                op = state.running
                if op is None:
                    continue
                elapsed = max((now - op.requested).total_seconds(), 0.0)
                op.duration = elapsed
                op.stages = tuple(s for s in op.stages if s[0] < elapsed) or op.stages[:1]
                if status is not None:
                    op.final_status = status
                    op.error_message = ERROR_MESSAGES.get(status)
                self._finish(company, state, op, now)
                count += 1
        return count

    def set_status(self, company_id: str, data_type: str, status: str, now: datetime) -> Operation:
        """Make a data type show ``status`` now: a terminal status finishes a sync with it, an
        in-progress status starts a sync held in that status until finished."""
        company = self.company(company_id)
        state = company.types.get(data_type)
        if state is None:
            raise KeyError(f"{company_id} has no data type {data_type}")
        if is_terminal(status):
            if state.running is not None:
                op = state.running
                op.duration = max((now - op.requested).total_seconds(), 0.0)
                op.final_status = status
                op.error_message = ERROR_MESSAGES.get(status)
                self._finish(company, state, op, now)
                return op
            op = _set_by_hand(company, state, now, (), status, 0.0)
            self._start(company, state, op, now)
            self.catch_up(now)
            return op
        if state.running is not None:
            raise DatasetAlreadyInProgressError(data_type, company_id, state.running.id)
        op = _set_by_hand(company, state, now, ((0.0, status),), "Complete", math.inf)
        self._start(company, state, op, now)
        return op

    def set_connection_status(
        self, company_id: str, status: str, connection_id: str | None = None, now: datetime | None = None
    ) -> None:
        """Change a connection's status (all of the company's connections when no id is given).

        With ``now``, announce it as Codat's webhooks do: PendingAuth → Linked is
        ``connection.connected`` (and queues the first-link fetch, reported as
        ``read.completed.initial``), Linked → Deauthorized/Unlinked ``connection.disconnected``,
        back to Linked ``connection.reconnected``.
        """
        company = self.company(company_id)
        for conn in company.connections:
            if connection_id is not None and conn.id != connection_id:
                continue
            before, conn.status = conn.status, status
            if now is None or before == status:
                continue
            if status == "Linked":
                first = before == "PendingAuth"
                self._emit("connection.connected" if first else "connection.reconnected", company, conn, now)
                if first:
                    self.queue_all(company_id, now, initial=company.last_sync is None)
            elif before == "Linked":
                self._emit("connection.disconnected", company, conn, now)

    def fail_connection(self, company_id: str, connection_id: str | None, now: datetime) -> None:
        """An authorization attempt failed (``connection.failed``); the status does not change."""
        company = self.company(company_id)
        for conn in company.connections:
            if connection_id is None or conn.id == connection_id:
                self._emit("connection.failed", company, conn, now)

    def add_connection(self, company_id: str, spec: ConnectionSpec, now: datetime) -> ConnectionState:
        """Create a connection (``connection.created``); it serves data types only once linked."""
        company = self.company(company_id)
        conn = make_connection(spec, company.id, now - timedelta(minutes=5), company.rng)
        company.connections.append(conn)
        for state in company.types.values():
            if not state.connection_id:
                state.connection_id = conn.id
        self._emit("connection.created", company, conn, now)
        return conn

    def delete_connection(self, company_id: str, connection_id: str, now: datetime) -> None:
        """Delete a connection (``connection.deleted``); its data types have no connection left."""
        company = self.company(company_id)
        conn = company.connection(connection_id)
        if conn is None:
            raise SimulatorError(404, "PublicApi", f"Data connection {connection_id} not found")
        company.connections.remove(conn)
        for state in company.types.values():
            if state.connection_id == connection_id:
                state.connection_id = ""
        self._emit("connection.deleted", company, conn, now)

    def add_company(self, spec: CompanySpec, now: datetime) -> CompanyState:
        """Add a company mid-simulation (``company.created``)."""
        profile = self.scenario.profile_for(spec)
        company = self._create(spec, profile, spec.name, now, explicit_id=spec.id)
        self._emit("company.created", company, None, now)
        return company

    def remove_company(self, company_id: str, now: datetime | None = None) -> None:
        """Delete a company (``company.deleted`` when ``now`` is given); its pending events are
        dropped when they fall due."""
        company = self.company(company_id)
        del self.companies[company_id]
        self.order.remove(company_id)
        if now is not None:
            self._emit("company.deleted", company, None, now)

    def restore_company(self, company: CompanyState, now: datetime) -> None:
        """Put a deleted company back (``company.created``) with its schedules running again."""
        if company.id in self.companies:
            return
        self.companies[company.id] = company
        self.order.append(company.id)
        for state in company.types.values():
            if state.running is None:
                self._schedule_next(company, state, now, initial=True)
        self._emit("company.created", company, None, now)

    def _emit(
        self, event_type: str, company: CompanyState, conn: ConnectionState | None, now: datetime
    ) -> None:
        for listener in list(self.event_listeners):
            listener(event_type, company, conn, now)

    def operations(self, company: CompanyState) -> list[Operation]:
        """Every operation of the company, oldest first (seeded history regenerated when needed)."""
        seeded = company.seeded_ops
        if seeded is None:
            seeded, _ = seed_history(company, self.scenario.sync)
            if self._keep_seeded:
                company.seeded_ops = seeded
        # Both lists are already in order; the merge only matters where syncs running at the
        # start overlap the last seeded ones.
        return sorted([*seeded, *company.live_ops], key=lambda op: op.requested)

    def find_operation(self, company: CompanyState, dataset_id: str) -> Operation | None:
        """One operation by id."""
        op = company.live_by_id.get(dataset_id)
        if op is not None:
            return op
        return next((o for o in self.operations(company) if o.id == dataset_id), None)

    def iter_companies(self) -> Iterator[CompanyState]:
        """Companies in creation order."""
        for company_id in self.order:
            yield self.companies[company_id]


def _set_by_hand(
    company: CompanyState,
    state: DataTypeState,
    now: datetime,
    stages: tuple[tuple[float, str], ...],
    final_status: str,
    duration: float,
) -> Operation:
    """A sync requested now whose timeline a test or the control API sets rather than draws."""
    return Operation(
        id=new_uuid(company.rng),
        company_id=company.id,
        connection_id=state.connection_id,
        data_type=state.data_type,
        requested=now,
        stages=stages,
        final_status=final_status,
        duration=duration,
        error_message=ERROR_MESSAGES.get(final_status),
    )
