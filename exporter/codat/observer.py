"""The hook through which the Codat client reports every HTTP exchange."""

from __future__ import annotations

from typing import Protocol

from exporter.codat.models import RateLimitInfo


class RequestObserver(Protocol):
    """Receives one call per HTTP attempt (retries included) and every rate-limit reading."""

    def on_request(self, endpoint: str, code: str, duration_seconds: float) -> None:
        """One HTTP attempt finished; ``code`` is the status code or ``"error"`` for no response."""

    def on_rate_limit(self, info: RateLimitInfo) -> None:
        """A response carried ``X-Rate-Limit-*`` headers."""


class NullObserver:
    """An observer that ignores everything (CLI use, tests)."""

    def on_request(self, endpoint: str, code: str, duration_seconds: float) -> None:
        """Ignore the request."""

    def on_rate_limit(self, info: RateLimitInfo) -> None:
        """Ignore the reading."""
