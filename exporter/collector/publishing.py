"""From company states to published snapshots: building them cheaply and handing them to listeners.

The scheduler's loop thread is the only publisher. Listeners (the exposition cache, readiness,
webhooks, auto-refresh) are called in the order they registered. A listener may annotate the
snapshot it is handed (auto-refresh publishes its attempts this way): the listeners after it then
receive the annotated snapshot, so one publication is rendered once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from exporter.collector.snapshot import CompanySnapshot, Snapshot
from exporter.collector.state import CompanyState

log = logging.getLogger(__name__)

SnapshotListener = Callable[[Snapshot], None]
RefreshAttempts = Mapping[tuple[str, str], datetime]


@dataclass(slots=True)
class _Made:
    state: CompanyState
    attempts: dict[str, datetime]
    snapshot: CompanySnapshot


class SnapshotBuilder:
    """Builds snapshots, reusing a company's ``CompanySnapshot`` object while nothing of it changed.

    The exposition re-renders only companies whose snapshot object is new (or unequal): handing it
    the same object for an unchanged company spares both the copy here and a deep comparison there
    for every company on every publish. Used by the publishing thread only.
    """

    def __init__(self) -> None:
        """Start with nothing to reuse."""
        self._made: dict[str, _Made] = {}

    def build(
        self,
        states: Mapping[str, CompanyState],
        now: datetime,
        ready: bool,
        refresh_attempts: RefreshAttempts | None = None,
        *,
        cycle: int = 0,
    ) -> Snapshot:
        """A new immutable snapshot of every company polled at least once."""
        by_company: dict[str, dict[str, datetime]] = {}
        for (company_id, data_type), when in (refresh_attempts or {}).items():
            by_company.setdefault(company_id, {})[data_type] = when
        made: dict[str, _Made] = {}
        for company_id, state in sorted(states.items()):
            if not state.attempted:
                continue
            attempts = by_company.get(company_id, {})
            kept = self._made.get(company_id)
            if kept is not None and kept.state is state and kept.attempts == attempts:
                made[company_id] = kept
            else:
                made[company_id] = _Made(state, attempts, state.snapshot(attempts))
        self._made = made
        companies = {company_id: entry.snapshot for company_id, entry in made.items()}
        return Snapshot(companies=companies, generated_at=now, ready=ready, cycle=cycle)


@dataclass(slots=True)
class _Inputs:
    states: Mapping[str, CompanyState] = field(default_factory=dict)
    now: datetime | None = None
    ready: bool = False
    cycle: int = 0


class SnapshotPublisher:
    """Holds the current snapshot and tells listeners about each new one."""

    def __init__(self) -> None:
        """Start with the empty start-up snapshot."""
        self._lock = threading.Lock()
        self._snapshot = Snapshot()
        self._builder = SnapshotBuilder()
        self._listeners: list[SnapshotListener] = []
        self._inputs = _Inputs()
        self._attempts: RefreshAttempts = {}
        self._publishing = False

    @property
    def snapshot(self) -> Snapshot:
        """The current snapshot (replaced whole, never mutated)."""
        return self._snapshot

    def subscribe(self, listener: SnapshotListener) -> None:
        """Call ``listener(snapshot)`` for each new snapshot (and once now with the current one)."""
        with self._lock:
            self._listeners.append(listener)
        listener(self._snapshot)

    def publish(self, states: Mapping[str, CompanyState], now: datetime, ready: bool, cycle: int) -> Snapshot:
        """Build a snapshot of ``states`` and hand it to every listener in turn."""
        self._inputs = _Inputs(states, now, ready, cycle)
        self._snapshot = self._builder.build(states, now, ready, self._attempts, cycle=cycle)
        with self._lock:
            listeners = list(self._listeners)
        self._publishing = True
        try:
            for listener in listeners:
                try:
                    # Read afresh for each: an earlier listener may have annotated the snapshot.
                    listener(self._snapshot)
                except Exception:
                    log.exception("snapshot listener failed")
        finally:
            self._publishing = False
        return self._snapshot

    def set_refresh_attempts(self, attempts: RefreshAttempts) -> None:
        """Show when each (company, data type) was last refreshed, from now on.

        Called by auto-refresh while it handles a snapshot: the listeners after it receive the
        annotated snapshot. Outside a publication the change waits for the next one.
        """
        self._attempts = dict(attempts)
        inputs = self._inputs
        if self._publishing and inputs.now is not None:
            self._snapshot = self._builder.build(
                inputs.states, inputs.now, inputs.ready, self._attempts, cycle=inputs.cycle
            )


PUBLISH_COST_FACTOR = 5.0
"""Publications within a cycle are spaced at least this many times their own duration apart."""


@dataclass(slots=True)
class PublishPacer:
    """When the next publication within a cycle may happen (monotonic seconds).

    Rendering a big exposition is not free: publications within a cycle take at most about a
    fifth of the time, however large the fleet, and at least ``interval`` apart.
    """

    next_at: float = 0.0

    def hold(self, now: float, interval: float) -> None:
        """Publish no sooner than ``interval`` from ``now`` (a cycle reads a moment first)."""
        self.next_at = max(self.next_at, now + interval)

    def published(self, cost: float, now: float, interval: float) -> None:
        """A publication that took ``cost`` seconds ended at ``now``."""
        self.next_at = now + max(interval, PUBLISH_COST_FACTOR * cost)
