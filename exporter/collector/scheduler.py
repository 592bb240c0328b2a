"""The poll loop: tiered, budgeted reads of Codat into immutable snapshots.

Each cycle the scheduler lists companies (the change detector), plans which
companies' ``dataStatus`` to read (``planner.plan_cycle``), reads them on a
small thread pool, reads ``data/history`` where something moved, and swaps in a
new ``Snapshot``. One company's failure marks only that company down; a 429
stops the rest of the cycle until ``Retry-After``. Webhooks ask for a targeted
poll of one company with ``request_poll``.

With an explicit ``companies.ids`` list the scheduler still lists companies for
change detection: one ``GET /companies`` page covers up to 5,000 companies, so
it costs less than reading a single company's ``dataStatus`` every interval.
Listed ids that Codat does not return are reported down.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol

from exporter.codat.client import CodatClient
from exporter.codat.errors import (
    BadRequestError,
    CodatConnectionError,
    CodatError,
    ForbiddenError,
    MalformedResponseError,
    NotFoundError,
    PaymentRequiredError,
    RateLimitedError,
    ServerError,
    UnauthorizedError,
)
from exporter.codat.models import Company, Page
from exporter.collector.budget import RequestBudget, capacity, daily_budget
from exporter.collector.history import HistoryLedger, HistoryScan, ScanResult, duration_seconds
from exporter.collector.planner import (
    ESTIMATED_COST,
    PlannedPoll,
    PlanSettings,
    PollReason,
    change_detection_interval,
    needs_history,
    plan_cycle,
)
from exporter.collector.sharding import owns
from exporter.collector.snapshot import Snapshot
from exporter.collector.state import (
    CompanyFilter,
    CompanyState,
    DataTypeFilter,
    SnapshotBuilder,
    new_company_state,
    with_failure,
    with_status_read,
)
from exporter.config.schema import Config
from exporter.metrics import Telemetry

log = logging.getLogger(__name__)

COMPANIES_PAGE_SIZE: Final = 5000
"""Codat's largest page: one request lists up to this many companies."""
MAX_HISTORY_PAGES: Final = 20
"""A scan never reads more pages than this in one poll (protects the budget from a huge backlog)."""
DEFAULT_RETRY_AFTER: Final = 60.0
"""Pause after a 429 that carried no Retry-After."""
MAX_PAUSE: Final = timedelta(days=1)
"""The longest a rate-limit pause may last: Codat's quota resets daily."""

Clock = Callable[[], datetime]
SnapshotListener = Callable[[Snapshot], None]


def utc_now() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


class Refresher(Protocol):
    """What the scheduler asks of auto-refresh (``exporter.refresh.AutoRefresher``)."""

    def run_cycle(self, snapshot: Snapshot, now: datetime) -> Sequence[Any]:
        """Decide and queue refreshes for this snapshot; return the outcomes."""
        ...

    def last_attempts(self) -> Mapping[tuple[str, str], datetime]:
        """(company_id, data_type) → when a refresh was last attempted."""
        ...


def error_reason(exc: BaseException) -> str:
    """A short, bounded label for a poll failure (the ``reason`` of the poll-errors counter)."""
    reasons: tuple[tuple[type[BaseException], str], ...] = (
        (RateLimitedError, "rate_limited"),
        (UnauthorizedError, "unauthorized"),
        (ForbiddenError, "forbidden"),
        (PaymentRequiredError, "payment_required"),
        (NotFoundError, "not_found"),
        (BadRequestError, "bad_request"),
        (ServerError, "server_error"),
        (MalformedResponseError, "malformed_response"),
        (CodatConnectionError, "connection_error"),
        (CodatError, "api_error"),
    )
    for kind, reason in reasons:
        if isinstance(exc, kind):
            return reason
    return "unexpected"


def describe_error(exc: BaseException) -> str:
    """One line for logs and the landing page; Codat errors are already redacted by the client."""
    if isinstance(exc, CodatError):
        return str(exc)
    # An unexpected exception's text could echo anything; its type and a short message will do.
    return f"{type(exc).__name__}: {str(exc)[:200]}"


