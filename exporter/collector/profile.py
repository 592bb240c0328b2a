"""The client-wide sync schedule (``GET /profile/syncSettings``), read only when a company needs it.

A company's own sync settings may leave a data type out; Codat then syncs that type on the
client-wide schedule. The exporter reads those settings once some company lacked a type, then
every ``sync_settings_interval``; an account whose companies name every type never spends a
request on them. Thread-safe: pool threads report lacking companies while the loop reads.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import datetime

from exporter.codat.errors import RateLimitedError
from exporter.collector.poll import ProfileSettingsClient, error_reason, sync_settings_due_at
from exporter.collector.settings import CollectorSettings

log = logging.getLogger("exporter.collector.scheduler")


class ClientWideSchedules:
    """The client-wide schedule per data type in seconds, and which companies wait for it."""

    def __init__(self) -> None:
        """Nothing known and nothing wanted yet."""
        self.schedules: Mapping[str, float] = {}
        self._read_at: datetime | None = None
        self._wanted = False
        self._lacking: set[str] = set()
        self._lock = threading.Lock()

    def want(self, company_id: str) -> None:
        """``company_id``'s own settings left a data type out: read the client-wide ones."""
        with self._lock:
            self._wanted = True
            self._lacking.add(company_id)

    def due(self, now: datetime, settings: CollectorSettings) -> bool:
        """Whether a read is wanted and the last one is older than ``sync_settings_interval``."""
        return self._wanted and sync_settings_due_at(self._read_at, now, settings)

    def refresh(self, client: object, now: datetime, reread: Callable[[str], None]) -> int:
        """``read``, then ``reread`` each company that waited for them; the requests spent (0 when
        ``client`` cannot read them). A 429 propagates (``RateLimitedError``)."""
        waited = self.read(client, now)
        for company_id in waited or ():
            reread(company_id)
        return 0 if waited is None else 1

    def read(self, client: object, now: datetime) -> list[str] | None:
        """Read them with one request; the companies to re-read their own settings, or None when
        ``client`` cannot read them (a test's stand-in). A 429 propagates (``RateLimitedError``).

        Another failure keeps the schedules read before and is retried after the interval: a
        company's own settings still apply, and the static thresholds cover the rest.
        """
        if not isinstance(client, ProfileSettingsClient):
            return None
        try:
            self.schedules = client.get_profile_sync_settings().schedules()
        except RateLimitedError:
            raise
        except Exception as exc:
            log.info("client-wide sync settings not read (%s)", error_reason(exc))
        self._read_at = now
        with self._lock:
            taken = list(self._lacking)
            self._lacking.clear()
        return taken
