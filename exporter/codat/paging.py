"""Walking every page of a Codat list endpoint, one page at a time."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

from exporter.codat.models import Page

T = TypeVar("T")

DEFAULT_MAX_PAGES = 10_000


def iterate_pages(
    fetch_page: Callable[[int], Page[T]],
    *,
    first_page: int = 1,
    max_pages: int = DEFAULT_MAX_PAGES,
    on_page: Callable[[Page[T]], None] | None = None,
) -> Iterator[T]:
    """Yield the items of every page, fetching page N+1 only when page N says there is more.

    A page says there is more with a ``_links.next`` or when
    ``pageNumber * pageSize < totalResults``. An empty page ends the walk even if
    the server claims more (a server that keeps saying "next" must not loop us
    forever), and so does ``max_pages``. We ask for page numbers ourselves,
    rather than requesting the ``next`` href, so the query and page size we
    chose are guaranteed to stay the same on every page.
    """
    page_number = first_page
    for _ in range(max_pages):
        page = fetch_page(page_number)
        if on_page is not None:
            on_page(page)
        yield from page.results
        if not page.results or not page.has_next:
            return
        page_number += 1
