"""The change detector: one walk of ``GET /companies``, sorted into what this shard watches.

A listing carries ``lastSync`` per company and per connection, names, tags and connection
statuses, so it is both the watch list and the cheapest way to see that something moved.
A record that does not parse fails that company only (``unreadable``); the rest go on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from exporter.codat.models import Company, Page, RecordFailure
from exporter.collector.poll import error_reason
from exporter.collector.settings import CollectorSettings
from exporter.collector.sharding import owns
from exporter.exposition.selfmetrics import LISTING_FAILURE_REASONS


class ListingClient(Protocol):
    """The Codat client call a listing makes."""

    def iter_companies(
        self,
        *,
        query: str | None = None,
        tags: str | None = None,
        page_size: int = 1000,
        on_page: Callable[[Page[Company]], None] | None = None,
    ) -> Iterable[Company]:
        """Every company, page after page."""
        ...


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


def list_companies(client: ListingClient, settings: CollectorSettings) -> Listing:
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
