"""Clocks for the simulator: a fake one tests move by hand, and the real one for demos."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """What the simulator asks of a clock: the current simulated time (aware, UTC)."""

    def now(self) -> datetime:
        """The current simulated time."""
        ...


class FakeClock:
    """A clock that only moves when told to; listeners hear about every move.

    The simulator subscribes so that syncs due before the new time complete (and
    their webhooks go out) as soon as a test advances the clock.
    """

    def __init__(self, start: datetime | None = None) -> None:
        """Start at ``start`` (default 2026-01-05 09:00 UTC); naive datetimes are taken as UTC."""
        start = start or datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()
        self._listeners: list[Callable[[datetime], None]] = []

    def now(self) -> datetime:
        """The current fake time."""
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> datetime:
        """Move forward by ``seconds`` (must not be negative) and notify listeners; returns the new time."""
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        with self._lock:
            self._now = self._now + timedelta(seconds=seconds)
            now = self._now
        for listener in list(self._listeners):
            listener(now)
        return now

    def set(self, when: datetime) -> datetime:
        """Jump forward to ``when`` (not before the current time)."""
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return self.advance((when - self.now()).total_seconds())

    def subscribe(self, listener: Callable[[datetime], None]) -> None:
        """Call ``listener(now)`` after every move of the clock."""
        self._listeners.append(listener)

    def unsubscribe(self, listener: Callable[[datetime], None]) -> None:
        """Stop calling ``listener``."""
        if listener in self._listeners:
            self._listeners.remove(listener)


class SystemClock:
    """Real time, optionally sped up: ``speed=60`` makes one real second a simulated minute."""

    def __init__(self, speed: float = 1.0) -> None:
        """Start at the current wall-clock time."""
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._origin = datetime.now(UTC)
        self._origin_monotonic = time.monotonic()

    def now(self) -> datetime:
        """Wall-clock time at speed 1; at other speeds, time since start scaled by ``speed``."""
        if self.speed == 1.0:
            return datetime.now(UTC)
        elapsed = (time.monotonic() - self._origin_monotonic) * self.speed
        return self._origin + timedelta(seconds=elapsed)
