"""Codat's paging envelope as the simulator builds it (pure functions, checked with hypothesis)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.simulator.paging import MAX_PAGE_SIZE, PagingError, page_params, page_window, paged


@given(total=st.integers(0, 60), size=st.integers(1, 12))
def test_following_next_links_visits_every_item_once(total: int, size: int) -> None:
    items = list(range(total))
    seen: list[int] = []
    page = 1
    while True:
        body = paged("/companies", list(page_window(items, page, size)), total, page, size)
        seen.extend(body["results"])
        assert body["totalResults"] == total
        next_link = body["_links"].get("next")
        if next_link is None:
            break
        page = int(parse_qs(urlsplit(next_link["href"]).query)["page"][0])
    assert seen == items


@given(total=st.integers(0, 60), size=st.integers(1, 12), page=st.integers(1, 8))
def test_links_exist_only_when_the_page_does(total: int, size: int, page: int) -> None:
    links = paged("/x", [], total, page, size, {"query": "status=Complete"})["_links"]
    assert links["self"] == {"href": "/x"}
    assert links["current"] == {"href": f"/x?page={page}&pageSize={size}&query=status%3DComplete"}
    assert ("next" in links) == (page * size < total)
    assert ("previous" in links) == (page > 1)


@pytest.mark.parametrize(
    ("page", "size", "expected"),
    [(None, None, (1, 100)), ("3", "50", (3, 50)), ("", "", (1, 100)), ("1", str(MAX_PAGE_SIZE), (1, 5000))],
)
def test_page_params_defaults_and_values(
    page: str | None, size: str | None, expected: tuple[int, int]
) -> None:
    assert page_params(page, size) == expected


@pytest.mark.parametrize(
    ("page", "size"), [("0", "10"), ("1", "0"), ("1", "5001"), ("x", "10"), ("1", "1.5")]
)
def test_page_params_reject_out_of_range_or_non_numbers(page: str, size: str) -> None:
    with pytest.raises(PagingError):
        page_params(page, size)
