"""Measuring webhook → updated metrics: from a delivery's receipt to the snapshot that polled its company.

When a ``read.completed`` is dispatched, the company's current
``last_poll_success`` is remembered as a baseline. The first later snapshot in
which that company was polled successfully again (a different
``last_poll_success``) is the one whose metrics reflect the new data status;
the time between the two is one observation. Comparing poll markers instead of
timestamps keeps this independent of the scheduler's clock (real or fake).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from exporter.collector.snapshot import Snapshot

DEFAULT_MAX_PENDING: Final = 10_000
DEFAULT_GIVE_UP_SECONDS: Final = 3600.0
"""A company whose targeted poll keeps failing stops being waited for after this long (not observed)."""


@dataclass(frozen=True, slots=True)
class _Pending:
    received_at: float
    baseline: datetime | None


class LatencyTracker:
    """Companies waiting for a fresh poll since a webhook, and how long they have waited (thread-safe)."""

    def __init__(
        self, *, max_pending: int = DEFAULT_MAX_PENDING, give_up_after: float = DEFAULT_GIVE_UP_SECONDS
    ) -> None:
        """Track at most ``max_pending`` companies, each for at most ``give_up_after`` seconds."""
        self._max_pending = max_pending
        self._give_up_after = give_up_after
        self._pending: dict[str, _Pending] = {}
        self._lock = threading.Lock()

    def expect(self, company_id: str, received_at: float, current: Snapshot) -> None:
        """Wait for ``company_id`` to be polled again after ``current`` (the earliest receipt wins)."""
        company = current.companies.get(company_id)
        baseline = company.last_poll_success if company is not None else None
        with self._lock:
            if company_id in self._pending:
                return
            if len(self._pending) >= self._max_pending:
                return
            self._pending[company_id] = _Pending(received_at, baseline)

    def resolve(self, snapshot: Snapshot, now: float) -> list[float]:
        """Latencies (seconds) of the companies ``snapshot`` shows freshly polled; they stop being tracked."""
        observed: list[float] = []
        with self._lock:
            for company_id, pending in list(self._pending.items()):
                company = snapshot.companies.get(company_id)
                polled = company.last_poll_success if company is not None else None
                if polled is not None and polled != pending.baseline:
                    observed.append(max(0.0, now - pending.received_at))
                    del self._pending[company_id]
                elif now - pending.received_at > self._give_up_after:
                    del self._pending[company_id]
        return observed

    def __len__(self) -> int:
        """How many companies are still waited for."""
        with self._lock:
            return len(self._pending)
