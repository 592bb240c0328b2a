"""The records of the simulated Codat account: companies, connections, data types, pull
operations and fetch groups, the errors Codat answers with, and the small rules they share.
"""

from __future__ import annotations

import bisect
import functools
import math
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fnmatch import fnmatchcase

from exporter.common.globs import matches_any
from exporter.simulator.scenario import Profile

# Which stage a failure status stops after (the stage must be in the scenario's list).
FAILS_AFTER = {
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
ERROR_MESSAGES = {
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
CONNECTION_ERRORS = {
    "FetchError": ("503", "Service Unavailable"),
    "RateLimitError": ("429", "Too Many Requests"),
    "AuthError": ("401", "Unauthorized"),
    "PermissionsError": ("403", "Forbidden"),
    "InternalError": ("500", "Internal Server Error"),
}
# Scheduled syncs of one company that start within this window report in one read.completed,
# as Codat reports the fetch of a product's data types together.
GROUP_WINDOW = timedelta(seconds=60)
MAX_CONNECTION_ERRORS = 10
INTEGRATION_KEYS = {"Xero": "gbol", "QuickBooks Online": "qhyg", "Sage Business Cloud Accounting": "tgff"}
NAMESPACE = uuid.UUID("6f1c1a52-3d0e-4c57-9f64-9a3a4e0c2b10")


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


def new_uuid(rng: random.Random) -> str:
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


@functools.lru_cache(maxsize=4096)
def type_matches(patterns: tuple[str, ...], data_type: str) -> bool:
    """True when ``data_type`` matches one of the glob ``patterns`` (cached: asked per sync)."""
    return matches_any(data_type, patterns)


def bump_last_sync(company: CompanyState, connection_id: str, at: datetime) -> None:
    """Move the company's and the connection's ``lastSync`` forward to ``at`` (never back)."""
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


def connection_for(data_type: str, connections: list[ConnectionState]) -> ConnectionState | None:
    """The connection that serves ``data_type``: the first of its source type, else the first."""
    if not connections:
        return None
    wanted = "Accounting"
    if data_type.startswith("banking-"):
        wanted = "Banking"
    elif data_type.startswith("commerce-"):
        wanted = "Commerce"
    return next((c for c in connections if c.source_type == wanted), connections[0])


def integration_key_for(platform: str) -> str:
    """A stable four-letter integration key for a platform that has no known one."""
    letters = [c for c in uuid.uuid5(NAMESPACE, platform).hex if c.isalpha()]
    return "".join((letters * 4)[:4])
