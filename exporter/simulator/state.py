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

import bisect
import functools
import heapq
import math
import random
import uuid
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fnmatch import fnmatchcase

from exporter.codat.statuses import is_terminal
from exporter.simulator.scenario import CompanySpec, ConnectionSpec, Profile, Scenario

# Which stage a failure status stops after (the stage must be in the scenario's list).
_FAILS_AFTER = {
    "FetchError": "Fetching",
    "AuthError": "Fetching",
    "RateLimitError": "Fetching",
    "PermissionsError": "Fetching",
    "PrerequisiteNotMet": "Queued",
    "NotSupported": "Queued",
    "Cancelled": "Queued",
    "MapError": "Mapping",
    "ValidationError": "Validating",
    "ProcessingError": "Processing",
}
_ERROR_MESSAGES = {
    "FetchError": "The source platform returned an error while data was being fetched.",
    "AuthError": "The connection is no longer authorized; the company must re-link.",
    "MapError": "Data could not be mapped to Codat's model.",
    "ValidationError": "Validation found errors in the fetched data.",
    "ProcessingError": "Data could not be stored.",
    "InternalError": "An internal error occurred.",
    "RateLimitError": "The source platform rate-limited the request.",
    "PermissionsError": "The connection lacks permission to read this data.",
    "PrerequisiteNotMet": "A prerequisite data type has not been synced.",
}
# What the source platform answered when a sync failed this way (dataConnectionErrors[]).
_CONNECTION_ERRORS = {
    "FetchError": ("503", "Service Unavailable"),
    "RateLimitError": ("429", "Too Many Requests"),
    "AuthError": ("401", "Unauthorized"),
    "PermissionsError": ("403", "Forbidden"),
    "InternalError": ("500", "Internal Server Error"),
}
# Scheduled syncs of one company that start within this window report in one read.completed,
# as Codat reports the fetch of a product's data types together.
_GROUP_WINDOW = timedelta(seconds=60)
_MAX_CONNECTION_ERRORS = 10
_INTEGRATION_KEYS = {"Xero": "gbol", "QuickBooks Online": "qhyg", "Sage Business Cloud Accounting": "tgff"}
_NAMESPACE = uuid.UUID("6f1c1a52-3d0e-4c57-9f64-9a3a4e0c2b10")


class SimulatorError(Exception):
    """A request the simulated Codat refuses; ``status`` and ``service`` shape the HTTP answer."""

    def __init__(self, status: int, service: str, message: str) -> None:
        """Carry the HTTP status, the Codat service name and the error text."""
        super().__init__(message)
        self.status = status
        self.service = service
        self.message = message


class CompanyNotFoundError(SimulatorError):
    """No company has that id."""

    def __init__(self, company_id: str) -> None:
        """Codat's 404 text for an unknown company."""
        super().__init__(404, "ClientsApi", f"No company was found with ID {company_id}")


class DatasetAlreadyInProgressError(SimulatorError):
    """A sync of that data type is still running."""

    def __init__(self, data_type: str, company_id: str, dataset_id: str) -> None:
        """Codat's 400 text naming the running dataset."""
        super().__init__(
            400,
            "PullApi",
            f"DatasetAlreadyInProgressException: Cannot queue {data_type} sync for {company_id} "
            f"as previous sync {dataset_id} is still in progress",
        )
        self.dataset_id = dataset_id


def _uuid(rng: random.Random) -> str:
    """A random version-4 UUID string drawn from ``rng`` (repeatable, unlike ``uuid.uuid4``)."""
    h = f"{rng.getrandbits(128):032x}"
    variant = "89ab"[int(h[16], 16) & 3]
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:]}"


@dataclass(slots=True)
class FetchGroup:
    """Syncs of one company reported together in one ``read.completed`` once all have finished."""

    id: str
    company_id: str
    started: datetime
    initial: bool = False
    open: int = 0
    finished: list[Operation] = field(default_factory=list)