@dataclass(slots=True)
class CycleReport:
    """What one cycle did (for ``once``, logs and tests)."""

    listed: int = 0
    polled: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    deferred: int = 0
    removed: list[str] = field(default_factory=list)
    requests: int = 0
    rate_limited: bool = False
    change_detection: bool = False
    error: str | None = None


@dataclass(slots=True)
class _PollOutcome:
    company_id: str
    state: CompanyState
    requests: int
    error: BaseException | None = None


class Scheduler:
    """Polls this shard's companies and keeps the current ``Snapshot``."""

    def __init__(
        self,
        client: CodatClient,
        config: Config,
        telemetry: Telemetry,
        clock: Clock = utc_now,
        refresher: Refresher | None = None,
        *,
        webhooks_enabled: bool | None = None,
    ) -> None:
        """Set up an idle scheduler; nothing is requested until ``run_cycle`` or ``run_forever``."""
        self._client = client
        self._config = config
        self._telemetry = telemetry
        self._clock = clock
        self._refresher = refresher
        polling = config.polling
        with_webhooks = config.webhooks.enabled if webhooks_enabled is None else webhooks_enabled
        self._settings = PlanSettings(
            poll_interval=polling.interval,
            full_sweep_interval=(
                polling.full_sweep_interval_with_webhooks if with_webhooks else polling.full_sweep_interval
            ),
            open_sync_interval=max(300.0, polling.interval),
            max_retry_backoff=min(3600.0, polling.full_sweep_interval),
        )
        selection = config.companies
        self._company_filter = CompanyFilter(selection.ids, selection.include, selection.exclude)
        self._data_type_filter = DataTypeFilter(config.data_types.include, config.data_types.exclude)
        self._shard = config.sharding.shard
        self._total_shards = config.sharding.total_shards
        self._lock = threading.RLock()
        self._cycle_lock = threading.Lock()
        self._states: dict[str, CompanyState] = {}
        self._listed: dict[str, Company] = {}
        self._not_watched: frozenset[str] = frozenset()
        """Ids the last listing returned that are filtered out or another shard's."""
        self._listed_once = False
        self._last_change_detection: datetime | None = None
        self._companies_pages = 1
        self._snapshot = Snapshot()
        self._snapshots = SnapshotBuilder()
        self._listeners: list[SnapshotListener] = []
        self._pending: dict[str, str] = {}
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._paused_until: datetime | None = None
        self._budget: RequestBudget | None = None
        self._budget_known = False
        self._pool = ThreadPoolExecutor(
            max_workers=config.budget.max_concurrency, thread_name_prefix="codat-poll"
        )
        telemetry.set_shard(self._shard, self._total_shards)

    # --- public surface -------------------------------------------------------------------------

    @property
    def snapshot(self) -> Snapshot:
        """The current snapshot (replaced whole, never mutated)."""
        return self._snapshot

    @property
    def ready(self) -> bool:
        """True once every company of this shard has been polled at least once."""
        return self._snapshot.ready

    @property
    def paused_until(self) -> datetime | None:
        """When polling resumes after a rate limit, if paused."""
        return self._paused_until

    def set_refresher(self, refresher: Refresher | None) -> None:
        """Attach auto-refresh (run after each cycle, once the exporter is ready)."""
        self._refresher = refresher

    def daily_request_budget(self) -> float | None:
        """Requests a day this exporter allows itself (None before the first cycle)."""
        return self._budget.per_day if self._budget is not None else None

    def on_snapshot(self, listener: SnapshotListener) -> None:
        """Call ``listener(snapshot)`` whenever a new snapshot lands (and once now)."""
        with self._lock:
            self._listeners.append(listener)
        listener(self._snapshot)

    def request_poll(self, company_id: str, reason: str = "webhook") -> None:
        """Ask for a poll of one company as soon as possible (thread-safe; used by webhooks)."""
        with self._lock:
            self._pending[company_id] = reason
        self._wake.set()

    def pause_until(self, until: datetime) -> None:
        """Stop polling Codat until ``until`` (a rate-limit webhook or a 429 said so).

        Codat's quota resets every day, so a pause never lasts longer than a day: a
        wrong or far-future expiry must not silence the exporter for good.
        """
        until = min(until, self._clock() + MAX_PAUSE)
        with self._lock:
            if self._paused_until is None or until > self._paused_until:
                self._paused_until = until
        log.warning("polling paused until %s (Codat rate limit)", until.isoformat())

    def resume(self) -> None:
        """Resume polling now (the quota was reset)."""
        with self._lock:
            self._paused_until = None
        self._wake.set()

    def close(self, *, wait: bool = True) -> None:
        """Stop the worker threads: polls not started yet are dropped; ``wait`` for those in flight.

        Without this a shutdown would first work through every poll the current cycle queued
        (the pool's threads are joined at interpreter exit), spending minutes and quota.
        """
        self._closing.set()
        self._pool.shutdown(wait=wait)

    # --- the loop -------------------------------------------------------------------------------

    def run_forever(self, stop: threading.Event) -> None:
        """Run cycles every poll interval (and targeted polls on request) until ``stop`` is set."""
        interval = self._config.polling.interval
        next_cycle = time.monotonic()
        while not stop.is_set():
            now_mono = time.monotonic()
            try:
                if now_mono >= next_cycle:
                    next_cycle = now_mono + interval
                    self.run_cycle(self._clock())
                elif self._pending:
                    self.poll_requested(self._clock())
                    if self._last_change_detection is None:
                        # A webhook named a company not listed yet (just created or linked):
                        # list now instead of at the next interval.
                        next_cycle = time.monotonic()
            except Exception:
                # The loop must outlive any bug in one cycle; the next cycle starts afresh.
                log.exception("poll cycle failed unexpectedly")
            self._wake.wait(timeout=max(0.0, next_cycle - time.monotonic()))
            self._wake.clear()
            if stop.is_set():
                break

    def wake(self) -> None:
        """Interrupt ``run_forever``'s wait (used on shutdown)."""
        self._wake.set()

    def run_cycle(self, now: datetime | None = None, *, ignore_budget: bool = False) -> CycleReport:
        """One full cycle: change detection, planned reads, snapshot, auto-refresh."""
        now = now or self._clock()
        report = CycleReport()
        started = time.monotonic()
        with self._cycle_lock:
            if self._is_paused(now):
                report.rate_limited = True
                return report
            budget = self._budget_at(now)
            if self._change_detection_due(now):
                try:
                    requests_made = self._detect_changes(now)
                except RateLimitedError as exc:
                    self._on_rate_limited(exc, now, report)
                    return report
                except Exception as exc:
                    report.error = describe_error(exc)
                    self._telemetry.count_poll_error("companies_" + error_reason(exc))
                    log.error("listing companies failed: %s", report.error)
                    return report
                budget.spend(requests_made)
                report.requests += requests_made
                report.change_detection = True
                budget = self._budget_at(now)
            spent = report.requests
            self._poll_pending_into(report, now)
            budget.spend(report.requests - spent)
            spent = report.requests
            with self._lock:
                poll_states = {cid: s.poll for cid, s in self._states.items()}
                listed = list(self._listed.values())
            available = math.inf if ignore_budget else budget.available(now)
            plan = plan_cycle(poll_states, listed, now, available, self._settings)
            report.listed = len(listed)
            report.deferred = len(plan.deferred)
            self._drop(plan.removed, report)
            self._execute(plan.polls, now, report)
            budget.spend(report.requests - spent)
            snapshot = self._publish(now)
            self._auto_refresh(snapshot, now, budget)
        self._telemetry.observe_poll_cycle(time.monotonic() - started)
        if plan.deferred:
            log.info("deferred %d company polls to stay within the request budget", len(plan.deferred))
        return report

    def poll_requested(self, now: datetime | None = None) -> CycleReport:
        """Poll the companies that ``request_poll`` asked for, now (no change detection)."""
        now = now or self._clock()
        report = CycleReport()
        with self._cycle_lock:
            if self._is_paused(now):
                report.rate_limited = True
                return report
            self._poll_pending_into(report, now)
            if report.polled or report.failed:
                self._budget_at(now).spend(report.requests)
                self._publish(now)
        return report

    # --- steps ----------------------------------------------------------------------------------

    def _is_paused(self, now: datetime) -> bool:
        with self._lock:
            if self._paused_until is None:
                return False
            if now >= self._paused_until:
                self._paused_until = None
                return False
            return True

    def _budget_at(self, now: datetime) -> RequestBudget:
        info = self._client.rate_limit
        per_day = daily_budget(
            info.limit if info else None, self._config.budget.daily_quota_share, self._total_shards
        )
        known = info is not None and info.limit is not None
        if self._budget is None or (known and not self._budget_known):
            # The first real X-Rate-Limit-Limit replaces the conservative guess with a full
            # bucket: otherwise start-up would crawl at the guessed (smallest) quota's pace.
            spent_before = (
                0.0 if self._budget is None else capacity(self._budget.per_day) - self._budget.tokens
            )
            self._budget = RequestBudget.full(per_day, now)
            self._budget.spend(max(0.0, spent_before))
            self._budget_known = known
            self._telemetry.set_request_budget(per_day)
        elif per_day != self._budget.per_day:
            self._budget.resize(per_day, now)
            self._telemetry.set_request_budget(per_day)
        return self._budget

    def _change_detection_due(self, now: datetime) -> bool:
        if self._last_change_detection is None:
            return True
        budget = self._budget.per_day if self._budget else 0.0
        interval = change_detection_interval(self._settings.poll_interval, budget, self._companies_pages)
        # A little slack so a loop woken a hair early still runs it.
        return (now - self._last_change_detection).total_seconds() >= interval * 0.99

    def _detect_changes(self, now: datetime) -> int:
        """List companies (the cheap change detector); returns the requests made."""
        selection = self._config.companies
        pages = 0

        def count_page(_page: Page[Company]) -> None:
            nonlocal pages
            pages += 1

        # The client's paging walk also stops a server that keeps announcing a next page.
        found = list(
            self._client.iter_companies(
                query=selection.query, tags=selection.tags, page_size=COMPANIES_PAGE_SIZE, on_page=count_page
            )
        )
        selected = {
            c.id: c for c in found if self._company_filter(c) and owns(c.id, self._shard, self._total_shards)
        }
        missing = [
            cid for cid in selection.ids if cid not in selected and owns(cid, self._shard, self._total_shards)
        ]
        with self._lock:
            self._listed = selected
            self._not_watched = frozenset(c.id for c in found if c.id not in selected)
            self._listed_once = True
            self._last_change_detection = now
            self._companies_pages = pages
            for cid, company in selected.items():
                # Names, tags and connection status come from the listing: keep them current
                # even for companies whose data status is not read this cycle.
                state = self._states.get(cid)
                if state is not None and state.company != company:
                    self._states[cid] = replace(state, company=company)
            for cid in missing:
                self._mark_missing(cid, now)
        return pages

    def _mark_missing(self, company_id: str, now: datetime) -> None:
        # An explicit id Codat does not list: report it down rather than silently drop it.
        error = "not listed by GET /companies (deleted, or not visible to this API key)"
        previous = self._states.get(company_id)
        if previous is not None and previous.last_error == error:
            return
        state = previous or new_company_state(
            Company(id=company_id, name=""), self._config.polling.seen_operations_limit
        )
        self._states[company_id] = with_failure(state, error, now)
        self._telemetry.count_poll_error("not_found")
        log.warning("company %s is %s", company_id, error)

    def _poll_pending_into(self, report: CycleReport, now: datetime) -> None:
        with self._lock:
            pending = dict(self._pending)
            self._pending.clear()
            known = {cid: c for cid, c in self._listed.items() if cid in pending}
            if any(cid not in known and cid not in self._not_watched for cid in pending):
                # A company we have not listed yet (just created, or just linked): list again.
                # Companies listed but filtered out are not: their webhooks would re-list every time.
                self._last_change_detection = None
        if known:
            cost = ESTIMATED_COST[PollReason.WEBHOOK]
            polls = [PlannedPoll(cid, PollReason.WEBHOOK, cost) for cid in known]
            self._execute(polls, now, report)

    def _drop(self, removed: Iterable[str], report: CycleReport) -> None:
        with self._lock:
            for company_id in removed:
                if company_id in self._config.companies.ids and company_id in self._states:
                    continue  # kept, reported down by _mark_missing
                if self._states.pop(company_id, None) is not None:
                    report.removed.append(company_id)
                    log.info("company %s is no longer watched; its series are dropped", company_id)

    def _execute(self, polls: Sequence[PlannedPoll], now: datetime, report: CycleReport) -> None:
        if not polls or self._closing.is_set():
            return
        stop = threading.Event()
        futures = [self._pool.submit(self._poll_company, poll, now, stop) for poll in polls]
        for future in futures:
            outcome = future.result()
            if outcome is None:
                continue
            report.requests += outcome.requests
            if isinstance(outcome.error, RateLimitedError):
                self._on_rate_limited(outcome.error, now, report)
                continue
            with self._lock:
                if outcome.company_id in self._listed or outcome.company_id in self._states:
                    self._states[outcome.company_id] = outcome.state
            if outcome.error is None:
                report.polled.append(outcome.company_id)
            else:
                report.failed.append(outcome.company_id)

    def _poll_company(self, poll: PlannedPoll, now: datetime, stop: threading.Event) -> _PollOutcome | None:
        if stop.is_set() or self._closing.is_set() or self._is_paused(now):
            return None
        with self._lock:
            listed = self._listed.get(poll.company_id)
            state = self._states.get(poll.company_id)
        if listed is None:
            return None
        if state is None:
            state = new_company_state(listed, self._config.polling.seen_operations_limit)
        requests_made = 0
        try:
            statuses = self._client.get_data_status(poll.company_id)
            requests_made += 1
            allowed = {dt: s for dt, s in statuses.items() if self._data_type_filter(dt)}
            scan = None
            if needs_history(state.statuses, allowed, bool(state.ledger.open)):
                scan, pages = self._scan_history(state)
                requests_made += pages
            new_state = with_status_read(state, statuses, scan, listed, now, self._data_type_filter)
            if scan is not None and not scan[1].baseline:
                for op in scan[1].new_terminal:
                    seconds = duration_seconds(op)
                    if seconds is not None and self._data_type_filter(op.data_type):
                        self._telemetry.observe_pull_operation(op.data_type, op.status, seconds)
            return _PollOutcome(poll.company_id, new_state, requests_made)
        except RateLimitedError as exc:
            stop.set()
            self._telemetry.count_poll_error("rate_limited")
            return _PollOutcome(poll.company_id, state, requests_made + 1, exc)
        except Exception as exc:
            reason = error_reason(exc)
            message = describe_error(exc)
            self._telemetry.count_poll_error(reason)
            log.warning("poll of company %s failed (%s): %s", poll.company_id, reason, message)
            return _PollOutcome(poll.company_id, with_failure(state, message, now), requests_made + 1, exc)

    def _scan_history(self, state: CompanyState) -> tuple[tuple[HistoryLedger, ScanResult], int]:
        scan = HistoryScan(state.ledger)
        # The first scan only sets the baseline: one page is enough, older operations are history.
        max_pages = MAX_HISTORY_PAGES if state.ledger.started else 1
        page_number = 1
        exhausted = True
        while True:
            page = self._client.list_pull_operations(
                state.company.id,
                page=page_number,
                page_size=self._config.polling.history_page_size,
                order_by="-requested",
            )
            more = scan.add_page(page.results)
            if not more or not page.has_next or not page.results:
                break
            if page_number >= max_pages:
                exhausted = False
                break
            page_number += 1
        return scan.finish(exhausted=exhausted), page_number

    def _on_rate_limited(self, exc: RateLimitedError, now: datetime, report: CycleReport) -> None:
        report.rate_limited = True
        wait = exc.retry_after if exc.retry_after is not None else DEFAULT_RETRY_AFTER
        self.pause_until(now + timedelta(seconds=wait))

    def _publish(self, now: datetime) -> Snapshot:
        attempts = self._refresher.last_attempts() if self._refresher is not None else None
        with self._lock:
            ready = self._listed_once and all(
                cid in self._states and self._states[cid].attempted for cid in self._listed
            )
            snapshot = self._snapshots.build(self._states, now, ready, attempts)
            self._snapshot = snapshot
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(snapshot)
            except Exception:
                log.exception("snapshot listener failed")
        return snapshot

    def _auto_refresh(self, snapshot: Snapshot, now: datetime, budget: RequestBudget) -> None:
        if self._refresher is None or not snapshot.ready:
            return
        try:
            outcomes = self._refresher.run_cycle(snapshot, now)
        except Exception:
            log.exception("auto-refresh cycle failed")
            return
        if outcomes:
            budget.spend(len(outcomes))
            self._publish(now)
