"""The exporter's endpoints: /metrics, /healthz, /readyz and the landing page at /.

Adding an endpoint means adding a handler here and its route in ``exporter_routes``;
the generic server (``exporter.http.server``) needs no change.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Final

from exporter.exposition import (
    OPENMETRICS_CONTENT_TYPE,
    TEXT_CONTENT_TYPE,
    AgeTicker,
    ExpositionCache,
    Telemetry,
)
from exporter.http.landing import LandingData, render_landing
from exporter.http.messages import HEALTH_ROUTES, Handler, Request, Response
from exporter.http.negotiation import accepts_gzip, wants_openmetrics

log = logging.getLogger(__name__)

NOT_READY_TEXT: Final = "not ready: the first poll of every company has not finished yet\n"
LANDING_HEADERS: Final = {
    "Content-Type": "text/html; charset=utf-8",
    # The page is self-contained: forbid every external load, allow only its inline CSS.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


class MetricsEndpoint:
    """``/metrics``: the cache's pre-rendered exposition in the format and encoding the scraper asked for.

    With an ``AgeTicker``, each scrape tells it the scrape happened, so it builds the next
    second's age block ahead of the next scrape.
    """

    def __init__(
        self,
        cache: ExpositionCache,
        telemetry: Telemetry | None,
        clock: Callable[[], float],
        ticker: AgeTicker | None = None,
    ) -> None:
        """Serve ``cache`` (with ``telemetry``'s registry appended) at Unix time ``clock()``."""
        self.cache = cache
        self.telemetry = telemetry
        self.clock = clock
        self.ticker = ticker

    def __call__(self, request: Request) -> Response:
        """Answer one scrape."""
        openmetrics = wants_openmetrics(request.headers.get("accept", ""))
        gzip = accepts_gzip(request.headers.get("accept-encoding", ""))
        registry = self.telemetry.registry if self.telemetry is not None else None
        ticker = self.ticker
        with ticker.serving() if ticker is not None else contextlib.nullcontext():
            now = self.clock()
            parts = self.cache.parts(openmetrics, gzip, now, registry)
            if ticker is not None:
                ticker.scraped(gzip=gzip, now=now)  # after building: never slows this scrape
        headers = {"Content-Type": OPENMETRICS_CONTENT_TYPE if openmetrics else TEXT_CONTENT_TYPE}
        if gzip:
            headers["Content-Encoding"] = "gzip"
        headers["Vary"] = "Accept, Accept-Encoding"
        return Response(200, headers, parts=parts)


def readiness(ready: Callable[[], bool]) -> Handler:
    """``/readyz``: 200 once ``ready()``, else 503 with the reason."""

    def handle(_request: Request) -> Response:
        return Response.text(200, "ok\n") if ready() else Response.text(503, NOT_READY_TEXT)

    return handle


def landing_page(landing: Callable[[], LandingData], clock: Callable[[], float]) -> Handler:
    """``/``: the landing page built from ``landing()`` at ``clock()``."""

    def handle(_request: Request) -> Response:
        page = render_landing(landing(), clock())
        # Names from Codat may hold lone surrogates (valid JSON, not encodable): substitute them,
        # as /metrics does, rather than fail the page.
        return Response(200, LANDING_HEADERS, page.encode("utf-8", "replace"))

    return handle


def reload_endpoint(reload: Callable[[], str | None]) -> Handler:
    """``POST /-/reload``: reload the configuration now; 200, or 500 with why it was refused.

    ``reload()`` returns None on success, else the one-line reason. Served only when the
    lifecycle API is enabled (``--web.enable-lifecycle``), as Prometheus does; 404 otherwise.
    """

    def handle(_request: Request) -> Response:
        problem = reload()
        if problem is None:
            return Response.text(200, "configuration reloaded\n")
        return Response.text(500, f"failed to reload the configuration: {problem}\n")

    return handle


def exporter_routes(
    metrics: MetricsEndpoint,
    ready: Callable[[], bool],
    landing: Callable[[], LandingData],
    clock: Callable[[], float],
) -> dict[tuple[str, str], Handler]:
    """The exporter's routes: ``/metrics``, ``/healthz``, ``/readyz`` and ``/``."""
    return {
        **HEALTH_ROUTES,
        ("GET", "/metrics"): metrics,
        ("GET", "/readyz"): readiness(ready),
        ("GET", "/"): landing_page(landing, clock),
    }
