"""Logging set-up: text or JSON lines on stderr that neither leak secrets nor can be forged or flooded.

Every record passes three filters on the way out, in this order:

1. ``SecretFilter`` masks every configured secret (before anything is cut, so
   no half of a secret survives a cut);
2. ``SafeValuesFilter`` folds control characters into visible escapes (a value
   holding ``\\n`` cannot start a line of its own, so text from Codat cannot
   forge a log line) and caps each interpolated value and the whole message;
3. ``RepeatFilter`` lets an identical warning through once per window and
   says how many copies it held back, so a fault repeated every poll does not
   flood the log.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from exporter.common.redaction import REDACTED, redact

MAX_VALUE_CHARS: Final = 1000
"""Longest text one interpolated value may add to a log line (Codat's error text, a company name)."""
MAX_MESSAGE_CHARS: Final = 4000
"""Longest message a log line may carry, whatever it is built from."""
MAX_EXCEPTION_CHARS: Final = 16000
"""Longest traceback text a record may carry."""
REPEAT_WINDOW_SECONDS: Final = 60.0
"""An identical warning is logged at most once per this many seconds."""
_MAX_TRACKED: Final = 1000
"""Distinct warnings remembered for the repeat window; the memory is cleared when full."""
MIN_SECRET_CHARS: Final = 4
"""Shorter "secrets" are not masked: replacing every "ab" in a log would hide more than it protects."""

TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# C0 and C1 controls, DEL, and the Unicode line and paragraph separators: anything a terminal or a
# log shipper may take as the end of a line or as a command.
_CONTROL_RE: Final = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def fold_controls(text: str) -> str:
    """``text`` with every control character shown as an escape (``\\n``, ``\\x1b``, ``\\u2028``)."""
    return _CONTROL_RE.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying how much was dropped."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…[{len(text) - limit} more chars]"


def safe_value(text: str, limit: int = MAX_VALUE_CHARS) -> str:
    """One value made fit for a log line: control characters folded, then capped."""
    return clip(fold_controls(text), limit)


class SecretFilter(logging.Filter):
    """Replaces any configured secret that slips into a log record with ``[REDACTED]``.

    The client and config already keep secrets out of their messages; this is the
    last line of defence for whatever a third-party library might log.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        """Remember the secret strings to mask (empty and very short ones are ignored)."""
        super().__init__()
        self._secrets = tuple(s for s in secrets if s and len(s) >= MIN_SECRET_CHARS)

    def filter(self, record: logging.LogRecord) -> bool:
        """Mask secrets in the formatted message and traceback; always keeps the record."""
        if not self._secrets:
            return True
        message = record.getMessage()
        masked = redact(message, self._secrets)
        if masked != message:
            record.msg = masked
            record.args = None
        if record.exc_info and not record.exc_text:
            # An exception's text is as likely to echo a secret as a message; formatters use
            # ``exc_text`` when it is set, so the traceback is rendered once, masked.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info), self._secrets)
        return True


class SafeValuesFilter(logging.Filter):
    """Folds control characters and caps lengths, per value and per message; always keeps the record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Make ``record``'s message one bounded line of visible characters."""
        args = record.args
        if isinstance(args, tuple):
            record.args = tuple(_safe_arg(arg) for arg in args)
        elif isinstance(args, Mapping):
            record.args = {key: _safe_arg(value) for key, value in args.items()}
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            # A format string that does not fit its arguments; logging would print a traceback.
            message = f"{record.msg!s} (unformattable arguments)"
        record.msg = clip(fold_controls(message), MAX_MESSAGE_CHARS)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = clip(record.exc_text, MAX_EXCEPTION_CHARS)
        return True


def _safe_arg(value: object) -> object:
    # Numbers keep their type so %d and %.1f still work; text of any other kind is made safe.
    if isinstance(value, bool | int | float) or value is None:
        return value
    return safe_value(value if isinstance(value, str) else str(value))


class RepeatFilter(logging.Filter):
    """Lets an identical warning (or worse) through once per window; counts the copies held back."""

    def __init__(
        self, window: float = REPEAT_WINDOW_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """Hold back repeats of a message for ``window`` seconds of ``clock``."""
        super().__init__()
        self._window = window
        self._clock = clock
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        """False for a repeat inside the window; the next one let through says how many were held."""
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, record.levelno, record.getMessage())
        now = self._clock()
        with self._lock:  # handlers run filters outside their own lock
            first, held = self._seen.get(key, (None, 0))
            if first is not None and now - first < self._window:
                self._seen[key] = (first, held + 1)
                return False
            if len(self._seen) >= _MAX_TRACKED:
                self._seen.clear()
            self._seen[key] = (now, 0)
        if held:
            record.msg = f"{record.getMessage()} (and {held} more like it in the last {self._window:.0f}s)"
            record.args = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and the exception, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as a JSON line."""
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info or record.exc_text:
            payload["exception"] = record.exc_text or self.formatException(record.exc_info)  # type: ignore[arg-type]
        return json.dumps(payload, ensure_ascii=False)


def build_handler(fmt: str = "text", secrets: Iterable[str] = ()) -> logging.Handler:
    """A stderr handler in ``text`` or ``json`` lines with every filter of this module attached."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(SecretFilter(secrets))
    handler.addFilter(SafeValuesFilter())
    handler.addFilter(RepeatFilter())
    return handler


def setup_logging(level: str = "info", fmt: str = "text", secrets: Iterable[str] = ()) -> None:
    """Send logs to stderr in ``text`` or ``json`` lines at ``level``, secrets masked, values made safe."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(build_handler(fmt, secrets))
    root.setLevel(level.upper())
    # urllib3 logs every retry with the full URL at debug; keep it at warning.
    logging.getLogger("urllib3").setLevel(logging.WARNING)


__all__ = [
    "REDACTED",
    "JsonFormatter",
    "RepeatFilter",
    "SafeValuesFilter",
    "SecretFilter",
    "clip",
    "fold_controls",
    "safe_value",
    "setup_logging",
]