@dataclass(slots=True)
class Operation:
    """One pull operation (dataset) with its whole timeline."""

    id: str
    company_id: str
    connection_id: str
    data_type: str
    requested: datetime
    stages: tuple[tuple[float, str], ...]  # (seconds after requested, status), ascending
    final_status: str
    duration: float  # seconds from requested to the final status; inf while held in a stage
    error_message: str | None = None
    group: FetchGroup | None = None
    records_modified: bool = False
    validation_issues: int = 0

    def completed_at(self) -> datetime | None:
        """When the operation reached (or will reach) its final status; None while held open."""
        if math.isinf(self.duration):
            return None
        return self.requested + timedelta(seconds=self.duration)

    def is_finished(self, now: datetime) -> bool:
        """True once the final status is reached."""
        return (now - self.requested).total_seconds() >= self.duration

    def status_at(self, now: datetime) -> str:
        """The status this operation shows at ``now``."""
        elapsed = (now - self.requested).total_seconds()
        if elapsed >= self.duration or not self.stages:
            return self.final_status
        offsets = [offset for offset, _ in self.stages]
        index = bisect.bisect_right(offsets, elapsed) - 1
        return self.stages[max(index, 0)][1]

    def progress_at(self, now: datetime) -> int:
        """Percent done: 100 when finished, else the share of stages entered."""
        if self.is_finished(now):
            return 100
        elapsed = (now - self.requested).total_seconds()
        entered = sum(1 for offset, _ in self.stages if offset <= elapsed)
        return min(95, int(100 * max(entered - 1, 0) / max(len(self.stages), 1)))


@dataclass(slots=True)
class ConnectionErrorState:
    """One ``dataConnectionErrors[]`` entry: a transient error of the source platform."""

    status_code: str
    status_text: str
    message: str
    errored_on: datetime
    status: str = "Active"
    resolved_on: datetime | None = None


@dataclass(slots=True)
class ConnectionState:
    """A company's data connection."""

    id: str
    integration_id: str
    integration_key: str
    source_id: str
    source_type: str
    platform_name: str
    status: str
    created: datetime
    last_sync: datetime | None = None
    errors: list[ConnectionErrorState] = field(default_factory=list)
    info: dict[str, object] | None = None

    def active_errors(self) -> int:
        """How many of its errors are still Active."""
        return sum(1 for e in self.errors if e.status == "Active")


@dataclass(slots=True)
class DataTypeState:
    """What Codat's dataStatus knows about one data type of one company, plus its schedule."""

    data_type: str
    connection_id: str
    supported: bool
    schedule_hours: float | None
    last_success: datetime | None = None
    latest_sync_id: str | None = None
    latest_success_id: str | None = None
    latest_status: str | None = None
    last_completed: datetime | None = None
    running: Operation | None = None
    next_scheduled: datetime | None = None
    fetch_on_first_link: bool = True
    schedule_stopped: bool = False  # run-time control: the schedule queues nothing
    forced_outcome: str | None = None  # run-time control: every new sync ends in this status


@dataclass(slots=True)
class CompanyState:
    """A company, its connections, its data types and its operations."""

    index: int
    id: str
    name: str
    description: str | None
    created: datetime
    tags: dict[str, str]
    profile: Profile
    connections: list[ConnectionState]
    types: dict[str, DataTypeState]
    seed_key: int
    seeded_at: datetime
    last_sync: datetime | None = None
    seeded_ops: list[Operation] | None = None
    live_ops: list[Operation] = field(default_factory=list)
    live_by_id: dict[str, Operation] = field(default_factory=dict)
    open_group: FetchGroup | None = None
    _rng: random.Random | None = None

    @property
    def rng(self) -> random.Random:
        """The company's source of randomness for live syncs (made on first use: each costs ~2.5 KB)."""
        if self._rng is None:
            self._rng = random.Random(self.seed_key * 7 + 3)
        return self._rng

    def connection(self, connection_id: str) -> ConnectionState | None:
        """The connection with this id, if the company has it."""
        return next((c for c in self.connections if c.id == connection_id), None)


TerminalListener = Callable[[CompanyState, Operation, datetime], None]
GroupListener = Callable[[CompanyState, FetchGroup, datetime], None]
# (event type, company, connection or None, when): connection.* and company.* happenings.
EventListener = Callable[[str, CompanyState, "ConnectionState | None", datetime], None]


