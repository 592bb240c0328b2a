"""Codat's paging: ``page``/``pageSize`` validation and the ``results``/``_links`` envelope."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 5000


class PagingError(ValueError):
    """``page`` or ``pageSize`` is not a valid number in range."""


def page_params(raw_page: str | None, raw_size: str | None) -> tuple[int, int]:
    """Read ``page`` (default 1, ≥ 1) and ``pageSize`` (default 100, 1..5000)."""
    try:
        page = int(raw_page) if raw_page not in (None, "") else 1
        size = int(raw_size) if raw_size not in (None, "") else DEFAULT_PAGE_SIZE
    except ValueError as exc:
        raise PagingError("page and pageSize must be whole numbers") from exc
    if page < 1:
        raise PagingError("page must be 1 or greater")
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise PagingError(f"pageSize must be between 1 and {MAX_PAGE_SIZE}")
    return page, size


def _href(path: str, page: int, size: int, extra: Mapping[str, str]) -> str:
    return f"{path}?{urlencode({'page': page, 'pageSize': size, **extra})}"


def page_window(items: Sequence[Any], page: int, size: int) -> Sequence[Any]:
    """The slice of ``items`` that page ``page`` of size ``size`` shows."""
    start = (page - 1) * size
    return items[start : start + size]


def paged(
    path: str,
    results: list[Any],
    total: int,
    page: int,
    size: int,
    extra: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """One page in Codat's envelope; ``extra`` query parameters are kept in the links.

    ``self`` is the bare path, ``current`` has the query; ``next`` and ``previous``
    appear only when such a page exists.
    """
    extra = dict(extra or {})
    links: dict[str, dict[str, str]] = {
        "self": {"href": path},
        "current": {"href": _href(path, page, size, extra)},
    }
    if page * size < total:
        links["next"] = {"href": _href(path, page + 1, size, extra)}
    if page > 1:
        last_page = max((total + size - 1) // size, 1)
        links["previous"] = {"href": _href(path, min(page - 1, last_page), size, extra)}
    return {
        "results": results,
        "pageNumber": page,
        "pageSize": size,
        "totalResults": total,
        "_links": links,
    }
