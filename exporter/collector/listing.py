"""The change detector: one walk of ``GET /companies``, sorted into what this shard watches.

A listing carries ``lastSync`` per company and per connection, names, tags and connection
statuses, so it is both the watch list and the cheapest way to see that something moved.
A record that does not parse fails that company only (``unreadable``); the rest go on.

With an explicit ``companies.ids`` list the scheduler still lists companies for change detection:
one ``GET /companies`` page covers up to 5,000 companies, so it costs less than reading a single
company's ``dataStatus`` every interval. Listed ids that Codat does not return are reported down.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from exporter.codat.models import Company, Page, RecordFailure
from exporter.collector.planner import change_detection_interval
from exporter.collector.poll import describe_error, error_reason
from exporter.collector.settings import CollectorSettings
from exporter.collector.sharding import owns
from exporter.exposition.selfmetrics import LISTING_FAILURE_REASONS, Telemetry

if TYPE_CHECKING:
    from exporter.codat.client import CodatClient

log = logging.getLogger("exporter.collector.scheduler")


@dataclass(frozen=True, slots=True)
class Listing:
    """What one listing says about this shard's companies."""

    selected: Mapping[str, Company] = field(default_factory=dict)
    """Companies this shard watches, by id."""
    not_watched: frozenset[str] = frozenset()
    """Ids listed but filtered out or owned by another shard."""
    missing: tuple[str, ...] = ()
    """Configured ids (``companies.ids``) of this shard that Codat did not list."""
    unreadable: Mapping[str, str] = field(default_factory=dict)
    """Ids of this shard whose listing record did not parse → why."""
    pages: int = 0
    """Requests the listing cost."""

    @property
    def size(self) -> int:
        """Companies of this shard in the listing (readable or not)."""
        return len(self.selected) + len(self.unreadable)


def list_companies(client: CodatClient, settings: CollectorSettings) -> Listing:
    """Walk every page of ``GET /companies`` and sort the companies for this shard (raises on failure)."""
    pages = 0
    failures: list[RecordFailure] = []

    def count_page(page: Page[Company]) -> None:
        nonlocal pages
        pages += 1
        failures.extend(page.failures)

    # The client's paging walk also stops a server that keeps announcing a next page.
    found = list(
        client.iter_companies(
            query=settings.query,
            tags=settings.tags,
            page_size=settings.companies_page_size,
            on_page=count_page,
        )
    )
    return sort_listing(found, failures, pages, settings)


def sort_listing(
    found: list[Company], failures: list[RecordFailure], pages: int, settings: CollectorSettings
) -> Listing:
    """Split what a listing returned into watched, not watched, missing and unreadable (pure)."""

    def mine(company_id: str) -> bool:
        return owns(company_id, settings.shard, settings.total_shards)

    selected = {c.id: c for c in found if settings.company_filter(c) and mine(c.id)}
    unreadable: dict[str, str] = {}
    for failure in failures:
        cid = failure.id
        # Without a readable name only the id-based selection can apply.
        if (
            cid is not None
            and cid not in selected
            and mine(cid)
            and settings.company_filter(Company(id=cid, name=""))
        ):
            unreadable[cid] = failure.reason
    listed_ids = {c.id for c in found} | {f.id for f in failures if f.id is not None}
    missing = tuple(cid for cid in settings.explicit_ids if cid not in listed_ids and mine(cid))
    not_watched = frozenset(c.id for c in found if c.id not in selected)
    return Listing(selected, not_watched, missing, unreadable, pages)


def listing_failure_reason(exc: BaseException) -> str:
    """The ``reason`` label of a failed listing: one of ``LISTING_FAILURE_REASONS``."""
    reason = error_reason(exc)
    return reason if reason in LISTING_FAILURE_REASONS else "other"


@dataclass(slots=True)
class ListingCadence:
    """When the next listing is due: every poll interval, stretched when the daily budget is short."""

    last: datetime | None = None
    """When the last listing succeeded; None forces one now (start-up, or a company not listed yet)."""
    pages: int = 1

    def due(self, now: datetime, poll_interval: float, per_day: float | None) -> bool:
        """Whether a listing is due at ``now``."""
        if self.last is None:
            return True
        interval = change_detection_interval(poll_interval, per_day or 0.0, self.pages)
        # A little slack so a loop woken a hair early still runs it.
        return (now - self.last).total_seconds() >= interval * 0.99

    def listed(self, now: datetime, pages: int) -> None:
        """A listing of ``pages`` pages succeeded at ``now``."""
        self.last = now
        self.pages = max(1, pages)


def record_listing_failure(telemetry: Telemetry, exc: Exception) -> str:
    """Count and log a failed listing (not a 429); its one-line description."""
    message = describe_error(exc)
    telemetry.count_poll_error("companies_" + error_reason(exc))
    telemetry.set_listing_failed(listing_failure_reason(exc))
    log.error("listing companies failed: %s", message)
    return message
