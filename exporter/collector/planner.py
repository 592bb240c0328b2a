"""Tiered polling decisions: which companies' ``dataStatus`` to read this cycle, within budget.

A naive exporter reads every company's ``dataStatus`` every minute: 1,440
requests per company per day, more than Codat's whole quota. Instead each cycle:

1. ``GET /companies`` (up to 5,000 a page) is the change detector: it carries
   ``lastSync`` per company and per connection;
2. ``dataStatus`` is read only for companies that are new, whose ``lastSync``
   moved, that have a sync open, that failed last time (after a backoff), or
   whose slow full sweep is due (staggered by a hash of the id, so sweeps spread
   evenly over the sweep interval instead of landing all at once);
3. ``data/history`` is read only when a data type's ``latestSyncId`` changed or
   an operation is open (decided per company in ``needs_history``).

When the plan would spend more than the request budget allows right now, the
lowest-priority work is deferred to a later cycle, sweeps first. Every function
here is pure and takes ``now``.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Final

from exporter.codat.models import Company, DataTypeStatus
from exporter.codat.statuses import is_in_progress
from exporter.collector.sharding import phase

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


class PollReason(StrEnum):
    """Why a company's dataStatus is read; the order of the members is their priority."""

    WEBHOOK = "webhook"
    NEW = "new"
    CHANGED = "changed"
    OPEN = "open"
    RETRY = "retry"
    SWEEP = "sweep"
    SETTINGS = "settings"
    """Only the company's sync settings are due: read after every dataStatus of the first sweep,
    so that sweep costs one request a company (the settings only refine staleness thresholds)."""


PRIORITY: Final[Mapping[PollReason, int]] = {reason: rank for rank, reason in enumerate(PollReason)}

ESTIMATED_COST: Final[Mapping[PollReason, float]] = {
    PollReason.WEBHOOK: 2.0,
    PollReason.NEW: 1.0,
    PollReason.CHANGED: 2.0,
    PollReason.OPEN: 2.0,
    PollReason.RETRY: 2.0,
    PollReason.SWEEP: 1.0,
    PollReason.SETTINGS: 1.0,
}
"""Requests a poll is expected to cost: dataStatus, plus one history page when something moved.

A company's first read costs one request: its history baseline waits until a ``latestSyncId``
moves (or is read at once when a sync is running), so a start-up sweep is one request a company."""

BACKGROUND_SHARE: Final = 0.5
"""Sweeps and settings-only reads take at most this share of a cycle's pace: the rest is left for
changes, history pages and listings, so a change never waits behind a long background batch."""
FIRST_READ_SECONDS: Final = 75.0
"""First reads (a start-up sweep) queue at most this many seconds of work at the pace, less what is
queued already: a change seen during the sweep then waits behind ~one minute of first reads, not
the whole sweep, and with the default 60 s interval the pool never runs dry between two cycles."""
CHANGE_DETECTION_SHARE: Final = 0.5
"""At most this share of the daily budget goes to ``GET /companies``; the interval stretches if needed."""


@dataclass(frozen=True, slots=True)
class CompanyPollState:
    """What the planner remembers about one company between cycles."""

    last_sync_seen: datetime | None = None
    """The company's ``lastSync`` as of its last successful dataStatus read."""
    connection_syncs_seen: Mapping[str, datetime | None] = field(default_factory=dict)
    """Each connection's ``lastSync`` as of that read."""
    last_status_poll: datetime | None = None
    """When dataStatus last succeeded."""
    open_sync: bool = False
    """A data type was in progress, or an operation was open, at the last read."""
    failures: int = 0
    """Consecutive failed polls."""
    last_attempt: datetime | None = None


@dataclass(frozen=True, slots=True)
class PlanSettings:
    """The polling cadences the planner works with (seconds)."""

    poll_interval: float = 60.0
    full_sweep_interval: float = 21600.0
    open_sync_interval: float = 300.0
    """How often a company with a sync in progress is re-read (its lastSync moves when it ends anyway)."""
    max_retry_backoff: float = 3600.0
    """The longest wait between retries of a failing company (never longer than a full sweep)."""
    requests_per_minute: float = math.inf
    """The pace requests are sent at (``budget.max_requests_per_minute``): what a cycle can spend."""

    @property
    def requests_per_cycle(self) -> float:
        """Requests the pace allows in one poll interval."""
        return self.requests_per_minute * self.poll_interval / 60.0


@dataclass(frozen=True, slots=True)
class PlannedPoll:
    """One company's dataStatus read, with its reason and expected cost."""

    company_id: str
    reason: PollReason
    cost: float
    with_settings: bool = True
    """Read the company's sync settings too when they are due. A first read leaves them out unless
    the cycle has requests to spare (``plan_cycle``): the sweep then costs one request a company."""


