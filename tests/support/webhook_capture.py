"""A real HTTP endpoint that records webhook deliveries, for tests of what the simulator sends."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.waiting import wait_until


@dataclass
class Receiver:
    """Records deliveries and answers with ``codes`` in turn (then 200)."""

    url: str = ""
    codes: list[int] = field(default_factory=list)
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_for(self, count: int, timeout: float = 10) -> list[tuple[dict[str, str], bytes]]:
        """At least ``count`` deliveries (all so far), or AssertionError after ``timeout``."""
        wait_until(lambda: len(self.received) >= count, timeout=timeout, what=f"{count} webhook deliveries")
        with self.lock:
            return list(self.received)

    def events(self) -> list[dict[str, Any]]:
        """The JSON bodies received so far, in order."""
        with self.lock:
            return [json.loads(body) for _, body in self.received]

    def wait_for_event(self, event_type: str, timeout: float = 10) -> dict[str, Any]:
        """The first received body of ``event_type`` (waiting for it up to ``timeout``)."""
        wait_until(
            lambda: any(e["eventType"] == event_type for e in self.events()), timeout=timeout, what=event_type
        )
        return next(e for e in self.events() if e["eventType"] == event_type)


@contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    """Serve a ``Receiver`` on a free loopback port; stopped on exit."""
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with state.lock:
                state.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                code = state.codes.pop(0) if state.codes else 200
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/webhooks/codat"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
