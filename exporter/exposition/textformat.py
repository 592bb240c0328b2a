"""The exposition text formats: content types, escaping, ``# HELP``/``# TYPE`` headers, gzip members.

Prometheus text 0.0.4 and OpenMetrics 1.0.0 share their sample lines; only the headers, the
counter family name and the final ``# EOF`` differ. A gzip stream may be several gzip members
one after another (RFC 1952 §2.2; Go's ``compress/gzip`` and Python's ``gzip`` read them all),
so a gzip body is pre-compressed members joined with members compressed per scrape.
"""

from __future__ import annotations

import zlib
from typing import Final

from exporter.exposition.spec import MetricSpec

try:
    from isal.isal_zlib import compressobj
except ImportError:  # no ISA-L wheel for this platform: zlib is slower, its output the same format
    from zlib import compressobj  # type: ignore[assignment]

TEXT_CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE: Final = "application/openmetrics-text; version=1.0.0; charset=utf-8"

GZIP_LEVEL: Final = 1
"""Level of every gzip member. Exposition text is so repetitive that level 1 is within ~5 % of
level 6 in size at a third of the CPU (see bench/RESULTS.md)."""

EOF_LINE: Final = b"# EOF\n"


def escape_label_value(value: str) -> str:
    """Escape a label value for both exposition formats (backslash, double quote, newline)."""
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def escape_help(text: str, *, openmetrics: bool) -> str:
    """Escape HELP text: both formats escape backslash and newline, OpenMetrics also double quotes."""
    text = text.replace("\\", "\\\\").replace("\n", "\\n")
    return text.replace('"', '\\"') if openmetrics else text


def family_header(spec: MetricSpec, *, openmetrics: bool) -> bytes:
    """The ``# HELP`` and ``# TYPE`` lines of a family (OpenMetrics names counters without ``_total``)."""
    name = spec.family if openmetrics else spec.name
    help_text = escape_help(spec.help, openmetrics=openmetrics)
    return f"# HELP {name} {help_text}\n# TYPE {name} {spec.type.value}\n".encode()


def gzip_member(data: bytes | memoryview, level: int = GZIP_LEVEL) -> bytes:
    """``data`` compressed as one complete gzip member (ISA-L when installed, else zlib)."""
    compressor = compressobj(level, zlib.DEFLATED, 31)  # wbits 31: gzip header and trailer
    return compressor.compress(data) + compressor.flush()


def encode(text: str) -> bytes:
    """UTF-8 bytes of ``text``; lone surrogates (JSON can carry them) become ``?`` rather than fail."""
    return text.encode("utf-8", "replace")


def label_text(value: str) -> str:
    """``value`` with lone surrogates replaced by ``?``, for labels that prometheus_client renders
    (it encodes strictly, so one such value from the API would fail every scrape)."""
    return value.encode("utf-8", "replace").decode("utf-8")


def timestamp_value(value: float) -> str:
    """A Unix time as a sample value (``repr`` of the float: exact and short)."""
    return repr(float(value))
