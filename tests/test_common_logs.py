"""Log lines cannot be forged or flooded by values from outside, and never carry a secret."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from exporter.common.logs import (
    MAX_MESSAGE_CHARS,
    MAX_VALUE_CHARS,
    RepeatFilter,
    clip,
    fold_controls,
    setup_logging,
)

SECRET = "sk-live-0123456789abcdef"
FORGED = "boom\n2026-01-01 00:00:00,000 CRITICAL exporter: forged line\r\x1b[2J\u2028end"

Capture = pytest.CaptureFixture[str]


@pytest.fixture(autouse=True)
def _restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_fold_controls_makes_every_control_character_visible() -> None:
    folded = fold_controls(FORGED)
    assert not any(char in folded for char in "\n\r\x1b\u2028")
    assert folded == ("boom\\n2026-01-01 00:00:00,000 CRITICAL exporter: forged line\\r\\x1b[2J\\u2028end")


def test_clip_says_how_much_was_dropped() -> None:
    assert clip("abcdef", 10) == "abcdef"
    assert clip("abcdef", 2) == "ab…[4 more chars]"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_value_cannot_forge_a_log_line(capsys: Capture, fmt: str) -> None:
    setup_logging("info", fmt)
    logging.getLogger("exporter.test").warning("Codat said: %s", FORGED)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert "CRITICAL exporter: forged line" in lines[0]
    if fmt == "json":
        assert json.loads(lines[0])["level"] == "warning"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_message_built_before_logging_cannot_forge_a_line_either(capsys: Capture, fmt: str) -> None:
    setup_logging("info", fmt)
    logging.getLogger("exporter.test").info(f"company {FORGED} failed")
    assert len(capsys.readouterr().err.splitlines()) == 1


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_huge_value_is_capped(capsys: Capture, fmt: str) -> None:
    setup_logging("info", fmt)
    logging.getLogger("exporter.test").warning("error %s (status %d)", "x" * 1_000_000, 500)
    line = capsys.readouterr().err.strip()
    assert len(line) < MAX_VALUE_CHARS + 500
    message = json.loads(line)["message"] if fmt == "json" else line
    assert f"…[{1_000_000 - MAX_VALUE_CHARS} more chars] (status 500)" in message


def test_a_huge_message_is_capped(capsys: Capture) -> None:
    setup_logging("info", "text")
    logging.getLogger("exporter.test").info("y" * 100_000)
    assert len(capsys.readouterr().err) < MAX_MESSAGE_CHARS + 200


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_secret_is_masked_before_anything_is_cut(capsys: Capture, fmt: str) -> None:
    setup_logging("info", fmt, secrets=[SECRET])
    # The secret straddles the value cap: cutting first would leave its first half in the log.
    value = "x" * (MAX_VALUE_CHARS - 10) + SECRET
    logging.getLogger("exporter.test").warning("echo %s and %s", value, SECRET)
    err = capsys.readouterr().err
    assert SECRET[:8] not in err
    assert "[REDACTED]" in err


def test_an_exception_text_is_masked_and_bounded(capsys: Capture) -> None:
    setup_logging("info", "json", secrets=[SECRET])
    try:
        raise ValueError(f"library echoed {SECRET} " + "z" * 100_000)
    except ValueError:
        logging.getLogger("exporter.test").exception("failed")
    line = capsys.readouterr().err.strip()
    record = json.loads(line)
    assert SECRET not in line
    assert "[REDACTED]" in record["exception"]
    assert len(record["exception"]) < 20_000


def test_repeated_identical_warnings_are_held_back_and_counted() -> None:
    now = [0.0]
    repeats = RepeatFilter(window=60.0, clock=lambda: now[0])

    def record(message: str, level: int = logging.WARNING) -> logging.LogRecord:
        return logging.LogRecord("exporter.test", level, __file__, 1, message, None, None)

    assert repeats.filter(record("polling paused"))
    assert not repeats.filter(record("polling paused"))
    assert not repeats.filter(record("polling paused"))
    assert repeats.filter(record("another warning"))
    assert repeats.filter(record("polling paused", logging.INFO))  # info is never held back
    now[0] = 61.0
    again = record("polling paused")
    assert repeats.filter(again)
    assert again.getMessage() == "polling paused (and 2 more like it in the last 60s)"
