"""A webhook-only HTTP listener, for ``webhooks.listen_address``: the endpoint on its own port.

Operators put the webhook endpoint on a separate port when only it should be
reachable from the internet (through an ingress) while /metrics stays internal.
It is the exporter's own HTTP server with the webhook route and /healthz; the
landing page and /metrics are not served there, so nothing about the
exporter's companies leaks through the public port.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from exporter.collector.snapshot import Snapshot
from exporter.exposition import ExpositionCache
from exporter.landing import LandingData
from exporter.server import ExporterServer, Handler, Request, Response

_NOT_HERE = Response(
    404,
    {"Content-Type": "text/plain; charset=utf-8"},
    b"this port only receives Codat webhooks; /metrics is served on the exporter's main address\n",
)


def _not_here(_request: Request) -> Response:
    return _NOT_HERE


def webhook_server(
    listen_address: str,
    routes: Mapping[tuple[str, str], Handler],
    *,
    max_body_bytes: int,
    on_body_too_large: Callable[[str], None] | None = None,
) -> ExporterServer:
    """An (unstarted) server on ``listen_address`` that carries only ``routes`` and /healthz."""
    hidden = {
        (method, path): _not_here for method in ("GET", "HEAD") for path in ("/", "/metrics", "/readyz")
    }
    return ExporterServer(
        listen_address,
        ExpositionCache(),
        None,
        ready=lambda: True,
        landing=lambda: LandingData(Snapshot()),
        routes={**hidden, **routes},
        max_body_bytes=max_body_bytes,
        on_body_too_large=on_body_too_large,
        prebuild_ages=False,  # this port never serves /metrics
    )
