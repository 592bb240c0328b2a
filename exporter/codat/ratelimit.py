"""Client-side pacing of Codat requests: a token bucket (requests per minute) shared by all threads.

Codat blocks an IP that sends more than 1,000 requests a minute "without
warning", so the client paces itself well below that (300/min by default)
instead of waiting to be told. The bucket takes ``clock`` and ``sleep`` so
tests drive it with a fake clock and never really wait.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


def refill(tokens: float, elapsed: float, rate_per_second: float, capacity: float) -> float:
    """Tokens in a bucket after ``elapsed`` seconds of refilling, capped at ``capacity``."""
    return min(capacity, tokens + max(0.0, elapsed) * rate_per_second)


class TokenBucket:
    """A thread-safe token bucket: ``acquire()`` returns once the caller may send one request.

    Callers reserve their token under the lock (the balance may go negative,
    which queues later callers behind them in order) and wait outside it, so
    one waiting thread never blocks the bookkeeping of the others.
    """

    def __init__(
        self,
        requests_per_minute: float,
        *,
        burst: float | None = None,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
    ) -> None:
        if requests_per_minute <= 0:
            raise ValueError("requests_per_minute must be positive")
        self.rate_per_second = requests_per_minute / 60.0
        # Two seconds' worth of requests may go out at once; more would be a burst Codat might notice.
        self.capacity = burst if burst is not None else max(1.0, 2 * self.rate_per_second)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = self.capacity
        self._updated = clock()

    def reserve(self) -> float:
        """Take one token and return how many seconds the caller must wait before using it."""
        with self._lock:
            now = self._clock()
            self._tokens = refill(self._tokens, now - self._updated, self.rate_per_second, self.capacity)
            self._updated = now
            self._tokens -= 1.0
            if self._tokens >= 0:
                return 0.0
            return -self._tokens / self.rate_per_second

    def acquire(self) -> float:
        """Wait (with the injected ``sleep``) until a request may go out; return the seconds waited."""
        wait = self.reserve()
        if wait > 0:
            self._sleep(wait)
        return wait


class ConcurrencyLimit:
    """At most ``limit`` requests in flight at once across all threads sharing the client."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self._semaphore = threading.BoundedSemaphore(limit)
        self._lock = threading.Lock()
        self._in_flight = 0
        self._waiting = 0

    @property
    def in_flight(self) -> int:
        """Requests holding a slot right now."""
        with self._lock:
            return self._in_flight

    @property
    def waiting(self) -> int:
        """Callers blocked waiting for a slot right now."""
        with self._lock:
            return self._waiting

    def try_acquire(self) -> bool:
        """Take a slot if one is free, without waiting."""
        if not self._semaphore.acquire(blocking=False):
            return False
        with self._lock:
            self._in_flight += 1
        return True

    def acquire(self) -> None:
        """Take a slot, waiting for one if all are in use."""
        if self.try_acquire():
            return
        with self._lock:
            self._waiting += 1
        acquired = False
        try:
            acquired = self._semaphore.acquire()
        finally:
            with self._lock:
                self._waiting -= 1
                if acquired:
                    self._in_flight += 1

    def release(self) -> None:
        """Give a slot back."""
        with self._lock:
            self._in_flight -= 1
        self._semaphore.release()

    def __enter__(self) -> ConcurrencyLimit:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()
