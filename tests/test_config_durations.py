"""Duration parsing and formatting (pure)."""

from __future__ import annotations

import pytest

from exporter.common.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (90, 90.0),
        (1.5, 1.5),
        ("90", 90.0),
        ("90s", 90.0),
        ("5m", 300.0),
        ("6h", 21600.0),
        ("1d", 86400.0),
        ("1w", 604800.0),
        ("1h30m", 5400.0),
        ("250ms", 0.25),
        (" 2m ", 120.0),
    ],
)
def test_parse_duration_accepts_numbers_and_units(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["6 hours", "5 m", "h", "", "1y", "1.h", None, True, [5], "nan"])
def test_parse_duration_rejects_anything_else_with_a_hint(value: object) -> None:
    with pytest.raises(ValueError, match=r"not a duration: .* \(use e\.g\. 90s, 5m, 6h, 1d\)"):
        parse_duration(value)


@pytest.mark.parametrize("value", [-1, "-5m", "-300", " -1h30m"])
def test_parse_duration_says_a_negative_duration_is_negative(value: object) -> None:
    with pytest.raises(ValueError, match=r"^must not be negative$"):
        parse_duration(value)


def test_parse_duration_refuses_huge_text_without_echoing_it() -> None:
    with pytest.raises(ValueError, match="not a duration") as caught:
        parse_duration("1s" * 100_000)
    assert len(str(caught.value)) < 200


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (45, "45s"),
        (60, "1m"),
        (90, "1m30s"),
        (3600, "1h"),
        (25320, "7h2m"),
        (86400, "1d"),
        (97200, "1d3h"),
    ],
)
def test_format_duration_is_compact(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
