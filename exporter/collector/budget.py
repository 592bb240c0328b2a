"""The exporter's request budget: its share of Codat's daily quota, paced through the day.

Codat allows a client 1,000 × (1 + active companies) requests a day, shared with
the customer's own application. The exporter keeps to ``daily_quota_share`` of
the last ``X-Rate-Limit-Limit`` it saw, and paces that allowance with a token
bucket that holds at most an hour's worth: a burst of work (start-up, a wave of
syncs) can spend ahead a little, but never the whole day's quota at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
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
