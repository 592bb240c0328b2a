"""The auto-refresher: runs the pure policy each poll cycle and queues what it decides, safely.

It is a snapshot listener (``on_snapshot``): once per poll cycle, when the exporter is ready, it
decides and queues refreshes, then publishes its attempts into the snapshot being handed out
(``publish_attempts``), so the exposition renders that snapshot once, attempts included.

It keeps the attempt history the policy needs (cooldowns, backoff, daily budget), tracks the
refreshes it queued until the snapshot shows them running or done, honours Retry-After after a
429 for every later refresh, and logs one line per action with the company, data type and how
stale it was.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Final

from exporter.codat import statuses
from exporter.codat.defaults import DEFAULT_RETRY_AFTER
from exporter.codat.statuses import StatusClass
from exporter.collector.snapshot import Snapshot
from exporter.common.clock import utc_now
from exporter.common.durations import format_duration
from exporter.config.schema import AutoRefreshSettings
from exporter.exposition.selfmetrics import Telemetry
from exporter.refresh.actions import ALL_DATA_TYPES, RefreshClient, RefreshOutcome, perform_refresh
from exporter.refresh.policy import (
    BACKOFF_CAP,
    DAY,
    SYNC_FAILED,
    Attempt,
    Decision,
    RefreshAction,
    decide_refreshes,
)

log = logging.getLogger("exporter.refresh")

PENDING_TIMEOUT: Final = timedelta(hours=6)
"""A queued refresh that never shows up in a snapshot stops counting as pending after this."""

ACCOUNT_LEVEL_ERRORS: Final = frozenset({401, 402, 403})
"""HTTP statuses that mean every refresh would fail (key or plan), not just this one."""

DRY_RUN: Final = "dry_run"
SKIPPED_BUDGET: Final = "skipped_budget"


class AutoRefresher:
    """Queues Codat syncs for stale data each cycle, within cooldowns and budgets; thread-safe."""

    def __init__(
        self,
        client: RefreshClient,
        settings: AutoRefreshSettings,
        telemetry: Telemetry,
        owns: Callable[[str], bool] = lambda _company_id: True,
        clock: Callable[[], datetime] = utc_now,
        daily_request_budget: Callable[[], float | None] = lambda: None,
        on_queued: Callable[[str], None] = lambda _company_id: None,
        *,
        spend_requests: Callable[[int], None] = lambda _requests: None,
        publish_attempts: Callable[[Mapping[tuple[str, str], datetime]], None] = lambda _attempts: None,
    ) -> None:
        """Create a refresher; nothing is sent until ``run_cycle``.

        ``daily_request_budget`` gives the exporter's requests per day, of which
        refreshes may use ``request_share`` (``None``: no such limit).
        ``on_queued(company_id)`` is called after a refresh is queued, so the
        scheduler can poll that company soon and see the sync start.
        ``spend_requests(n)`` counts the requests a cycle made against the exporter's budget, and
        ``publish_attempts`` shows the attempts in the snapshot being published.
        """
        self._client = client
        self._settings = settings
        self._telemetry = telemetry
        self._owns = owns
        self._clock = clock
        self._daily_request_budget = daily_request_budget
        self._on_queued = on_queued
        self._spend_requests = spend_requests
        self._publish_attempts = publish_attempts
        self._last_cycle: int | None = None
        self._lock = threading.Lock()
        self._attempts: list[Attempt] = []
        self._pending: dict[tuple[str, str], datetime] = {}
        self._seen_running: set[tuple[str, str]] = set()
        self._blocked_until: datetime | None = None
        self.last_decision = Decision()

    def reconfigure(self, settings: AutoRefreshSettings) -> None:
        """Use ``settings`` (rules, cooldowns, limits) from the next cycle on (a config reload)."""
        self._settings = settings

    def on_snapshot(self, snapshot: Snapshot) -> None:
        """Run once per poll cycle on a ready snapshot, and publish the attempts it made."""
        if not snapshot.ready or snapshot.cycle == self._last_cycle:
            return
        self._last_cycle = snapshot.cycle
        try:
            outcomes = self.run_cycle(snapshot, self._clock())
        except Exception:
            log.exception("auto-refresh cycle failed")
            return
        if outcomes:
            self._spend_requests(len(outcomes))
        attempts = self.last_attempts()
        if attempts:
            self._publish_attempts(attempts)

    def last_attempts(self) -> Mapping[tuple[str, str], datetime]:
        """When each (company id, data type or ``"all"``) was last tried (dry runs included)."""
        with self._lock:
            return {(a.company_id, a.data_type): a.at for a in self._attempts}

    def pending(self) -> Mapping[tuple[str, str], datetime]:
        """Pairs we queued whose sync has not yet been seen finished, with when we queued them."""
        with self._lock:
            return dict(self._pending)

    def run_cycle(self, snapshot: Snapshot, now: datetime | None = None) -> list[RefreshOutcome]:
        """Decide and queue this cycle's refreshes; returns the outcome of every request made."""
        now = now if now is not None else self._clock()
        with self._lock:
            self._track_pending(snapshot, now)
            decision = decide_refreshes(
                snapshot,
                self._settings,
                self._attempts,
                now,
                owns=self._owns,
                pending=self._pending.keys(),
                request_allowance=self._request_allowance(now),
            )
            self.last_decision = decision
            for skipped in decision.skipped:
                if skipped.reason.is_budget:
                    self._telemetry.count_refresh(skipped.staleness.data_type, SKIPPED_BUDGET)
                log.debug(
                    "refresh skipped company=%s data_type=%s reason=%s staleness=%s %s",
                    skipped.staleness.company_id,
                    skipped.staleness.data_type,
                    skipped.reason.value,
                    format_duration(skipped.staleness.seconds),
                    skipped.detail,
                )
            outcomes = self._execute(decision.actions, now)
            self._telemetry.set_refresh_pending(len(self._pending))
            self._prune(now)
            self._log_summary(decision, outcomes)
            return outcomes

    def _log_summary(self, decision: Decision, outcomes: list[RefreshOutcome]) -> None:
        over_budget = sum(1 for skipped in decision.skipped if skipped.reason.is_budget)
        if not decision.actions and not over_budget:
            return
        results = Counter(outcome.result for outcome in outcomes)
        log.info(
            "auto-refresh cycle: %d decided%s, %s, %d stale pair(s) over budget, %d pending",
            len(decision.actions),
            " (dry run)" if self._settings.dry_run else "",
            ", ".join(f"{result}={results[result]}" for result in sorted(results)) or "nothing sent",
            over_budget,
            len(self._pending),
        )

    # --- internals (called with the lock held) ---------------------------------------------

    def _execute(self, actions: tuple[RefreshAction, ...], now: datetime) -> list[RefreshOutcome]:
        outcomes: list[RefreshOutcome] = []
        for index, action in enumerate(actions):
            if self._blocked_until is not None and now < self._blocked_until:
                self._skip_rest(actions[index:], f"rate limited until {self._blocked_until.isoformat()}")
                break
            if self._settings.dry_run:
                self._record(action, now, DRY_RUN)
                self._telemetry.count_refresh(action.data_type, DRY_RUN)
                self._log_action("refresh dry-run (not queued)", action)
                continue
            outcome = perform_refresh(
                self._client, action.company_id, None if action.is_refresh_all else action.data_type
            )
            outcomes.append(outcome)
            self._record(action, now, outcome.result)
            self._telemetry.count_refresh(action.data_type, outcome.result)
            self._log_outcome(action, outcome)
            if outcome.result == "queued":
                for covered in action.covers:
                    self._pending[(covered.company_id, covered.data_type)] = now
                    self._seen_running.discard((covered.company_id, covered.data_type))
                self._on_queued(action.company_id)
            elif outcome.result == "rate_limited":
                wait = outcome.retry_after if outcome.retry_after is not None else DEFAULT_RETRY_AFTER
                self._blocked_until = now + timedelta(seconds=max(wait, 1.0))
            elif outcome.status_code in ACCOUNT_LEVEL_ERRORS:
                # A bad key or plan fails every refresh the same way: do not send the rest.
                log.warning("refresh stopped for this cycle: %s", outcome.message)
                break
        return outcomes

    def _skip_rest(self, actions: tuple[RefreshAction, ...], why: str) -> None:
        for action in actions:
            self._telemetry.count_refresh(action.data_type, SKIPPED_BUDGET)
        log.info("refresh held back: %d refresh(es) not sent this cycle; %s", len(actions), why)

    def _record(self, action: RefreshAction, now: datetime, result: str) -> None:
        self._attempts.append(Attempt(action.company_id, action.data_type, now, result))

    def _request_allowance(self, now: datetime) -> float | None:
        per_day = self._daily_request_budget()
        if per_day is None:
            return None
        spent = sum(1 for a in self._attempts if a.counted and a.result != DRY_RUN and now - a.at < DAY)
        return self._settings.request_share * per_day - spent

    def _track_pending(self, snapshot: Snapshot, now: datetime) -> None:
        """Drop pending pairs whose sync the snapshot shows finished (or that never showed up)."""
        for pair, queued_at in list(self._pending.items()):
            company_id, data_type = pair
            company = snapshot.companies.get(company_id)
            status = company.statuses.get(data_type) if company is not None else None
            if status is not None and statuses.is_in_progress(status.current_status):
                self._seen_running.add(pair)
                continue
            polled_since = (
                company is not None
                and company.last_poll_success is not None
                and company.last_poll_success > queued_at
            )
            synced_since = (
                status is not None
                and status.last_successful_sync is not None
                and status.last_successful_sync >= queued_at
            )
            if (
                pair in self._seen_running
                or synced_since
                or polled_since
                or now - queued_at > PENDING_TIMEOUT
            ):
                del self._pending[pair]
                self._seen_running.discard(pair)
                if status is not None and statuses.classify(status.current_status) is StatusClass.ERROR:
                    self._mark_sync_failed(company_id, data_type, queued_at)

    def _mark_sync_failed(self, company_id: str, data_type: str, queued_at: datetime) -> None:
        """Record that a sync we queued ended in an error, so the pair backs off like a failed request.

        Without this a data type that always fails would be queued again every
        cooldown, forever; with it the waits double up to a day.
        """
        for index in range(len(self._attempts) - 1, -1, -1):
            attempt = self._attempts[index]
            if (attempt.company_id, attempt.data_type, attempt.at) == (company_id, data_type, queued_at):
                self._attempts[index] = replace(attempt, result=SYNC_FAILED)
                return
        self._attempts.append(Attempt(company_id, data_type, queued_at, SYNC_FAILED, counted=False))

    def _prune(self, now: datetime) -> None:
        """Keep a day of attempts for the budgets and each pair's recent ones for backoff."""
        horizon = now - max(DAY, BACKOFF_CAP) * 2
        self._attempts = [a for a in self._attempts if a.at >= horizon]
        if self._blocked_until is not None and now >= self._blocked_until:
            self._blocked_until = None

    def _log_action(self, what: str, action: RefreshAction, extra: str = "") -> None:
        worst = action.worst
        kind = "never_synced_grace" if worst.never_synced else "rule_max"
        covers = f" covers={len(action.covers)}" if action.is_refresh_all else ""
        log.info(
            "%s company=%s data_type=%s staleness=%s %s=%s%s%s",
            what,
            action.company_id,
            action.data_type,
            format_duration(worst.seconds),
            kind,
            format_duration(worst.limit),
            covers,
            extra,
        )

    def _log_outcome(self, action: RefreshAction, outcome: RefreshOutcome) -> None:
        if outcome.result == "queued":
            dataset = f" dataset={outcome.dataset_id}" if outcome.dataset_id else ""
            self._log_action("refresh queued", action, dataset)
        elif outcome.result == "already_in_progress":
            running = f" dataset={outcome.running_dataset_id}" if outcome.running_dataset_id else ""
            self._log_action("refresh not needed, sync already in progress", action, running)
        elif outcome.result == "rate_limited":
            self._log_action("refresh rate limited; holding off", action, f" error={outcome.message!r}")
        else:
            self._log_action("refresh failed", action, f" error={outcome.message!r}")


__all__ = ["ALL_DATA_TYPES", "AutoRefresher"]
