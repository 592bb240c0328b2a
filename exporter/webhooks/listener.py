"""A webhook-only HTTP listener, for ``webhooks.listen_address``: the endpoint on its own port.

Operators put the webhook endpoint on a separate port when only it should be
reachable from the internet (through an ingress) while /metrics stays internal.
It is the generic HTTP server with the webhook route and /healthz, nothing else:
the landing page and /metrics do not exist there, so nothing about the
exporter's companies leaks through the public port.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from exporter.http.limits import ServerLimits
from exporter.http.messages import HEALTH_ROUTES, Routes
from exporter.http.server import HttpServer
from exporter.http.webconfig import WebConfig

NOT_FOUND_TEXT: Final = (
    "this port only receives Codat webhooks; /metrics is served on the exporter's main address\n"
)
MOVE_HINT: Final = "choose another with webhooks.listen_address in the config file"


def webhook_server(
    listen_address: str,
    routes: Routes,
    *,
    max_body_bytes: int,
    on_body_too_large: Callable[[str], None] | None = None,
    limits: ServerLimits | None = None,
    web: WebConfig | None = None,
) -> HttpServer:
    """An (unstarted) server on ``listen_address`` that carries only ``routes`` and /healthz."""
    return HttpServer(
        listen_address,
        {**HEALTH_ROUTES, **routes},
        max_body_bytes=max_body_bytes,
        on_body_too_large=on_body_too_large,
        not_found_text=NOT_FOUND_TEXT,
        limits=limits,
        web=web,
        move_hint=MOVE_HINT,
        name="webhook-server",
    )