@dataclass(frozen=True, slots=True)
class CyclePlan:
    """The outcome of planning one cycle."""

    polls: tuple[PlannedPoll, ...]
    """To do now, highest priority first."""
    deferred: tuple[PlannedPoll, ...]
    """Wanted, but over budget: left for a later cycle."""
    removed: frozenset[str]
    """Companies we knew that are no longer listed (deleted, filtered out, other shard)."""

    @property
    def estimated_cost(self) -> float:
        """Requests the planned polls are expected to spend."""
        return sum(p.cost for p in self.polls)


@dataclass(frozen=True, slots=True)
class PlanInputs:
    """What the planner needs, taken from the table in one step (the polls running now left out)."""

    poll_states: dict[str, CompanyPollState]
    listed: list[Company]
    settings_due: frozenset[str]
    """Companies read before, not failing, whose sync settings are due (or asked for again)."""
    queued: int
    """Polls queued or running now (earlier cycles' late ones)."""


def last_sync_moved(state: CompanyPollState, company: Company) -> bool:
    """True when the company's or any connection's ``lastSync`` differs from the last read."""
    if company.last_sync != state.last_sync_seen:
        return True
    return any(state.connection_syncs_seen.get(c.id) != c.last_sync for c in company.connections)


def retry_backoff(failures: int, settings: PlanSettings) -> float:
    """Seconds to wait after ``failures`` consecutive failures: the interval, doubling, capped.

    The cap is ``max_retry_backoff``, or the full sweep interval when that is shorter: a failing
    company is never read less often than a healthy one.
    """
    if failures <= 0:
        return 0.0
    cap = min(settings.max_retry_backoff, settings.full_sweep_interval)
    return min(cap, settings.poll_interval * 2.0 ** min(failures - 1, 30))


def sweep_due(company_id: str, last_status_poll: datetime | None, now: datetime, interval: float) -> bool:
    """True when the company's slot in the sweep cycle has come round since its last read.

    Each company owns a fixed phase within the interval (hash of its id): its
    sweep falls due at the first slot after its last read. Reads are therefore
    never more than ``interval`` apart, and after a restart the sweeps spread
    evenly over the interval rather than all landing together.
    """
    if last_status_poll is None:
        return True
    offset = phase(company_id) * interval
    slot_now = math.floor(((now - _EPOCH).total_seconds() - offset) / interval)
    slot_last = math.floor(((last_status_poll - _EPOCH).total_seconds() - offset) / interval)
    return slot_now > slot_last


def poll_reason(
    company: Company, state: CompanyPollState | None, now: datetime, settings: PlanSettings
) -> PollReason | None:
    """Why this company's dataStatus should be read this cycle, or None if it need not be."""
    if state is None or (state.last_status_poll is None and state.failures == 0):
        return PollReason.NEW
    if last_sync_moved(state, company):
        # New data is read at once, even for a company on its retry backoff: a failed poll
        # records the lastSync values it saw, so only a real move gets here.
        return PollReason.CHANGED
    if state.failures > 0:
        since = (now - state.last_attempt).total_seconds() if state.last_attempt else math.inf
        return PollReason.RETRY if since >= retry_backoff(state.failures, settings) else None
    assert state.last_status_poll is not None  # failures == 0 and not new
    since_read = (now - state.last_status_poll).total_seconds()
    if state.open_sync and since_read >= max(settings.open_sync_interval, settings.poll_interval):
        return PollReason.OPEN
    if sweep_due(company.id, state.last_status_poll, now, settings.full_sweep_interval):
        return PollReason.SWEEP
    return None


