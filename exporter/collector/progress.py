"""Whether the exporter keeps up: detection lag, sweep progress, and the rate a fleet needs.

``ChangeWatch`` remembers when each change was first seen (a ``lastSync`` that moved in the
listing, or a webhook) until a dataStatus read of that company has run: the age of the oldest
is ``codat_exporter_detection_lag_seconds``. It grows without bound only when the exporter falls
behind, whatever the reason (too low a request rate, a rate-limit pause, a backlog of changes).
"""

from __future__ import annotations

import math
import threading
from datetime import datetime
from typing import Final

SECONDS_PER_DAY: Final = 86400.0
CODAT_PER_IP_LIMIT: Final = 1000
"""Codat's ceiling: requests a minute from one IP address."""
REQUESTS_PER_CHANGE: Final = 2
"""A change costs its dataStatus read and one history page."""


class ChangeWatch:
    """Changes seen but not read yet, by company; thread-safe."""

    def __init__(self) -> None:
        """Nothing waiting."""
        self._lock = threading.Lock()
        self._waiting: dict[str, datetime] = {}

    def seen(self, company_id: str, when: datetime) -> None:
        """A change of ``company_id`` was seen at ``when`` (the earliest unread one is kept)."""
        with self._lock:
            self._waiting.setdefault(company_id, when)

    def read(self, company_id: str) -> None:
        """A dataStatus read of ``company_id`` has run: its changes are no longer waiting."""
        with self._lock:
            self._waiting.pop(company_id, None)

    def forget_all_but(self, company_ids: set[str] | frozenset[str]) -> None:
        """Drop companies no longer watched."""
        with self._lock:
            for cid in [c for c in self._waiting if c not in company_ids]:
                del self._waiting[cid]

    def lag(self, now: datetime) -> float:
        """Seconds the oldest unread change has waited (0 when none is waiting)."""
        with self._lock:
            oldest = min(self._waiting.values(), default=None)
        return 0.0 if oldest is None else max(0.0, (now - oldest).total_seconds())

    @property
    def waiting(self) -> int:
        """Companies with a change waiting to be read."""
        with self._lock:
            return len(self._waiting)


def steady_rate(
    companies: int,
    data_types: int,
    *,
    poll_interval: float,
    full_sweep_interval: float,
    syncs_per_type_per_day: float = 1.0,
    listing_pages: int = 1,
) -> float:
    """Requests a minute a fleet needs to keep up: listings, sweeps, the daily sync-settings
    reads and every change read.

    ``data_types`` is the total over the companies (each synced ``syncs_per_type_per_day``
    times a day: Codat's default schedule is daily, and each data type moves ``lastSync``
    on its own). A rate below this makes the detection lag grow without bound.
    """
    listing = max(1, listing_pages) * 60.0 / poll_interval
    sweeps = companies * 60.0 / full_sweep_interval
    settings = companies * 60.0 / SECONDS_PER_DAY
    changes = data_types * syncs_per_type_per_day * REQUESTS_PER_CHANGE * 60.0 / SECONDS_PER_DAY
    return listing + sweeps + settings + changes


def first_sweep_minutes(companies: int, requests_per_minute: float) -> float:
    """Minutes the start-up sweep takes at ``requests_per_minute`` (one request a company)."""
    return companies / requests_per_minute if requests_per_minute > 0 else math.inf


def rate_advice(needed: float, configured: float) -> str | None:
    """A one-line warning when ``configured`` requests a minute cannot keep up, else None."""
    if configured >= needed:
        return None
    suggestion = math.ceil(needed * 1.2)
    if suggestion > CODAT_PER_IP_LIMIT:
        return (
            f"budget.max_requests_per_minute={configured:g} is too low for this fleet: it needs about "
            f"{needed:.0f} requests a minute, more than Codat allows one IP ({CODAT_PER_IP_LIMIT}/min); "
            "split it into shards on separate IP addresses"
        )
    return (
        f"budget.max_requests_per_minute={configured:g} is too low for this fleet: it needs about "
        f"{needed:.0f} requests a minute; set it to {suggestion} or more (Codat allows "
        f"{CODAT_PER_IP_LIMIT}/min per IP)"
    )
