"""A bounded, expiring set of webhook ids already accepted, so a redelivery is processed once.

Codat delivers at least once and keeps the ``webhook-id`` the same across
retries, which it spreads over about 28 hours. Ids are therefore remembered for
a little longer than that by default, and the set never holds more than
``max_entries`` ids (the oldest go first), so a flood of deliveries cannot grow
memory without bound.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Final

DEFAULT_TTL_SECONDS: Final = 30 * 3600.0
DEFAULT_MAX_ENTRIES: Final = 100_000


class SeenIds:
    """Thread-safe record of recently accepted ids; time is passed in, never read."""

    def __init__(self, *, ttl: float = DEFAULT_TTL_SECONDS, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        """Remember ids for ``ttl`` seconds, at most ``max_entries`` of them."""
        if ttl <= 0 or max_entries <= 0:
            raise ValueError("ttl and max_entries must be positive")
        self._ttl = ttl
        self._max_entries = max_entries
        self._seen: OrderedDict[str, float] = OrderedDict()  # id → when first accepted, oldest first
        self._lock = threading.Lock()

    def add(self, message_id: str, now: float) -> bool:
        """Record ``message_id``; True if it is new, False if it was already seen within the TTL."""
        with self._lock:
            self._expire(now)
            if message_id in self._seen:
                return False
            self._seen[message_id] = now
            while len(self._seen) > self._max_entries:
                self._seen.popitem(last=False)
            return True

    def forget(self, message_id: str) -> None:
        """Drop ``message_id`` (its processing could not be started, so a retry must be accepted)."""
        with self._lock:
            self._seen.pop(message_id, None)

    def __len__(self) -> int:
        """How many ids are remembered right now (expired ones may still count until the next add)."""
        with self._lock:
            return len(self._seen)

    def _expire(self, now: float) -> None:
        cutoff = now - self._ttl
        while self._seen:
            oldest_id, accepted_at = next(iter(self._seen.items()))
            # A clock that stepped backwards leaves entries in place rather than expiring everything.
            if accepted_at > cutoff:
                break
            del self._seen[oldest_id]
