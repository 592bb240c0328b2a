"""The exporter's request budget: its share of Codat's daily quota, paced through the day.

Codat allows a client 1,000 × (1 + active companies) requests a day, shared with
the customer's own application. The exporter keeps to ``daily_quota_share`` of
the last ``X-Rate-Limit-Limit`` it saw, and paces that allowance with a token
bucket that holds at most an hour's worth: a burst of work (start-up, a wave of
syncs) can spend ahead a little, but never the whole day's quota at once.

``BudgetKeeper`` bootstraps that bucket from the quota Codat reports, and
``RateLimitPause`` stops all requests after a 429 for as long as Codat asked.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from exporter.codat.ratelimit import refill

DEFAULT_QUOTA_LIMIT: Final = 1000
"""Codat's smallest daily quota (no active company): assumed until a response says otherwise."""

SECONDS_PER_DAY: Final = 86400.0
BURST_SECONDS: Final = 3600.0
"""The bucket holds this many seconds' worth of the daily budget."""
MIN_BURST: Final = 10.0
"""…but never fewer requests than this, so a tiny quota can still finish a company poll."""


def daily_budget(quota_limit: int | None, share: float, total_shards: int = 1) -> float:
    """Requests a day this shard may spend: its part of ``share`` × the quota.

    Every shard reads the same API key's quota, so the share is split evenly
    between shards: N replicas together never spend more than one would.
    A conservative default quota is assumed until Codat has sent its limit.
    """
    limit = quota_limit if quota_limit is not None and quota_limit > 0 else DEFAULT_QUOTA_LIMIT
    return share * limit / max(1, total_shards)


@dataclass(slots=True)
class RequestBudget:
    """A token bucket refilled at ``per_day`` requests a day; time is passed in, never read."""

    per_day: float
    tokens: float
    updated: datetime

    @classmethod
    def full(cls, per_day: float, now: datetime) -> RequestBudget:
        """A bucket that starts full (one burst's worth)."""
        return cls(per_day, capacity(per_day), now)

    def refill(self, now: datetime) -> None:
        """Add the tokens earned since the last update (a clock going backwards earns nothing)."""
        elapsed = (now - self.updated).total_seconds()
        if elapsed > 0:
            self.tokens = refill(self.tokens, elapsed, self.per_day / SECONDS_PER_DAY, capacity(self.per_day))
            self.updated = now

    def available(self, now: datetime) -> float:
        """Requests that may be spent right now."""
        self.refill(now)
        return max(0.0, self.tokens)

    def spend(self, requests: float) -> None:
        """Take ``requests`` out of the bucket; it may go negative (work that had to happen)."""
        self.tokens -= requests

    def resize(self, per_day: float, now: datetime) -> None:
        """Change the daily budget (a new ``X-Rate-Limit-Limit``), keeping the tokens earned so far."""
        self.refill(now)
        self.per_day = per_day
        self.tokens = min(self.tokens, capacity(per_day))


def capacity(per_day: float) -> float:
    """The most requests the bucket holds for a daily budget of ``per_day``."""
    return max(MIN_BURST, per_day * BURST_SECONDS / SECONDS_PER_DAY)


MAX_PAUSE: Final = timedelta(days=1)
"""The longest a rate-limit pause may last: Codat's quota resets daily."""


class BudgetKeeper:
    """The exporter's ``RequestBudget``, bootstrapped from the quota Codat reports.

    Until Codat has sent ``X-Rate-Limit-Limit`` the budget assumes the smallest quota. The first
    real limit replaces that guess with a full bucket: otherwise start-up would crawl at the
    guessed (smallest) quota's pace. Later limits resize the bucket. Thread-safe.
    """

    def __init__(
        self,
        quota_limit: Callable[[], int | None],
        share: float,
        total_shards: int,
        on_resize: Callable[[float], None] = lambda _per_day: None,
    ) -> None:
        """``quota_limit()`` gives the last ``X-Rate-Limit-Limit`` seen (None before any)."""
        self._quota_limit = quota_limit
        self._share = share
        self._total_shards = total_shards
        self._on_resize = on_resize
        self._lock = threading.Lock()
        self._budget: RequestBudget | None = None
        self._known = False

    @property
    def per_day(self) -> float | None:
        """Requests a day this exporter allows itself (None before the first cycle)."""
        budget = self._budget
        return budget.per_day if budget is not None else None

    def at(self, now: datetime) -> RequestBudget:
        """The budget as of ``now``, following the quota Codat last reported."""
        limit = self._quota_limit()
        per_day = daily_budget(limit, self._share, self._total_shards)
        known = limit is not None
        with self._lock:
            budget = self._budget
            if budget is None or (known and not self._known):
                spent_before = 0.0 if budget is None else capacity(budget.per_day) - budget.tokens
                budget = RequestBudget.full(per_day, now)
                budget.spend(max(0.0, spent_before))
                self._budget = budget
                self._known = known
            elif per_day != budget.per_day:
                budget.resize(per_day, now)
            else:
                return budget
        self._on_resize(per_day)
        return budget

    def available(self, now: datetime) -> float:
        """Requests that may be spent right now."""
        return self.at(now).available(now)

    def spend(self, requests: float, now: datetime) -> None:
        """Record ``requests`` made (by polls, listings or refreshes)."""
        if requests:
            budget = self.at(now)
            with self._lock:
                budget.spend(requests)


class RateLimitPause:
    """When polling may resume after a 429 or a rate-limit webhook; thread-safe.

    A pause runs from the moment the rate limit was reported and only ever grows: two 429s
    answered at once keep the later end. It never lasts longer than ``MAX_PAUSE``.
    """

    def __init__(self) -> None:
        """Not paused."""
        self._lock = threading.Lock()
        self._until: datetime | None = None

    @property
    def until(self) -> datetime | None:
        """When polling resumes, if paused."""
        return self._until

    def pause(self, until: datetime, now: datetime) -> datetime:
        """Pause until ``until`` (cut to a day after ``now``); returns the pause's end."""
        until = min(until, now + MAX_PAUSE)
        with self._lock:
            if self._until is None or until > self._until:
                self._until = until
            return self._until

    def resume(self) -> None:
        """End the pause now (the quota was reset)."""
        with self._lock:
            self._until = None

    def active(self, now: datetime) -> bool:
        """True while paused at ``now`` (an expired pause is forgotten)."""
        with self._lock:
            if self._until is None:
                return False
            if now >= self._until:
                self._until = None
                return False
            return True
