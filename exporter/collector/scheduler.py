"""The poll loop: tiered, budgeted reads of Codat into immutable snapshots.

Each cycle the scheduler lists companies (the change detector, ``listing``), plans which
companies' ``dataStatus`` to read (``planner.plan_cycle``), reads them on a small thread pool
(``poll.poll_company``), and publishes what it has read as it goes (``publishing``). One
company's failure marks only that company down; a 429 pauses every request from the moment it
arrived for at least ``Retry-After`` (``budget.RateLimitPause``). A cycle waits for its polls at
most one poll interval: a slow company finishes on its own and is published when it does, so it
never holds back the others. Webhooks ask for a targeted poll of one company with
``request_poll``; a ``read.completed`` names its data types, and that poll's history read covers
only them when nothing else of the company moved (``poll.history_query``).

The client-wide sync settings fill in the schedule of a data type that a company's own settings
do not name (``profile.ClientWideSchedules``); they cost a request only when some company needs them.

Threads and locks (docs/architecture.md): ``_cycle_lock`` serialises cycles and publications
and is taken before the ``CompanyTable``'s lock, which is never held during a request.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future
from datetime import datetime, timedelta
from functools import partial

from exporter.codat.client import CodatClient
from exporter.codat.defaults import DEFAULT_RETRY_AFTER
from exporter.codat.errors import RateLimitedError
from exporter.collector.budget import BudgetKeeper, RateLimitPause
from exporter.collector.companies import CompanyTable
from exporter.collector.listing import ListingCadence, list_companies, record_listing_failure
from exporter.collector.planner import (
    ESTIMATED_COST,
    PlannedPoll,
    PollReason,
    plan_from,
)
from exporter.collector.poll import PollResult, describe_error, error_reason, poll_company, record_result
from exporter.collector.pollpool import PollJob, PollPool, collect, result_of
from exporter.collector.profile import ClientWideSchedules
from exporter.collector.progress import ChangeWatch
from exporter.collector.publishing import PublishPacer, RefreshAttempts, SnapshotListener, SnapshotPublisher
from exporter.collector.report import CycleReport
from exporter.collector.settings import CollectorSettings, collector_settings
from exporter.collector.snapshot import Snapshot
from exporter.collector.startup import StartupAdvice
from exporter.common.clock import Clock, utc_now
from exporter.config.schema import Config
from exporter.exposition.selfmetrics import Telemetry

log = logging.getLogger(__name__)

__all__ = ["Clock", "CycleReport", "Scheduler", "describe_error", "error_reason", "utc_now"]


class Scheduler:
    """Polls this shard's companies and keeps the current ``Snapshot``."""

    def __init__(
        self,
        client: CodatClient,
        config: Config,
        telemetry: Telemetry,
        clock: Clock = utc_now,
        *,
        webhooks_enabled: bool | None = None,
        settings: CollectorSettings | None = None,
    ) -> None:
        """Set up an idle scheduler; nothing is requested until ``run_cycle`` or ``run_forever``."""
        self._client = client
        self._settings = settings or collector_settings(config, webhooks_enabled=webhooks_enabled)
        self._telemetry = telemetry
        self._clock = clock
        self._cycle_lock = threading.Lock()
        self._table = CompanyTable(self._settings.seen_operations_limit, self._settings.explicit_ids)
        self._listing = ListingCadence()
        self._cycles = 0
        self._pacer = PublishPacer()
        self._publisher = SnapshotPublisher()
        self._changes = ChangeWatch()
        self._wake = threading.Event()
        self._pause = RateLimitPause()
        self._budget = BudgetKeeper(
            lambda: info.limit if (info := client.rate_limit) is not None else None,
            self._settings.daily_quota_share,
            self._settings.total_shards,
            on_resize=telemetry.set_request_budget,
        )
        self._advice = StartupAdvice(self._settings)
        self._client_wide = ClientWideSchedules()
        self._pool = PollPool(self._settings.max_concurrency)
        telemetry.set_shard(self._settings.shard, self._settings.total_shards)

    @property
    def snapshot(self) -> Snapshot:
        """The current snapshot (replaced whole, never mutated)."""
        return self._publisher.snapshot

    @property
    def ready(self) -> bool:
        """True once every company of this shard has been polled at least once."""
        return self._publisher.snapshot.ready

    @property
    def paused_until(self) -> datetime | None:
        """When polling resumes after a rate limit, if paused."""
        return self._pause.until

    def daily_request_budget(self) -> float | None:
        """Requests a day this exporter allows itself (None before the first cycle)."""
        return self._budget.per_day

    def spend_requests(self, requests: int) -> None:
        """Count requests made on the exporter's behalf outside polls (auto-refresh) against the budget."""
        self._budget.spend(requests, self._clock())

    def publish_refresh_attempts(self, attempts: RefreshAttempts) -> None:
        """Show auto-refresh's attempts in the snapshot being published (see ``SnapshotPublisher``)."""
        self._publisher.set_refresh_attempts(attempts)

    def on_snapshot(self, listener: SnapshotListener) -> None:
        """Call ``listener(snapshot)`` whenever a new snapshot lands (and once now)."""
        self._publisher.subscribe(listener)

    def request_poll(
        self, company_id: str, reason: str = "webhook", data_types: Iterable[str] | None = None
    ) -> None:
        """Ask for a poll of one company as soon as possible (thread-safe; used by webhooks).

        ``data_types`` (a ``read.completed``'s) narrows the poll's history read to those types.
        """
        if self._table.request(company_id, reason, data_types):
            self._changes.seen(company_id, self._clock())
        self._wake.set()

    def pause_until(self, until: datetime) -> None:
        """Stop polling Codat until ``until`` (a rate-limit webhook or a 429 said so).

        Codat's quota resets every day, so a pause never lasts longer than a day: a
        wrong or far-future expiry must not silence the exporter for good.
        """
        end = self._pause.pause(until, self._clock())
        log.warning("polling paused until %s (Codat rate limit)", end.isoformat())

    def resume(self) -> None:
        """Resume polling now (the quota was reset)."""
        self._pause.resume()
        self._wake.set()

    def reconfigure(self, settings: CollectorSettings) -> None:
        """Use ``settings`` from the next cycle on (a config reload); companies' states are kept.

        The caller keeps what this scheduler was built with (shard, concurrency, budget share,
        explicit ids, seen-operations limit) unchanged: those need a restart.
        """
        self._settings = settings  # one reference swap: a cycle reads it at each step
        self._wake.set()

    def close(self, *, wait: bool = True) -> None:
        """Stop the worker threads: polls not started yet are dropped; ``wait`` for those in flight."""
        self._pool.close(wait=wait)

    def run_forever(self, stop: threading.Event) -> None:
        """Run cycles every poll interval (and targeted polls on request) until ``stop`` is set."""
        next_cycle = time.monotonic()
        while not stop.is_set():
            now_mono = time.monotonic()
            try:
                if now_mono >= next_cycle:
                    next_cycle = now_mono + self._settings.poll_interval
                    self.run_cycle(self._clock())
                elif self._table.has_pending:
                    self.poll_requested(self._clock())
                    if self._listing.last is None:
                        # A webhook named a company not listed yet (just created or linked):
                        # list now instead of at the next interval.
                        next_cycle = time.monotonic()
                elif self._table.dirty and time.monotonic() >= self._pacer.next_at:
                    self.publish_late_results()
            except Exception:
                # The loop must outlive any bug in one cycle; the next cycle starts afresh.
                log.exception("poll cycle failed unexpectedly")
            until = min(next_cycle, self._pacer.next_at) if self._table.dirty else next_cycle
            self._wake.wait(timeout=max(0.0, until - time.monotonic()))
            self._wake.clear()
            if stop.is_set():
                break

    def wake(self) -> None:
        """Interrupt ``run_forever``'s wait (used on shutdown)."""
        self._wake.set()

    def run_cycle(self, now: datetime | None = None, *, ignore_budget: bool = False) -> CycleReport:
        """One full cycle: change detection, planned reads, snapshot."""
        now = now or self._clock()
        report = CycleReport()
        started = time.monotonic()
        with self._cycle_lock:
            self._telemetry.set_detection_lag(self._changes.lag(now))
            if self._pause.active(now):
                report.rate_limited = True
                return report
            if self._listing.due(
                now, self._settings.poll_interval, self._budget.per_day
            ) and not self._detect_changes(now, report):
                return report
            if not self._read_profile_settings(now, report):
                return report
            self._poll_pending_into(report, now)
            inputs = self._table.plan_inputs(now, self._settings)
            available = math.inf if ignore_budget else self._budget.available(now)
            plan = plan_from(inputs, now, available, self._settings.plan)
            report.listed = len(inputs.listed)
            report.deferred = len(plan.deferred)
            for company_id in self._table.drop(plan.removed):
                report.removed.append(company_id)
                log.info("company %s is no longer watched; its series are dropped", company_id)
            self._execute(plan.polls, now, report)
            self._cycles += 1
            self._publish(now)
        self._telemetry.observe_poll_cycle(time.monotonic() - started)
        if plan.deferred:
            log.info("deferred %d company polls to stay within the request budget", len(plan.deferred))
        return report

    def poll_requested(self, now: datetime | None = None) -> CycleReport:
        """Poll the companies that ``request_poll`` asked for, now (no change detection)."""
        now = now or self._clock()
        report = CycleReport()
        with self._cycle_lock:
            if self._pause.active(now):
                report.rate_limited = True
                return report
            self._poll_pending_into(report, now)
            if report.polled or report.failed or self._table.dirty:
                self._publish(now)
        return report

    def publish_late_results(self) -> None:
        """Publish polls that finished after their cycle stopped waiting for them."""
        with self._cycle_lock:
            if self._table.dirty:
                self._publish(self._clock())

    def _detect_changes(self, now: datetime, report: CycleReport) -> bool:
        """List companies (the cheap change detector); False when the listing failed."""
        try:
            listing = list_companies(self._client, self._settings)
        except RateLimitedError as exc:
            self._telemetry.set_listing_failed("rate_limited")
            self._on_rate_limited(exc, self._clock())
            report.rate_limited = True
            return False
        except Exception as exc:
            report.error = record_listing_failure(self._telemetry, exc)
            return False
        self._telemetry.set_listing_ok(now.timestamp())
        self._budget.spend(listing.pages, now)
        report.requests += listing.pages
        report.change_detection = True
        self._listing.listed(now, listing.pages)
        for marked in self._table.apply_listing(listing, now, self._changes):
            # Reported down rather than silently dropped.
            self._telemetry.count_poll_error(marked.reason)
            log.warning("company %s is %s", marked.company_id, marked.error)
        self._advice.after_listing(listing.size)
        return True

    def _read_profile_settings(self, now: datetime, report: CycleReport) -> bool:
        """Read the client-wide sync settings when due and affordable; False when Codat answered 429."""
        if not self._client_wide.due(now, self._settings) or self._budget.available(now) < 1:
            return True  # companies' own settings apply meanwhile
        try:
            spent = self._client_wide.refresh(self._client, now, self._table.reread_settings)
        except RateLimitedError as exc:
            self._on_rate_limited(exc, self._clock())
            report.rate_limited, spent = True, 1
        self._budget.spend(spent, now)
        report.requests += spent
        return not report.rate_limited

    def _poll_pending_into(self, report: CycleReport, now: datetime) -> None:
        pending = self._table.take_pending()
        if pending.relist:
            self._listing.last = None
        if pending.focus:
            cost = ESTIMATED_COST[PollReason.WEBHOOK]
            polls = [PlannedPoll(cid, PollReason.WEBHOOK, cost) for cid in pending.focus]
            self._execute(polls, now, report, pending.focus)

    def _execute(
        self,
        polls: Sequence[PlannedPoll],
        now: datetime,
        report: CycleReport,
        focus: Mapping[str, frozenset[str] | None] | None = None,
    ) -> None:
        """Run ``polls`` on the pool; wait at most ``cycle_wait``, publishing as results come in."""
        if not polls or self._pool.closing.is_set():
            return
        self._table.start(p.company_id for p in polls)
        jobs: dict[str, PollJob] = {
            p.company_id: partial(self._poll_one, p, now, (focus or {}).get(p.company_id)) for p in polls
        }
        futures, refused = self._pool.submit(jobs)
        for company_id in refused:
            self._table.finish(company_id, None, store=False)
        # A cycle reads for a moment before it first publishes: a small fleet is published once.
        self._pacer.hold(time.monotonic(), self._settings.publish_interval)

        def publish() -> None:
            self._publish(now)

        waiting = collect(
            futures,
            time.monotonic() + self._settings.cycle_wait,
            lambda company_id, result: self._apply(company_id, result, report),
            lambda: self._pacer.next_at,
            publish,
            time.monotonic,
            self._pool.closing,
            lambda: self._table.dirty,
        )
        if waiting:
            report.still_running = len(waiting)
            log.log(
                logging.DEBUG if self._pool.closing.is_set() else logging.WARNING,
                "%d company poll(s) still queued or running after %.0fs; the cycle goes on without them",
                len(waiting),
                self._settings.cycle_wait,
            )
            for future in waiting:
                future.add_done_callback(partial(self._apply_late, futures[future]))

    def _poll_one(
        self, poll: PlannedPoll, now: datetime, data_types: frozenset[str] | None
    ) -> PollResult | None:
        if self._pool.closing.is_set() or self._pause.active(self._clock()):
            return None
        target = self._table.target(poll.company_id)
        if target is None:
            return None
        listed, state = target
        result = poll_company(
            self._client,
            state,
            listed,
            now,
            self._settings,
            self._clock,
            data_types=data_types,
            default_schedules=self._client_wide.schedules,
            reason=poll.reason,
            with_settings=poll.with_settings,
        )
        if isinstance(result.error, RateLimitedError) and result.rate_limited_at is not None:
            # Pause at once, so the polls still queued behind this one do not start.
            self._on_rate_limited(result.error, result.rate_limited_at)
        return result

    def _apply(self, company_id: str, result: PollResult | None, report: CycleReport | None) -> None:
        rate_limited = result is not None and isinstance(result.error, RateLimitedError)
        self._table.finish(company_id, result, store=not rate_limited)
        if result is None:
            return
        if not rate_limited and not result.settings_only:
            self._changes.read(company_id)
        self._budget.spend(result.requests, self._clock())
        record_result(self._telemetry, result, self._settings.data_type_filter)
        if result.unnamed_types:
            self._client_wide.want(company_id)
        if report is not None:
            report.add(company_id, result, rate_limited=rate_limited)

    def _apply_late(self, company_id: str, future: Future[PollResult | None]) -> None:
        self._apply(company_id, result_of(future), None)
        self._wake.set()

    def _on_rate_limited(self, exc: RateLimitedError, arrived: datetime) -> None:
        wait_seconds = exc.retry_after if exc.retry_after is not None else DEFAULT_RETRY_AFTER
        self.pause_until(arrived + timedelta(seconds=wait_seconds))

    def _publish(self, now: datetime) -> Snapshot:
        view = self._table.view()
        self._telemetry.set_progress(view.watched, view.polled)
        self._telemetry.set_detection_lag(self._changes.lag(self._clock()))
        if view.ready:
            self._advice.after_first_sweep(view.states.values())
        started = time.monotonic()
        snapshot = self._publisher.publish(view.states, now, view.ready, self._cycles)
        self._pacer.published(time.monotonic() - started, time.monotonic(), self._settings.publish_interval)
        return snapshot