class SimState:
    """The whole simulated account and its event heap (not thread-safe: the caller holds a lock)."""

    def __init__(self, scenario: Scenario, now: datetime, *, keep_seeded_below: int = 2000) -> None:
        """Build every company of ``scenario`` as it stands at ``now``."""
        self.scenario = scenario
        self.stage_specs = tuple((s.status, s.seconds) for s in scenario.sync.stages)
        self._mean_duration = sum(seconds for _, seconds in self.stage_specs)
        self.companies: dict[str, CompanyState] = {}
        self.order: list[str] = []
        self.terminal_counts: Counter[tuple[str, str, str]] = Counter()
        self.listeners: list[TerminalListener] = []
        self.group_listeners: list[GroupListener] = []
        self.event_listeners: list[EventListener] = []
        self._heap: list[tuple[datetime, int, str, str, str, str]] = []
        self._seq = 0
        self._groups = 0
        self._next_index = 0
        self._keep_seeded = scenario.total_companies() < keep_seeded_below
        self.now = now
        for spec in scenario.companies:
            profile = scenario.profile_for(spec)
            for copy in range(spec.count):
                name = spec.name if spec.count == 1 else f"{spec.name} {copy + 1}"
                self._create(spec, profile, name, now, explicit_id=spec.id if spec.count == 1 else None)

    # ----- building -------------------------------------------------------------------------

    def _create(
        self, spec: CompanySpec, profile: Profile, name: str, now: datetime, explicit_id: str | None = None
    ) -> CompanyState:
        index = self._next_index
        self._next_index += 1
        seed_key = self.scenario.seed * 1_000_003 + index
        rng = random.Random(seed_key)
        company_id = explicit_id or _uuid(rng)
        if company_id in self.companies:
            raise ValueError(f"duplicate company id {company_id}")
        created = now - timedelta(days=profile.created_days_ago, seconds=rng.uniform(0, 86400))
        connections = [self._connection(c, company_id, created, rng) for c in spec.connections]
        data_types = spec.data_types or self.scenario.data_types
        types: dict[str, DataTypeState] = {}
        for data_type in data_types:
            conn = _connection_for(data_type, connections)
            supported = not _matches(profile.not_supported, data_type)
            types[data_type] = DataTypeState(
                data_type=data_type,
                connection_id=conn.id if conn else "",
                supported=supported,
                schedule_hours=schedule_hours(profile, data_type) if supported else None,
                fetch_on_first_link=not _matches(profile.not_fetched_on_first_link, data_type),
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
        seeded, running = self._seed_history(company)
        self._apply_seed(company, seeded, now)
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

    def _connection(
        self, spec: ConnectionSpec, company_id: str, created: datetime, rng: random.Random
    ) -> ConnectionState:
        key = spec.integration_key or _INTEGRATION_KEYS.get(spec.platform) or _key_for(spec.platform)
        return ConnectionState(
            id=spec.id or _uuid(rng),
            integration_id=str(uuid.uuid5(_NAMESPACE, spec.platform)),
            integration_key=key,
            source_id=str(uuid.uuid5(_NAMESPACE, spec.platform + ":source")),
            source_type=spec.source_type,
            platform_name=spec.platform,
            status=spec.status,
            created=created + timedelta(minutes=5),
            info=dict(spec.connection_info) if spec.connection_info is not None else None,
        )

    def _seed_history(self, company: CompanyState) -> tuple[list[Operation], list[Operation]]:
        """Operations that finished before the simulation began, and those running at its start.

        Deterministic from the company's seed, so it can be regenerated instead of stored.
        """
        profile = company.profile
        rng = random.Random(company.seed_key * 7 + 1)
        now = company.seeded_at
        finished: list[Operation] = []
        running: list[Operation] = []
        for data_type, state in company.types.items():
            if not state.connection_id or _matches(profile.never_synced, data_type):
                continue
            interval = 3600 * (profile.history_interval_hours or state.schedule_hours or 24)
            if profile.last_success_hours_ago is not None:
                last_success_age = 3600 * profile.last_success_hours_ago + rng.uniform(0, 600)
            else:
                last_success_age = rng.uniform(0.05, 0.95) * interval
            ops_for_type: list[Operation] = []
            failing_now = profile.latest_status not in (None, "Complete")
            for k in range(profile.history if state.supported else min(profile.history, 1)):
                if not state.supported:
                    status = "NotSupported"
                elif k == 0 and profile.latest_status is not None:
                    status = profile.latest_status
                elif profile.last_success_hours_ago is not None and k == (1 if failing_now else 0):
                    status = "Complete"
                else:
                    # Older history predates any loss of authorization.
                    status = self._draw_outcome(company, state, rng, linked=True)
                if k == 0 and failing_now and state.supported:
                    # The failure came after the last success.
                    age = min(last_success_age / 2, rng.uniform(0.05, 0.5) * interval)
                else:
                    steps = k - 1 if failing_now and state.supported else k
                    age = last_success_age + steps * interval * rng.uniform(0.97, 1.03)
                ops_for_type.append(self._past_op(company, state, now - timedelta(seconds=age), status, rng))
            ops_for_type.reverse()
            ops_for_type = [op for op in ops_for_type if op.requested > company.created]
            finished.extend(ops_for_type)
            if state.supported and _matches(profile.stuck, data_type):
                op = self._make_op(company, state, now, None, rng, False)
                op.requested = now - timedelta(hours=profile.stuck_since_hours)
                running.append(op)
            elif state.supported and rng.random() < profile.in_progress_probability:
                op = self._make_op(company, state, now, None, rng, False)
                op.requested = now - timedelta(seconds=rng.uniform(0, min(op.duration, 30)))
                running.append(op)
        finished.sort(key=lambda op: op.requested)
        return finished, running

    def _apply_seed(self, company: CompanyState, ops: list[Operation], now: datetime) -> None:
        latest_per_connection: dict[str, datetime] = {}
        for op in ops:
            state = company.types[op.data_type]
            done = op.completed_at()
            assert done is not None
            state.latest_sync_id = op.id
            state.latest_status = op.final_status
            state.last_completed = done
            if op.final_status == "Complete":
                state.last_success = done
                state.latest_success_id = op.id
            latest_per_connection[op.connection_id] = max(
                done, latest_per_connection.get(op.connection_id, done)
            )
            # A company failing at the start already shows the platform error on its connection.
            self._connection_errors(company, op, done)
        for connection_id, done in latest_per_connection.items():
            _bump(company, connection_id, done)

    def _draw_outcome(
        self,
        company: CompanyState,
        state: DataTypeState,
        rng: random.Random,
        connection_id: str | None = None,
        *,
        linked: bool = False,
    ) -> str:
        if state.forced_outcome is not None:
            return state.forced_outcome
        if not linked:
            conn = company.connection(connection_id or state.connection_id)
            if conn is None or conn.status != "Linked":
                return "AuthError"
        if not state.supported:
            return "NotSupported"
        roll = rng.random()
        for status, rate in company.profile.error_rates.items():
            if roll < rate:
                return status
            roll -= rate
        return "Complete"

    def _past_op(
        self, company: CompanyState, state: DataTypeState, end: datetime, status: str, rng: random.Random
    ) -> Operation:
        """A finished operation ending at ``end``; its stages no longer matter, only its length."""
        duration = self._mean_duration * rng.uniform(
            1 - self.scenario.sync.jitter, 1 + self.scenario.sync.jitter
        )
        return Operation(
            id=_uuid(rng),
            company_id=company.id,
            connection_id=state.connection_id,
            data_type=state.data_type,
            requested=end - timedelta(seconds=duration),
            stages=(),
            final_status=status,
            duration=duration,
            error_message=_ERROR_MESSAGES.get(status),
        )

    def _make_op(
        self,
        company: CompanyState,
        state: DataTypeState,
        end_or_start: datetime,
        outcome: str | None,
        rng: random.Random,
        ends_at: bool,
        connection_id: str | None = None,
    ) -> Operation:
        """An operation with a drawn timeline; ``ends_at`` says whether the time given is its end."""
        if outcome is None and _matches(company.profile.stuck, state.data_type):
            # Held open for good: Codat waits for the connector that never answers.
            return Operation(
                id=_uuid(rng),
                company_id=company.id,
                connection_id=connection_id or state.connection_id,
                data_type=state.data_type,
                requested=end_or_start,
                stages=((0.0, "Queued"), (self.stage_specs[0][1], company.profile.stuck_status)),
                final_status="Complete",
                duration=math.inf,
            )
        final = outcome or self._draw_outcome(company, state, rng, connection_id)
        jitter = self.scenario.sync.jitter
        stop_after = _FAILS_AFTER.get(final)
        stages: list[tuple[float, str]] = []
        offset = 0.0
        for status, mean in self.stage_specs:
            stages.append((offset, status))
            offset += mean * rng.uniform(1 - jitter, 1 + jitter)
            if status == stop_after or (final == "InternalError" and rng.random() < 0.3):
                break
        op_id = _uuid(rng)
        requested = end_or_start - timedelta(seconds=offset) if ends_at else end_or_start
        return Operation(
            id=op_id,
            company_id=company.id,
            connection_id=connection_id or state.connection_id,
            data_type=state.data_type,
            requested=requested,
            stages=tuple(stages),
            final_status=final,
            duration=offset,
            error_message=_ERROR_MESSAGES.get(final),
        )

    # ----- events ---------------------------------------------------------------------------

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
                self._start(company, state, self._make_op(company, state, due, None, company.rng, False), due)
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
                if group is None or now - group.started > _GROUP_WINDOW or group.open == 0:
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
        _bump(company, op.connection_id, at)
        self._connection_errors(company, op, at)
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

    def _connection_errors(self, company: CompanyState, op: Operation, at: datetime) -> None:
        """Raise an Active dataConnectionError on failures that come from the platform; a
        successful sync on the connection resolves them."""
        conn = company.connection(op.connection_id)
        if conn is None:
            return
        if op.final_status == "Complete":
            for error in conn.errors:
                if error.status == "Active":
                    error.status = "Resolved"
                    error.resolved_on = at
        elif op.final_status in company.profile.connection_errors_on and conn.active_errors() == 0:
            code, text = _CONNECTION_ERRORS.get(op.final_status, ("500", "Internal Server Error"))
            message = _ERROR_MESSAGES.get(op.final_status, "The source platform returned an error.")
            conn.errors.append(ConnectionErrorState(code, text, message, at))
            del conn.errors[:-_MAX_CONNECTION_ERRORS]

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

    # ----- commands -------------------------------------------------------------------------

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
        op = self._make_op(company, state, now, outcome, company.rng, False, connection_id=connection_id)
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
                    op.error_message = _ERROR_MESSAGES.get(status)
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
                op.error_message = _ERROR_MESSAGES.get(status)
                self._finish(company, state, op, now)
                return op
            op = Operation(
                id=_uuid(company.rng),
                company_id=company.id,
                connection_id=state.connection_id,
                data_type=data_type,
                requested=now,
                stages=(),
                final_status=status,
                duration=0.0,
                error_message=_ERROR_MESSAGES.get(status),
            )
            self._start(company, state, op, now)
            self.catch_up(now)
            return op
        if state.running is not None:
            raise DatasetAlreadyInProgressError(data_type, company_id, state.running.id)
        op = Operation(
            id=_uuid(company.rng),
            company_id=company.id,
            connection_id=state.connection_id,
            data_type=data_type,
            requested=now,
            stages=((0.0, status),),
            final_status="Complete",
            duration=math.inf,
        )
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
        conn = self._connection(spec, company.id, now - timedelta(minutes=5), company.rng)
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

    # ----- reading --------------------------------------------------------------------------

    def operations(self, company: CompanyState) -> list[Operation]:
        """Every operation of the company, oldest first (seeded history regenerated when needed)."""
        seeded = company.seeded_ops
        if seeded is None:
            seeded, _ = self._seed_history(company)
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


@functools.lru_cache(maxsize=4096)
def _matches(patterns: tuple[str, ...], data_type: str) -> bool:
    """True when ``data_type`` matches one of the glob ``patterns``."""
    return any(fnmatchcase(data_type, p) for p in patterns)


def _bump(company: CompanyState, connection_id: str, at: datetime) -> None:
    if company.last_sync is None or at > company.last_sync:
        company.last_sync = at
    conn = company.connection(connection_id)
    if conn is not None and (conn.last_sync is None or at > conn.last_sync):
        conn.last_sync = at


def schedule_hours(profile: Profile, data_type: str) -> float | None:
    """The sync schedule of one data type: its own entry in ``sync_schedules``, else the profile's."""
    for pattern, hours in profile.sync_schedules.items():
        if fnmatchcase(data_type, pattern):
            return hours
    return profile.sync_schedule_hours


def _connection_for(data_type: str, connections: list[ConnectionState]) -> ConnectionState | None:
    if not connections:
        return None
    wanted = "Accounting"
    if data_type.startswith("banking-"):
        wanted = "Banking"
    elif data_type.startswith("commerce-"):
        wanted = "Commerce"
    return next((c for c in connections if c.source_type == wanted), connections[0])


def _key_for(platform: str) -> str:
    letters = [c for c in uuid.uuid5(_NAMESPACE, platform).hex if c.isalpha()]
    return "".join((letters * 4)[:4])
