"""Building Codat ``query`` strings (``field op value`` joined by ``&&`` / ``||``).

The client sends the whole query as one URL-encoded parameter value, so these
helpers only assemble text; they never encode.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Final

MAX_QUERY_LENGTH: Final = 2047  # Codat: "the whole query must be < 2048 characters"
_OPERATORS: Final = frozenset({"=", "!=", "~", ">", "<", ">=", "<="})


def clause(field: str, op: str, value: str | int | float | date) -> str:
    """One comparison, e.g. ``clause("status", "!=", "Complete")`` → ``status!=Complete``.

    Dates (and datetimes) are written as ``YYYY-MM-DD``, the form Codat documents.
    """
    if op not in _OPERATORS:
        raise ValueError(f"unknown query operator {op!r}")
    if isinstance(value, datetime):
        text = value.date().isoformat()
    elif isinstance(value, date):
        text = value.isoformat()
    else:
        text = str(value)
    return f"{field}{op}{text}"


def all_of(*clauses: str | None) -> str | None:
    """Clauses joined with ``&&`` (None and empty ones dropped); None when nothing is left."""
    return _join("&&", clauses)


def any_of(*clauses: str | None) -> str | None:
    """Clauses joined with ``||`` inside ``{}`` so it composes with ``&&``; None when empty."""
    joined = _join("||", clauses)
    if joined is None:
        return None
    return "{" + joined + "}" if "||" in joined else joined


def _join(operator: str, clauses: Iterable[str | None]) -> str | None:
    parts = [c for c in clauses if c]
    if not parts:
        return None
    query = operator.join(parts)
    if len(query) > MAX_QUERY_LENGTH:
        raise ValueError(f"query is {len(query)} characters; Codat accepts at most {MAX_QUERY_LENGTH}")
    return query


def history_query(
    *,
    data_type: str | None = None,
    status_not: Iterable[str] = (),
    status_in: Iterable[str] = (),
    requested_after: date | None = None,
    connection_id: str | None = None,
) -> str | None:
    """A ``data/history`` query, e.g. failed ``invoices`` syncs since a date.

    ``history_query(data_type="invoices", status_not=["Complete", "NotSupported"])``
    → ``dataType=invoices&&status!=Complete&&status!=NotSupported`` (Codat's own
    advice for "failed pull operations", since ``isCompleted`` is not queryable).
    """
    return all_of(
        clause("dataType", "=", data_type) if data_type else None,
        clause("connectionId", "=", connection_id) if connection_id else None,
        *(clause("status", "!=", s) for s in status_not),
        any_of(*(clause("status", "=", s) for s in status_in)),
        clause("requested", ">", requested_after) if requested_after is not None else None,
    )
