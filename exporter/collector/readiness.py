"""Readiness that tells the truth: ready once ``/metrics`` serves a snapshot covering every company.

Companies appear on ``/metrics`` as the first sweep reads them; the exporter is ready when the
sweep is complete and the snapshot that says so has been rendered. Registered as a snapshot
listener after the exposition cache, it sees a snapshot only once the cache serves it.
"""

from __future__ import annotations

from exporter.collector.snapshot import Snapshot


class ServedReadiness:
    """The ``ready`` flag of the last snapshot the exposition serves."""

    def __init__(self) -> None:
        """Not ready until a complete snapshot is served."""
        self._ready = False

    def on_snapshot(self, snapshot: Snapshot) -> None:
        """A snapshot is now served (call after the exposition cache's own listener)."""
        self._ready = snapshot.ready

    def ready(self) -> bool:
        """True while the served snapshot covers every company of the shard."""
        return self._ready
