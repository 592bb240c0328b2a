"""A real HTTP endpoint that records webhook deliveries, for tests of what the simulator sends."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tests.support.post_capture import serving_posts
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

    def record(path: str, headers: Mapping[str, str], body: bytes) -> int:
        with state.lock:
            state.received.append((dict(headers), body))
            return state.codes.pop(0) if state.codes else 200

    with serving_posts(record) as base_url:
        state.url = f"{base_url}/webhooks/codat"
        yield state
