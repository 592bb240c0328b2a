"""The exporter's HTTP server: its endpoints on the generic server, plus extra routes (webhooks).

The age ticker belongs here, with the cache it serves: it runs while this server
runs and only prebuilds for /metrics scrapes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

from exporter.common import env as envvars
from exporter.exposition import AgeTicker, ExpositionCache, Telemetry
from exporter.http.endpoints import MetricsEndpoint, exporter_routes
from exporter.http.landing import LandingData
from exporter.http.limits import ServerLimits
from exporter.http.messages import Routes
from exporter.http.server import DEFAULT_MAX_BODY_BYTES, HttpServer
from exporter.http.webconfig import WebConfig

log = logging.getLogger(__name__)

MOVE_HINT: Final = (
    f"choose another with --web.listen-address or {envvars.LISTEN_ADDRESS} "
    "(server.listen_address in the config file)"
)


class ExporterServer:
    """Serves /metrics, /healthz, /readyz, the landing page, and ``routes``, on a background thread.

    ``ready`` says whether the first full poll finished (for /readyz); ``landing`` gives the
    data of the landing page; ``routes`` adds handlers such as ``("POST", "/webhooks/codat")``
    (a route may also replace one of the exporter's own). While /metrics is scraped, an
    ``AgeTicker`` (``age_ticker``; off with ``prebuild_ages=False``) builds each second's
    ``codat_data_seconds_since_last_successful_sync`` block ahead of the scrapes.
    """

    def __init__(
        self,
        listen_address: str,
        cache: ExpositionCache,
        telemetry: Telemetry | None,
        ready: Callable[[], bool],
        landing: Callable[[], LandingData],
        routes: Routes | None = None,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        clock: Callable[[], float] = time.time,
        on_body_too_large: Callable[[str], None] | None = None,
        prebuild_ages: bool = True,
        limits: ServerLimits | None = None,
        web: WebConfig | None = None,
    ) -> None:
        """Bind the listening socket now (so a taken port fails at start-up); serve on ``start()``."""
        self.cache = cache
        self.telemetry = telemetry
        self.clock = clock
        self.age_ticker = AgeTicker(cache, clock) if prebuild_ages else None
        metrics = MetricsEndpoint(cache, telemetry, clock, self.age_ticker)
        self.http = HttpServer(
            listen_address,
            {**exporter_routes(metrics, ready, landing, clock), **(routes or {})},
            max_body_bytes=max_body_bytes,
            on_body_too_large=on_body_too_large,
            limits=limits,
            web=web,
            move_hint=MOVE_HINT,
        )

    @property
    def port(self) -> int:
        """The bound TCP port (useful with port 0)."""
        return self.http.port

    @property
    def url(self) -> str:
        """Base URL for clients on this machine, e.g. ``http://127.0.0.1:8329``."""
        return self.http.url

    def start(self) -> None:
        """Serve requests on a daemon thread, and start the age ticker."""
        self.http.start()
        if self.age_ticker is not None:
            self.age_ticker.start()
        log.info("serving metrics on %s/metrics (%s)", self.url, self.http.web.describe())

    def stop(self) -> None:
        """Stop the ticker, stop accepting requests, close the socket, and wait for the threads."""
        if self.age_ticker is not None:
            self.age_ticker.stop()
        self.http.stop()

    def __enter__(self) -> ExporterServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