def plan_cycle(
    state: Mapping[str, CompanyPollState],
    companies: Sequence[Company],
    now: datetime,
    budget: float,
    settings: PlanSettings | None = None,
    settings_due: Collection[str] = frozenset(),
    queued: int = 0,
) -> CyclePlan:
    """Decide this cycle's dataStatus reads for ``companies`` (already filtered and sharded).

    ``budget`` is the number of requests that may be spent now. Wanted polls are
    taken in priority order (new, changed, open, retry, sweep, settings; the longest-unread
    first within a priority) while they fit; the rest are deferred. ``settings_due`` names the
    companies whose sync settings are due: one with no other reason to be read gets a
    settings-only read, last of all. ``queued`` counts the polls of earlier cycles still queued
    or running: they spend the cycle's pace first.

    Polls queue in order on the pool, so background reads (sweeps, settings) take at most
    ``BACKGROUND_SHARE`` of what the pace allows in one cycle, less what is still queued: a
    larger batch would make the next cycle's changes wait behind it. First reads are paced the
    same way (``FIRST_READ_SECONDS``), but the rest of the cycle is still planned; background
    reads wait until no first read does. An infinite ``budget`` (``once``) reads everything now.
    """
    settings = settings or PlanSettings()
    wanted: list[tuple[tuple[int, float, str], PlannedPoll]] = []
    for company in companies:
        previous = state.get(company.id)
        reason = poll_reason(company, previous, now, settings)
        if reason is None and company.id in settings_due:
            reason = PollReason.SETTINGS
        if reason is None:
            continue
        last_read = previous.last_status_poll if previous and previous.last_status_poll else _EPOCH
        key = (PRIORITY[reason], (last_read - _EPOCH).total_seconds(), company.id)
        wanted.append((key, PlannedPoll(company.id, reason, ESTIMATED_COST[reason])))
    wanted.sort(key=lambda item: item[0])
    unlimited = math.isinf(budget)
    pace = math.inf if unlimited else settings.requests_per_cycle - queued
    # At least one request a cycle while nothing is queued: with a pace under one request per cycle
    # (a short interval, a low rate) these reads would otherwise never be planned at all.
    background_pace = (
        math.inf if unlimited else max(BACKGROUND_SHARE * settings.requests_per_cycle, 1.0) - queued
    )
    first_read_depth = settings.requests_per_minute * FIRST_READ_SECONDS / 60.0
    first_read_pace = math.inf if unlimited else max(first_read_depth, 1.0) - queued
    polls: list[PlannedPoll] = []
    deferred: list[PlannedPoll] = []
    spent = 0.0
    held = False  # something waits for budget or pace: lower priorities wait too
    first_reads_waiting = False
    for _, poll in wanted:
        if poll.reason is PollReason.NEW and spent + poll.cost > first_read_pace:
            # Paced, not short of budget: the changes behind it still go now.
            first_reads_waiting = True
            deferred.append(poll)
            continue
        background = poll.reason in (PollReason.SWEEP, PollReason.SETTINGS)
        over_pace = background and (first_reads_waiting or spent + poll.cost > background_pace)
        if not held and spent + poll.cost <= budget and not over_pace:
            polls.append(poll)
            spent += poll.cost
        else:
            # Once something is deferred, everything of lower priority is too: cheaper sweeps
            # must not overtake a change that is waiting for budget.
            held = True
            deferred.append(poll)
    # A first read takes the sync settings along only while the budget and the pace leave a
    # request for them (and nothing waits); otherwise they come later as settings-only reads.
    spare = 0.0 if deferred else min(budget - spent, pace - spent)
    for index, poll in enumerate(polls):
        if poll.reason is PollReason.NEW:
            with_settings = spare >= 1.0
            spare -= 1.0 if with_settings else 0.0
            polls[index] = replace(
                poll, cost=poll.cost + (1.0 if with_settings else 0.0), with_settings=with_settings
            )
    listed = {c.id for c in companies}
    removed = frozenset(company_id for company_id in state if company_id not in listed)
    return CyclePlan(tuple(polls), tuple(deferred), removed)


def plan_from(inputs: PlanInputs, now: datetime, budget: float, settings: PlanSettings) -> CyclePlan:
    """``plan_cycle`` over what the company table handed over in one step."""
    return plan_cycle(
        inputs.poll_states, inputs.listed, now, budget, settings, inputs.settings_due, inputs.queued
    )


def needs_history(
    previous: Mapping[str, DataTypeStatus] | None,
    current: Mapping[str, DataTypeStatus],
    has_open_operations: bool,
) -> bool:
    """True when ``data/history`` must be read: a ``latestSyncId`` changed, or an op is open.

    A first read needs history only when a sync is running (to count it when it ends);
    otherwise the baseline waits until a ``latestSyncId`` moves (``history.split_baseline``).
    """
    if has_open_operations:
        return True
    if previous is None:
        return any(is_in_progress(status.current_status) for status in current.values())
    for data_type, status in current.items():
        before = previous.get(data_type)
        if before is None:
            if status.latest_sync_id is not None:
                return True
        elif before.latest_sync_id != status.latest_sync_id or before.current_status != status.current_status:
            return True
    return False


def change_detection_interval(poll_interval: float, per_day: float, pages: int) -> float:
    """Seconds between ``GET /companies`` sweeps: the configured interval, stretched to fit the budget."""
    if per_day <= 0:
        return poll_interval
    affordable = max(1, pages) * 86400.0 / (per_day * CHANGE_DETECTION_SHARE)
    return max(poll_interval, affordable)
