"""The simulator's query language: parsing, evaluation, ordering and malformed input."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.simulator import query as q

FIELDS = q.fields_resolver(
    {
        "status": q.Field("string", lambda o: o["status"]),
        "dataType": q.Field("string", lambda o: o["dataType"]),
        "requested": q.Field("date", lambda o: o["requested"]),
        "progress": q.Field("number", lambda o: o["progress"]),
        "dataConnections.status": q.Field("string", lambda o: o["connections"]),
    }
)

OPS: list[dict[str, Any]] = [
    {
        "id": "a",
        "status": "Complete",
        "dataType": "invoices",
        "requested": datetime(2026, 1, 1, 10, tzinfo=UTC),
        "progress": 100,
        "connections": ["Linked"],
    },
    {
        "id": "b",
        "status": "FetchError",
        "dataType": "invoices",
        "requested": datetime(2026, 1, 2, 0, tzinfo=UTC),
        "progress": 40,
        "connections": ["Linked", "Deauthorized"],
    },
    {
        "id": "c",
        "status": "Complete",
        "dataType": "bills",
        "requested": datetime(2026, 1, 3, 12, tzinfo=UTC),
        "progress": 100,
        "connections": [],
    },
    {
        "id": "d",
        "status": "NotSupported",
        "dataType": "bills",
        "requested": None,
        "progress": 100,
        "connections": ["PendingAuth"],
    },
]


def ids(query: str) -> list[str]:
    predicate = q.build_filter(query, FIELDS, "Dataset")
    return [o["id"] for o in OPS if predicate(o)]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=Complete", ["a", "c"]),
        ("status!=Complete", ["b", "d"]),
        ("status!=Complete&&status!=NotSupported", ["b"]),
        ("dataType=bills||status=FetchError", ["b", "c", "d"]),
        ("{dataType=bills||status=FetchError}&&status!=NotSupported", ["b", "c"]),
        ("dataType=invoices && {status=Complete || status=FetchError}", ["a", "b"]),
        ("requested>2026-01-02", ["c"]),
        ("requested>=2026-01-02", ["b", "c"]),
        ("requested<2026-01-02", ["a"]),
        ("requested<=2026-01-02T00:00:00Z", ["a", "b"]),
        ("requested>2026-01-01T10:00:00.0000000Z", ["b", "c"]),
        ("progress<50", ["b"]),
        ("status~Err", ["b"]),
        ("STATUS=complete", ["a", "c"]),
        ("dataConnections.status=Deauthorized", ["b"]),
        ("dataConnections.status=Linked", ["a", "b"]),
        ("", ["a", "b", "c", "d"]),
    ],
)
def test_query_selects_matching_operations(query: str, expected: list[str]) -> None:
    assert ids(query) == expected


def test_null_dates_never_match_comparisons() -> None:
    assert "d" not in ids("requested<2030-01-01")
    assert "d" not in ids("requested>2000-01-01")


@pytest.mark.parametrize(
    "query",
    [
        "status",
        "status=",
        "=Complete",
        "status==Complete",
        "status=Complete&&",
        "status=Complete||",
        "{status=Complete",
        "status=Complete}",
        "status=Complete&status=FetchError",
        "status>Complete",
        "requested>yesterday",
        "requested~2026",
        "progress=lots",
        "status=Complete extra=1",
        "x" * 2048,
    ],
)
def test_malformed_queries_raise(query: str) -> None:
    with pytest.raises(q.QueryError, match=r"Malformed query\."):
        q.build_filter(query, FIELDS, "Dataset")


def test_unknown_property_names_the_entity() -> None:
    with pytest.raises(q.QueryError, match="Could not resolve property isCompleted on Dataset"):
        q.build_filter("isCompleted=true", FIELDS, "Dataset")


def test_date_only_value_means_midnight_utc() -> None:
    assert q.parse_date("2026-01-02") == datetime(2026, 1, 2, tzinfo=UTC)
    assert q.parse_date("2026-01-02T03:04:05.1234567Z") == datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    assert q.parse_date("2026-01-02T03:04:05+01:00") == datetime(2026, 1, 2, 2, 4, 5, tzinfo=UTC)


def test_order_by_descending_puts_nulls_last() -> None:
    ordered = q.order_by(OPS, "-requested", FIELDS, "Dataset")
    assert [o["id"] for o in ordered] == ["c", "b", "a", "d"]
    ascending = q.order_by(OPS, "requested", FIELDS, "Dataset")
    assert [o["id"] for o in ascending] == ["a", "b", "c", "d"]


def test_order_by_unknown_property_is_an_error() -> None:
    with pytest.raises(q.QueryError, match="Could not resolve property nope"):
        q.order_by(OPS, "-nope", FIELDS, "Dataset")


STATUSES = st.sampled_from(["Complete", "FetchError", "NotSupported", "Queued"])
TYPES = st.sampled_from(["invoices", "bills"])


@st.composite
def expressions(draw: st.DrawFn, depth: int = 0) -> tuple[str, Any]:
    """A random query string together with a Python predicate that means the same."""
    if depth >= 2 or draw(st.booleans()):
        prop, values = draw(st.sampled_from([("status", STATUSES), ("dataType", TYPES)]))
        value = draw(values)
        op = draw(st.sampled_from(["=", "!="]))
        if op == "=":
            return f"{prop}{op}{value}", lambda o, p=prop, v=value: o[p] == v
        return f"{prop} {op} {value}", lambda o, p=prop, v=value: o[p] != v
    left_text, left = draw(expressions(depth + 1))
    right_text, right = draw(expressions(depth + 1))
    if draw(st.booleans()):
        return f"{{{left_text}}}&&{{{right_text}}}", lambda o: left(o) and right(o)
    return f"{{{left_text}}} || {{{right_text}}}", lambda o: left(o) or right(o)


@given(expressions())
def test_random_queries_agree_with_python_logic(case: tuple[str, Any]) -> None:
    text, meaning = case
    assert ids(text) == [o["id"] for o in OPS if meaning(o)]


@given(st.text(alphabet="{}=!<>&|~ abcXYZ09-:", max_size=30))
def test_arbitrary_text_either_evaluates_or_raises_query_error(text: str) -> None:
    try:
        predicate = q.build_filter(text, FIELDS, "Dataset")
    except q.QueryError:
        return
    assert all(isinstance(predicate(o), bool) for o in OPS)
