"""The wall clock, aware and in UTC; parts that decide on time take a ``Clock`` so tests can pin it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]
"""A function returning the current time (aware, UTC)."""


def utc_now() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


def seconds_between(earlier: datetime, later: datetime) -> float:
    """Seconds from ``earlier`` to ``later`` (negative when ``later`` is before ``earlier``)."""
    return (later - earlier).total_seconds()
