"""The sync lifecycle on an event heap: starting, finishing and scheduling syncs.

Only the moments that change the world (a sync finishing, a scheduled sync falling due) are
events, so moving the clock a day ahead is cheap even for thousands of companies. Nothing
here reads a clock: every method takes ``now``.
"""

from __future__ import annotations

import heapq
import zlib
from collections import Counter
from datetime import datetime, timedelta

from exporter.simulator.records import (
    GROUP_WINDOW,
    CompanyState,
    DataTypeState,
    EventListener,
    FetchGroup,
    GroupListener,
    Operation,
    TerminalListener,
    bump_last_sync,
)
from exporter.simulator.scenario import Scenario
from exporter.simulator.seeding import make_op, record_connection_errors


class SyncEngine:
    """Companies, their running syncs and the event heap that moves them (not thread-safe)."""

    def __init__(self, scenario: Scenario, now: datetime) -> None:
        """An engine with no companies yet, at ``now``."""
        self.scenario = scenario
        self.companies: dict[str, CompanyState] = {}
        self.order: list[str] = []
        self.terminal_counts: Counter[tuple[str, str, str]] = Counter()
        self.listeners: list[TerminalListener] = []
        self.group_listeners: list[GroupListener] = []
        self.event_listeners: list[EventListener] = []
        self._heap: list[tuple[datetime, int, str, str, str, str]] = []
        self._seq = 0
        self._groups = 0
        self.now = now

    def _push(self, due: datetime, kind: str, company_id: str, data_type: str, op_id: str = "") -> None:
        self._seq += 1
        heapq.heappush(self._heap, (due, self._seq, kind, company_id, data_type, op_id))

    def catch_up(self, now: datetime) -> int:
        """Apply every event due at or before ``now`` in time order; returns how many were applied."""
        applied = 0
        while self._heap and self._heap[0][0] <= now:
            due, _, kind, company_id, data_type, op_id = heapq.heappop(self._heap)
            company = self.companies.get(company_id)
            if company is None:
                continue
            state = company.types.get(data_type)
            if state is None:
                continue
            if kind == "finish":
                if state.running is not None and state.running.id == op_id:
                    self._finish(company, state, state.running, due)
                    applied += 1
            elif kind == "schedule" and state.next_scheduled == due and state.schedule_stopped:
                state.next_scheduled = None
            elif kind == "schedule" and state.next_scheduled == due and state.running is None:
                state.next_scheduled = None
                self._start(
                    company,
                    state,
                    make_op(self.scenario.sync, company, state, due, None, company.rng, False),
                    due,
                )
                applied += 1
        self.now = max(self.now, now)
        return applied

    def next_event_time(self) -> datetime | None:
        """When the next event falls due (None when nothing is pending)."""
        return self._heap[0][0] if self._heap else None

    def _start(
        self,
        company: CompanyState,
        state: DataTypeState,
        op: Operation,
        now: datetime,
        group: FetchGroup | None = None,
    ) -> None:
        state.running = op
        state.latest_sync_id = op.id
        state.next_scheduled = None
        company.live_ops.append(op)
        company.live_by_id[op.id] = op
        self._trim(company)
        done = op.completed_at()
        if done is not None:
            # An operation held open forever is in no group: the others still get reported.
            if group is None:
                group = company.open_group
                if group is None or now - group.started > GROUP_WINDOW or group.open == 0:
                    group = self.new_group(company, now)
                    company.open_group = group
            group.open += 1
            op.group = group
            self._push(max(done, now), "finish", company.id, state.data_type, op.id)

    def new_group(self, company: CompanyState, now: datetime, *, initial: bool = False) -> FetchGroup:
        """A new fetch group of ``company`` (syncs reported together in one read.completed)."""
        self._groups += 1
        return FetchGroup(id=f"g{self._groups}", company_id=company.id, started=now, initial=initial)

    def _finish(self, company: CompanyState, state: DataTypeState, op: Operation, at: datetime) -> None:
        state.running = None
        state.latest_status = op.final_status
        state.last_completed = at
        if op.final_status == "Complete":
            state.last_success = at
            state.latest_success_id = op.id
        bump_last_sync(company, op.connection_id, at)
        record_connection_errors(company, op, at)
        if op.final_status == "Complete":
            # Drawn from the operation's id, not the company's random stream, so these draws
            # change no outcome; crc32 is repeatable across processes and cheap.
            key = op.id.encode()
            profile = company.profile
            op.records_modified = zlib.crc32(key) / 2**32 < profile.records_modified_probability
            op.validation_issues = int(zlib.crc32(key, 1) / 2**32 < profile.validation_warning_probability)
        self.terminal_counts[(company.id, op.data_type, op.final_status)] += 1
        for listener in list(self.listeners):
            listener(company, op, at)
        group = op.group
        if group is None:
            # Held open until a test or the control API ended it: reported on its own.
            group = op.group = self.new_group(company, at)
            group.open = 1
        group.open -= 1
        group.finished.append(op)
        if group.open <= 0:
            if company.open_group is group:
                company.open_group = None
            for group_listener in list(self.group_listeners):
                group_listener(company, group, at)
        self._schedule_next(company, state, at)

    def _schedule_next(
        self, company: CompanyState, state: DataTypeState, now: datetime, initial: bool = False
    ) -> None:
        if (
            state.schedule_hours is None
            or not state.supported
            or not state.connection_id
            or state.schedule_stopped
        ):
            return
        period = timedelta(hours=state.schedule_hours)
        # Codat re-commences the schedule from the last sync; after a failure we count from the
        # failure too, so a permanently failing type retries once per period, not in a tight loop.
        base = state.last_completed or company.created
        due = base + period
        if initial and due <= now:
            due = now + timedelta(seconds=company.rng.uniform(0, min(period.total_seconds(), 3600) * 0.5))
        state.next_scheduled = due
        self._push(due, "schedule", company.id, state.data_type)

    def reschedule(self, company: CompanyState, state: DataTypeState, now: datetime) -> None:
        """Schedule the next automatic sync of a data type whose schedule was resumed."""
        self._schedule_next(company, state, now, initial=True)

    def _trim(self, company: CompanyState) -> None:
        limit = self.scenario.sync.history_limit
        if len(company.live_ops) <= limit:
            return
        keep: list[Operation] = []
        excess = len(company.live_ops) - limit
        for op in company.live_ops:
            running = company.types[op.data_type].running
            if excess > 0 and (running is None or running.id != op.id):
                company.live_by_id.pop(op.id, None)
                excess -= 1
            else:
                keep.append(op)
        company.live_ops = keep
