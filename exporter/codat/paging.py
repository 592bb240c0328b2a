"""Walking every page of a Codat list endpoint, one page at a time, without being led in circles."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from typing import Final, TypeVar

from exporter.codat.errors import PagingError
from exporter.codat.models import Page

T = TypeVar("T")

DEFAULT_MAX_PAGES: Final = 10_000
SLACK_PAGES: Final = 1
MAX_PAGE_SIZE: Final = 5000
"""The largest ``pageSize`` Codat accepts."""
"""Pages allowed past what the first page's ``totalResults`` justifies (records added during the walk)."""


def check_paging(page: int, page_size: int) -> None:
    """Refuse a page number or page size Codat would reject, before any request is sent."""
    if page < 1:
        raise ValueError(f"page must be at least 1, got {page}")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}, got {page_size}")


def justified_pages(total_results: int, page_size: int) -> int:
    """How many pages ``total_results`` records at ``page_size`` per page can fill (at least one)."""
    if page_size < 1:
        return DEFAULT_MAX_PAGES
    return max(1, -(-max(0, total_results) // page_size))


def iterate_pages(
    fetch_page: Callable[[int], Page[T]],
    *,
    first_page: int = 1,
    max_pages: int = DEFAULT_MAX_PAGES,
    on_page: Callable[[Page[T]], None] | None = None,
    page_size: int | None = None,
    key: Callable[[T], Hashable] | None = None,
    endpoint: str = "page",
    company_id: str | None = None,
) -> Iterator[T]:
    """Yield the items of every page, fetching page N+1 only when page N says there is more.

    A page says there is more with a ``_links.next`` or when
    ``pageNumber * pageSize < totalResults``. An empty page ends the walk even if
    the server claims more, and so does ``max_pages``. We ask for page numbers
    ourselves, rather than requesting the ``next`` href, so the query and page
    size we chose are guaranteed to stay the same on every page.

    A server that leads the walk in circles is stopped with a ``PagingError``
    naming the reason: a page whose records (by ``key``) repeat an earlier
    page's, a ``next`` link seen before (or pointing at its own page), or more
    pages than the first page's ``totalResults`` at ``page_size`` justifies.
    """
    page_number = first_page
    seen_pages: dict[tuple[Hashable, ...], int] = {}
    seen_links: dict[str, int] = {}
    allowed: int | None = None
    for count in range(1, max_pages + 1):
        if allowed is not None and count > allowed:
            raise PagingError(
                f"stopped after {count - 1} pages: more pages than totalResults justifies ({allowed})",
                endpoint=endpoint,
                company_id=company_id,
            )
        page = fetch_page(page_number)
        if on_page is not None:
            on_page(page)
        if allowed is None and page.total_results > 0:
            # A total of 0 with a next link is a server that counts nothing: only the other checks apply.
            size = page_size if page_size is not None else page.page_size
            allowed = justified_pages(page.total_results, size) + SLACK_PAGES
        _check_not_repeated(page, page_number, key, seen_pages, seen_links, endpoint, company_id)
        yield from page.results
        if (not page.results and not page.failures) or not page.has_next:
            return
        page_number += 1


def _check_not_repeated(
    page: Page[T],
    number: int,
    key: Callable[[T], Hashable] | None,
    seen_pages: dict[tuple[Hashable, ...], int],
    seen_links: dict[str, int],
    endpoint: str,
    company_id: str | None,
) -> None:
    """Raise ``PagingError`` if ``page`` repeats an earlier page (records or next link), else remember it."""
    if page.next_href is not None:
        if page.next_href == page.self_href:
            raise PagingError(
                f"paging loop: page {number}'s next link points at itself",
                endpoint=endpoint,
                company_id=company_id,
            )
        earlier = seen_links.get(page.next_href)
        if earlier is not None:
            raise PagingError(
                f"paging loop: page {number}'s next link repeats page {earlier}'s",
                endpoint=endpoint,
                company_id=company_id,
            )
        seen_links[page.next_href] = number
    if key is None or not page.results:
        return
    fingerprint = tuple(key(item) for item in page.results)
    earlier = seen_pages.get(fingerprint)
    if earlier is not None:
        raise PagingError(
            f"paging loop: page {number} holds the same {len(fingerprint)} records as page {earlier}",
            endpoint=endpoint,
            company_id=company_id,
        )
    seen_pages[fingerprint] = number
