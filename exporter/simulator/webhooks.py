"""Webhook sender: delivers Codat events, signed the Standard Webhooks (Svix) way, with Codat's retries.

Deliveries run on a background thread. Retry times are measured on the
simulator clock, so a test moves a failed delivery to its next attempt by
advancing a ``FakeClock``. The ``webhook-timestamp`` header uses wall-clock
time by default because receivers check it against their own clock (±5 min).
"""

from __future__ import annotations

import heapq
import json
import logging
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from standardwebhooks import Webhook

from exporter.simulator.clock import Clock
from exporter.simulator.wire import codat_timestamp

log = logging.getLogger(__name__)

RETRY_SCHEDULE: tuple[float, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
"""Seconds before each attempt, counted from the previous failure: immediately, 5 s, 5 min, 30 min, 2 h,
5 h, 10 h, 10 h (Codat's documented schedule)."""

MAX_PENDING = 10_000
"""Messages waiting for a retry beyond which new events are dropped (and counted in ``dropped``)."""


@dataclass(order=True, slots=True)
class _Pending:
    due: datetime
    seq: int
    message_id: str = field(compare=False)
    event_type: str = field(compare=False)
    body: str = field(compare=False)
    attempt: int = field(compare=False, default=0)  # index of the next attempt


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    """One POST of one message: its 1-based attempt number, when (simulator clock) and the outcome."""

    message_id: str
    event_type: str
    attempt: int
    at: datetime
    status: int | None
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        """True for a 2xx answer."""
        return self.status is not None and 200 <= self.status < 300


class WebhookSender:
    """Queues events and posts them from a background thread until they succeed or retries run out."""

    def __init__(
        self,
        clock: Clock,
        url: str | None = None,
        secret: str | None = None,
        *,
        timeout: float = 15.0,
        timestamps: Literal["wall", "clock"] = "wall",
    ) -> None:
        """``url`` None disables sending; ``secret`` (``whsec_…``) None sends unsigned messages."""
        self._clock = clock
        self._timeout = timeout
        self._timestamps = timestamps
        self._cond = threading.Condition()
        self._heap: list[_Pending] = []
        self._seq = 0
        self._in_flight = 0
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.attempts: deque[DeliveryAttempt] = deque(maxlen=10_000)
        self.dropped = 0  # events not queued because too many were already waiting
        self.url: str | None = None
        self._signer: Webhook | None = None
        self.configure(url, secret)

    def configure(self, url: str | None, secret: str | None) -> None:
        """Set (or clear) the destination and signing secret."""
        with self._cond:
            self.url = url
            self._signer = Webhook(secret) if secret else None
            self._cond.notify_all()
        if url:
            self._ensure_thread()

    @property
    def enabled(self) -> bool:
        """True when a destination URL is set."""
        return self.url is not None

    def __repr__(self) -> str:
        """Never shows the secret."""
        return f"WebhookSender(url={self.url!r}, signed={self._signer is not None})"

    def enqueue(self, event_type: str, payload: dict[str, Any], now: datetime) -> str | None:
        """Queue an event for immediate delivery; returns the event id (None when disabled or full)."""
        if not self.enabled:
            return None
        event_id = str(uuid.uuid4())
        envelope = {
            "id": event_id,
            "eventType": event_type,
            "generatedDate": codat_timestamp(now),
            "payload": payload,
        }
        body = json.dumps(envelope, separators=(",", ":"))
        with self._cond:
            if len(self._heap) >= MAX_PENDING:
                # A receiver that has been down for hours: Codat would disable the endpoint.
                self.dropped += 1
                return None
            self._seq += 1
            heapq.heappush(self._heap, _Pending(now, self._seq, f"msg_{uuid.uuid4().hex}", event_type, body))
            self._cond.notify_all()
        return event_id

    def wake(self) -> None:
        """Re-check due deliveries now (the clock moved)."""
        with self._cond:
            self._cond.notify_all()

    def pending(self) -> int:
        """Messages waiting for a (re)try or being sent."""
        with self._cond:
            return len(self._heap) + self._in_flight

    def next_attempt_due(self) -> datetime | None:
        """When the next waiting attempt is due on the simulator clock."""
        with self._cond:
            return self._heap[0].due if self._heap else None

    def wait_until_idle(self, timeout: float = 10.0) -> bool:
        """Block until nothing is due now or in flight (polls; for tests and shutdown)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                now = self._clock.now()
                busy = self._in_flight > 0 or (self._heap and self._heap[0].due <= now)
                if not busy:
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.05))

    def close(self) -> None:
        """Stop the sender thread (undelivered messages are dropped)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=self._timeout + 1)

    def _ensure_thread(self) -> None:
        with self._cond:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="sim-webhooks", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and not (self._heap and self._heap[0].due <= self._clock.now()):
                    self._cond.wait(0.2)
                if self._stopping:
                    return
                item = heapq.heappop(self._heap)
                self._in_flight += 1
                url, signer = self.url, self._signer
            try:
                attempt = self._post(item, url, signer)
            except Exception as exc:  # never let one delivery kill the sender
                attempt = DeliveryAttempt(
                    item.message_id, item.event_type, item.attempt + 1, self._clock.now(), None, repr(exc)
                )
            with self._cond:
                self._in_flight -= 1
                self.attempts.append(attempt)
                if not attempt.succeeded and item.attempt + 1 < len(RETRY_SCHEDULE):
                    item.attempt += 1
                    item.due = attempt.at + timedelta(seconds=RETRY_SCHEDULE[item.attempt])
                    self._seq += 1
                    item.seq = self._seq
                    heapq.heappush(self._heap, item)
                self._cond.notify_all()

    def _post(self, item: _Pending, url: str | None, signer: Webhook | None) -> DeliveryAttempt:
        now = self._clock.now()
        if url is None:
            return DeliveryAttempt(item.message_id, item.event_type, item.attempt + 1, now, None, "disabled")
        stamp = datetime.now(UTC) if self._timestamps == "wall" else now
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "codat-exporter-simulator",
            "webhook-id": item.message_id,
            "webhook-timestamp": str(int(stamp.timestamp())),
        }
        if signer is not None:
            headers["webhook-signature"] = signer.sign(item.message_id, stamp, item.body)
        request = urllib.request.Request(url, data=item.body.encode(), headers=headers, method="POST")  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310
                status = int(response.status)
            return DeliveryAttempt(item.message_id, item.event_type, item.attempt + 1, now, status)
        except urllib.error.HTTPError as exc:
            return DeliveryAttempt(item.message_id, item.event_type, item.attempt + 1, now, exc.code)
        except (OSError, ValueError) as exc:
            log.debug("webhook delivery to %s failed: %s", url, exc)
            return DeliveryAttempt(item.message_id, item.event_type, item.attempt + 1, now, None, str(exc))
