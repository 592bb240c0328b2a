"""Codat-style rate limiting: a daily quota resetting at 00:00 UTC and a per-minute limit."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta


@dataclass(frozen=True, slots=True)
class RateDecision:
    """Whether a request may proceed, and the header values to send either way."""

    allowed: bool
    limit: int
    remaining: int
    reset: datetime
    retry_after: int | None = None
    quota_exhausted: bool = False  # the daily quota is used up (by this request or before it)


def next_midnight(now: datetime) -> datetime:
    """00:00 UTC after ``now``."""
    day = now.astimezone(UTC).date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


class RateLimiter:
    """Counts requests per UTC day and per minute of the simulator clock (caller holds the lock)."""

    def __init__(self, daily_quota: int, per_minute: int) -> None:
        """Set both limits."""
        self.daily_quota = daily_quota
        self.per_minute = per_minute
        self._day: date | None = None
        self._used_today = 0
        self._minute: datetime | None = None
        self._used_this_minute = 0

    def configure(self, *, daily_quota: int | None = None, per_minute: int | None = None) -> None:
        """Change the limits (the counts so far are kept)."""
        if daily_quota is not None:
            self.daily_quota = daily_quota
        if per_minute is not None:
            self.per_minute = per_minute

    def _roll(self, now: datetime) -> None:
        today = now.astimezone(UTC).date()
        if today != self._day:
            self._day = today
            self._used_today = 0
        minute = now.replace(second=0, microsecond=0)
        if minute != self._minute:
            self._minute = minute
            self._used_this_minute = 0

    def spend(self, now: datetime, fraction: float) -> None:
        """Count ``fraction`` of today's quota as used (at least what is used already)."""
        self._roll(now)
        self._used_today = max(self._used_today, math.ceil(fraction * self.daily_quota))

    def refill(self, now: datetime) -> None:
        """Forget today's use, as the daily reset does."""
        self._roll(now)
        self._used_today = 0
        self._used_this_minute = 0

    @property
    def used_today(self) -> int:
        """Requests counted against today's quota."""
        return self._used_today

    def peek(self, now: datetime) -> RateDecision:
        """The current header values without counting a request."""
        self._roll(now)
        remaining = max(self.daily_quota - self._used_today, 0)
        return RateDecision(remaining > 0, self.daily_quota, remaining, next_midnight(now))

    def take(self, now: datetime) -> RateDecision:
        """Count one request if the limits allow it; otherwise say how long to wait."""
        self._roll(now)
        reset = next_midnight(now)
        if self._used_today >= self.daily_quota:
            wait = math.ceil((reset - now).total_seconds())
            return RateDecision(
                False, self.daily_quota, 0, reset, retry_after=max(wait, 1), quota_exhausted=True
            )
        if self._used_this_minute >= self.per_minute:
            assert self._minute is not None
            wait = math.ceil((self._minute + timedelta(minutes=1) - now).total_seconds())
            remaining = self.daily_quota - self._used_today
            return RateDecision(False, self.daily_quota, remaining, reset, retry_after=max(wait, 1))
        self._used_today += 1
        self._used_this_minute += 1
        remaining = self.daily_quota - self._used_today
        return RateDecision(True, self.daily_quota, remaining, reset, quota_exhausted=remaining == 0)
