"""The table of this shard's companies: what the last listing said, each company's state, and the
polls asked for or running. Thread-safe: poll threads apply results while the loop plans."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final

from exporter.codat.models import Company
from exporter.collector.listing import Listing
from exporter.collector.planner import PlanInputs, last_sync_moved
from exporter.collector.poll import PollResult, sync_settings_due
from exporter.collector.progress import ChangeWatch
from exporter.collector.settings import CollectorSettings
from exporter.collector.state import CompanyState, new_company_state, with_failure

RELIST_REASON: Final = "webhook_relist"
"""A poll request that also asks for a new listing (the ``connection.*`` and ``company.*`` webhooks:
connection status and a company's existence come from the listing). The company's sync settings
are read again at its next poll too: a new or re-linked connection can change them."""

MISSING_ERROR = "not listed by GET /companies (deleted, or not visible to this API key)"


@dataclass(frozen=True, slots=True)
class Marked:
    """A company reported down without a poll (Codat does not list it, or lists it unreadably)."""

    company_id: str
    error: str
    reason: str
    """The ``reason`` of the poll-errors counter."""


@dataclass(frozen=True, slots=True)
class PendingPolls:
    """The targeted polls to run now, taken from the table in one step."""

    focus: Mapping[str, frozenset[str] | None]
    """Listed company → the data types its requests named (None: the whole company)."""
    relist: bool
    """True when a new listing should come first."""


@dataclass(frozen=True, slots=True)
class _Request:
    reason: str
    data_types: frozenset[str] | None


def _merge(before: _Request | None, reason: str, data_types: frozenset[str] | None) -> _Request:
    """Several requests for one company before its poll: a re-list is kept, named types add up,
    and a request for the whole company wins over named types."""
    if before is None:
        return _Request(reason, data_types)
    kept = RELIST_REASON if RELIST_REASON in (before.reason, reason) else reason
    if before.data_types is None or data_types is None:
        return _Request(kept, None)
    return _Request(kept, before.data_types | data_types)


@dataclass(frozen=True, slots=True)
class TableView:
    """A consistent copy of the table for one publication."""

    states: Mapping[str, CompanyState]
    watched: int
    """Companies of the last listing (readable or not)."""
    polled: int
    """Of those, how many have been polled at least once."""
    ready: bool


class CompanyTable:
    """This shard's companies and their states; every method is thread-safe."""

    def __init__(self, seen_operations_limit: int, explicit_ids: Iterable[str] = ()) -> None:
        """An empty table; ``explicit_ids`` are kept (reported down) when Codat stops listing them."""
        self._limit = seen_operations_limit
        self._explicit = frozenset(explicit_ids)
        self._lock = threading.Lock()
        self._states: dict[str, CompanyState] = {}
        self._listed: dict[str, Company] = {}
        self._unreadable: frozenset[str] = frozenset()
        self._not_watched: frozenset[str] = frozenset()
        """Ids the last listing returned that are filtered out or another shard's."""
        self._listed_once = False
        self._in_flight: set[str] = set()
        self._pending: dict[str, _Request] = {}
        self._reread_settings: set[str] = set()
        """Companies whose sync settings are read again at their next poll (a re-list asked)."""
        self._dirty = False

    @property
    def dirty(self) -> bool:
        """True when a poll finished after its cycle stopped waiting (not published yet)."""
        return self._dirty

    @property
    def has_pending(self) -> bool:
        """True when a targeted poll was asked for."""
        return bool(self._pending)

    def is_listed(self, company_id: str) -> bool:
        """True when the last listing holds ``company_id`` (readable)."""
        return company_id in self._listed

    def apply_listing(self, listing: Listing, now: datetime, changes: ChangeWatch) -> list[Marked]:
        """Take in a new listing; note moved ``lastSync`` values; return the companies marked down."""
        marked: list[Marked] = []
        with self._lock:
            self._listed = dict(listing.selected)
            self._not_watched = listing.not_watched
            self._unreadable = frozenset(listing.unreadable)
            self._listed_once = True
            for cid, company in listing.selected.items():
                state = self._states.get(cid)
                if state is None:
                    continue
                if state.attempted and last_sync_moved(state.poll, company):
                    changes.seen(cid, now)
                # Names, tags and connection status come from the listing: keep them current
                # even for companies whose data status is not read this cycle.
                if state.company != company:
                    self._states[cid] = replace(state, company=company)
            changes.forget_all_but(self._listed.keys() | self._unreadable)
            for cid in listing.missing:
                marked += self._mark(Marked(cid, MISSING_ERROR, "not_found"), now)
            for cid, why in listing.unreadable.items():
                error = f"unreadable: its GET /companies record did not parse: {why}"
                marked += self._mark(Marked(cid, error, "malformed_response"), now)
        return marked

    def _mark(self, marked: Marked, now: datetime) -> list[Marked]:
        previous = self._states.get(marked.company_id)
        if previous is not None and previous.last_error == marked.error:
            return []
        state = previous or new_company_state(Company(id=marked.company_id, name=""), self._limit)
        self._states[marked.company_id] = with_failure(state, marked.error, now)
        return [marked]

    def plan_inputs(self, now: datetime, settings: CollectorSettings) -> PlanInputs:
        """What the planner needs: poll states and listed companies, without the polls running now,
        and the companies whose sync settings are due at ``now``."""
        with self._lock:
            busy = self._in_flight
            states = {cid: s.poll for cid, s in self._states.items() if cid not in busy}
            listed = [c for cid, c in self._listed.items() if cid not in busy]
            due = frozenset(
                c.id
                for c in listed
                if (state := self._states.get(c.id)) is not None
                and state.poll.last_status_poll is not None
                and state.poll.failures == 0
                and (c.id in self._reread_settings or sync_settings_due(state, now, settings))
            )
            queued = len(busy)
        return PlanInputs(states, listed, due, queued)

    def request(self, company_id: str, reason: str, data_types: Iterable[str] | None = None) -> bool:
        """Ask for a targeted poll (of ``data_types`` only, when given); True when the company is
        listed (a change is then waiting). ``RELIST_REASON`` also re-reads its sync settings."""
        named = frozenset(data_types) if data_types is not None else None
        with self._lock:
            self._pending[company_id] = _merge(self._pending.get(company_id), reason, named)
            if reason == RELIST_REASON:
                self._reread_settings.add(company_id)
            return company_id in self._listed

    def reread_settings(self, company_id: str) -> None:
        """Read the company's sync settings again at its next poll."""
        with self._lock:
            self._reread_settings.add(company_id)

    def take_pending(self) -> PendingPolls:
        """The listed companies asked for (not running now), and whether to list again first.

        A company not listed yet (just created, or just linked) calls for a new listing; one
        listed but filtered out does not, or its webhooks would re-list every time.
        """
        with self._lock:
            pending = {cid: r for cid, r in self._pending.items() if cid not in self._in_flight}
            # A connection.* / company.* webhook changed what only the listing shows.
            asked_to_relist = any(r.reason == RELIST_REASON for r in pending.values())
            for cid in pending:
                del self._pending[cid]
            focus = {cid: pending[cid].data_types for cid in self._listed if cid in pending}
            relist = asked_to_relist or any(
                cid not in self._listed and cid not in self._not_watched for cid in pending
            )
        return PendingPolls(focus, relist)

    def drop(self, removed: Iterable[str]) -> list[str]:
        """Forget companies no longer listed (explicit or unreadable ones stay, reported down)."""
        dropped: list[str] = []
        with self._lock:
            for cid in removed:
                if (cid in self._explicit or cid in self._unreadable) and cid in self._states:
                    continue
                if self._states.pop(cid, None) is not None:
                    dropped.append(cid)
        return dropped

    def start(self, company_ids: Iterable[str]) -> None:
        """Mark polls as running (the planner leaves them out until they finish)."""
        with self._lock:
            self._in_flight.update(company_ids)

    def target(self, company_id: str) -> tuple[Company, CompanyState] | None:
        """The listing's company and its current (or new) state, for a poll; None if not listed."""
        with self._lock:
            listed = self._listed.get(company_id)
            state = self._states.get(company_id)
            reread = listed is not None and company_id in self._reread_settings
            if reread:
                self._reread_settings.discard(company_id)
        if listed is None:
            return None
        state = state or new_company_state(listed, self._limit)
        # Never read is what makes the poll read them (``poll.sync_settings_due``).
        return listed, replace(state, sync_settings_read=None) if reread else state

    def finish(self, company_id: str, result: PollResult | None, *, store: bool) -> None:
        """A poll ended: keep its state when ``store`` (not for a rate-limited one)."""
        with self._lock:
            self._in_flight.discard(company_id)
            if result is None or not store:
                return
            if company_id in self._listed or company_id in self._states:
                self._states[company_id] = result.state
            self._dirty = True

    def view(self) -> TableView:
        """A consistent copy for a publication (clears ``dirty``)."""
        with self._lock:
            states = dict(self._states)
            watched = list(self._listed) + list(self._unreadable)
            polled = sum(1 for cid in watched if (s := states.get(cid)) is not None and s.attempted)
            self._dirty = False
            ready = self._listed_once and polled == len(watched)
        return TableView(states, len(watched), polled, ready)
