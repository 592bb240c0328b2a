"""The webhook endpoint: verify, deduplicate, answer at once, and act on the event in a worker thread.

A delivery passes through, in order: size limit (413), signature and timestamp
(401), JSON shape (400), duplicate filter (200, not acted on again), then the
queue (200). Nothing before the queue changes any state, so a rejected request
leaves the exporter exactly as it was. Codat wants an answer within 15 s; the
handler never waits for the scheduler — the worker thread does that.

What the worker does with each event:

* ``read.completed`` (and ``.initial``) for a company this shard owns → its
  ``warning.validation`` issues are counted per data type, and the scheduler
  polls that company now, its history read narrowed to the data types the
  event names; other shards' companies are ``ignored``;
* ``connection.*`` and ``company.*`` for a company this shard owns (or may own:
  a company just created is not listed yet) → the scheduler re-lists and polls
  that company now (``RELIST_REASON``), since connection status and existence
  come from the listing;
* ``client.rateLimit.reached`` → the scheduler pauses non-essential polling
  until ``expiryDate``; ``client.rateLimit.reset`` → it resumes;
* any other event type → counted as ``ignored`` under its own name when it is
  one of Codat's fixed event names, else under ``event_type="other"``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Protocol

from exporter.collector.companies import RELIST_REASON
from exporter.collector.snapshot import Snapshot
from exporter.http.messages import Handler, Request, Response
from exporter.http.server import HttpServer
from exporter.http.webconfig import WebConfig
from exporter.webhooks.dedupe import SeenIds
from exporter.webhooks.events import (
    OTHER_EVENT_TYPE,
    CompanyEvent,
    ConnectionEvent,
    Event,
    OtherEvent,
    PayloadError,
    RateLimitReached,
    RateLimitReset,
    ReadCompleted,
    event_type_label,
    parse_event,
)
from exporter.webhooks.latency import LatencyTracker
from exporter.webhooks.listener import webhook_server
from exporter.webhooks.verify import DEFAULT_TOLERANCE_SECONDS, SigningSecret, VerificationError, verify

log = logging.getLogger(__name__)

DEFAULT_PATH: Final = "/webhooks/codat"
DEFAULT_MAX_BODY_BYTES: Final = 1024 * 1024
DEFAULT_QUEUE_SIZE: Final = 1024
POLL_REASON: Final = "webhook"


class Result:
    """Values of the ``result`` label of the webhook counter."""

    PROCESSED: Final = "processed"
    DUPLICATE: Final = "duplicate"
    IGNORED: Final = "ignored"
    INVALID_SIGNATURE: Final = "invalid_signature"
    BAD_REQUEST: Final = "bad_request"
    TOO_LARGE: Final = "too_large"


class PollScheduler(Protocol):
    """What the receiver needs from the scheduler."""

    @property
    def snapshot(self) -> Snapshot:
        """The current snapshot."""
        ...

    def request_poll(self, company_id: str, reason: str, data_types: Iterable[str] | None = None) -> None:
        """Poll ``company_id`` as soon as possible (its ``data_types`` only, when given)."""

    def pause_until(self, until: datetime) -> None:
        """Hold non-essential polling until ``until``."""

    def resume(self) -> None:
        """Lift a pause early."""


class WebhookTelemetry(Protocol):
    """The self-metrics the receiver reports into (``exporter.exposition.selfmetrics.Telemetry``)."""

    def count_webhook(self, event_type: str, result: str) -> None:
        """Count one delivery."""

    def count_validation_issues(self, company_id: str, data_type: str, issues: int) -> None:
        """Count the ``warning.validation`` issues of one data type of a read."""

    def observe_webhook_latency(self, seconds: float) -> None:
        """Observe receipt → updated metrics."""


_TEXT: Final = {"Content-Type": "text/plain; charset=utf-8"}
# Short bodies that reveal nothing: the reason for a 401 goes to the log, not to the caller.
_OK: Final = Response(200, _TEXT, b"ok\n")
_DUPLICATE: Final = Response(200, _TEXT, b"ok (duplicate)\n")
_UNAUTHORIZED: Final = Response(401, _TEXT, b"invalid webhook signature\n")
_TOO_LARGE: Final = Response(413, _TEXT, b"webhook body too large\n")
_BUSY: Final = Response(503, {**_TEXT, "Retry-After": "5"}, b"busy, retry later\n")


@dataclass(frozen=True, slots=True)
class _Job:
    event: Event
    received_at: float


_STOP: Final = object()


class WebhookReceiver:
    """Receives Codat webhook deliveries and turns them into scheduler actions."""

    def __init__(
        self,
        secret: SigningSecret,
        scheduler: PollScheduler,
        telemetry: WebhookTelemetry,
        owns: Callable[[str], bool],
        *,
        path: str = DEFAULT_PATH,
        listen_address: str | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        tolerance: float = DEFAULT_TOLERANCE_SECONDS,
        seen: SeenIds | None = None,
        latency: LatencyTracker | None = None,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        wall_clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        web: WebConfig | None = None,
    ) -> None:
        """Set up the receiver; nothing runs until ``start()``.

        With ``listen_address`` the receiver serves its endpoint on its own port
        (and ``route`` is empty), with ``web`` (TLS, basic auth) applied to that port; otherwise
        the app mounts ``route`` on the main server.
        """
        self._secret = secret
        self._scheduler = scheduler
        self._telemetry = telemetry
        self._owns = owns
        self.path = path
        self.listen_address = listen_address
        self.max_body_bytes = max_body_bytes
        self._tolerance = tolerance
        self._seen = seen if seen is not None else SeenIds()
        self._latency = latency if latency is not None else LatencyTracker()
        self._queue: queue.Queue[_Job | object] = queue.Queue(maxsize=queue_size)
        self._wall_clock = wall_clock
        self._monotonic = monotonic
        self._worker: threading.Thread | None = None
        self._server: HttpServer | None = None
        self._serving = False
        self._first_accepted = False
        if listen_address is not None:
            # Bound now, like the main server, so a taken port fails at start-up, not later.
            self._server = webhook_server(
                listen_address,
                self._own_route(),
                max_body_bytes=max_body_bytes,
                on_body_too_large=self.count_too_large,
                web=web,
            )

    def __repr__(self) -> str:
        """Describe the receiver without its secret."""
        return f"WebhookReceiver(path={self.path!r})"

    # --- HTTP side: runs on the server's request thread and never blocks --------------

    def receive(self, headers: Mapping[str, str], body: bytes) -> Response:
        """Answer one delivery (raw body, request headers); queue its event if it is new and valid."""
        received_at = self._monotonic()
        # The HTTP server already refused a declared Content-Length over its own limit; this is
        # the receiver's limit, which may be lower, checked on the body actually read.
        if len(body) > self.max_body_bytes:
            log.info("webhook rejected: body of %d bytes exceeds %d", len(body), self.max_body_bytes)
            self.count_too_large(self.path)
            return _TOO_LARGE
        try:
            signed = verify(self._secret, headers, body, now=self._wall_clock(), tolerance=self._tolerance)
        except VerificationError as error:
            log.info("webhook rejected: %s", error.reason.value)
            self._telemetry.count_webhook(OTHER_EVENT_TYPE, Result.INVALID_SIGNATURE)
            return _UNAUTHORIZED
        try:
            event = parse_event(body)
        except PayloadError as error:
            log.info("webhook %s rejected: %s", signed.message_id, error)
            self._telemetry.count_webhook(OTHER_EVENT_TYPE, Result.BAD_REQUEST)
            return Response(400, _TEXT, f"bad webhook payload: {error}\n".encode())
        label = event_type_label(event.event_type)
        if not self._seen.add(signed.message_id, received_at):
            log.debug("webhook %s is a duplicate; already processed", signed.message_id)
            self._telemetry.count_webhook(label, Result.DUPLICATE)
            return _DUPLICATE
        try:
            self._queue.put_nowait(_Job(event, received_at))
        except queue.Full:
            # Not remembered as seen, so Codat's retry is accepted once the worker catches up.
            self._seen.forget(signed.message_id)
            log.warning("webhook %s refused with 503: the dispatch queue is full", signed.message_id)
            return _BUSY
        if not self._first_accepted:
            # Once, so an operator setting up the Codat endpoint sees it work without debug logs.
            self._first_accepted = True
            log.info("first verified Codat webhook accepted (%s); webhooks are working", label)
        return _OK

    def count_too_large(self, path: str) -> None:
        """Count a delivery refused for its size (the HTTP server calls this for its own 413s)."""
        if path == self.path:
            self._telemetry.count_webhook(OTHER_EVENT_TYPE, Result.TOO_LARGE)

    def handle(self, request: Request) -> Response:
        """The HTTP server's handler for ``POST`` on the webhook path."""
        return self.receive(request.headers, request.body)

    @property
    def route(self) -> dict[tuple[str, str], Handler]:
        """``(method, path) → handler`` for the main HTTP server; empty when on its own listen address."""
        if self.listen_address is not None:
            return {}
        return self._own_route()

    def _own_route(self) -> dict[tuple[str, str], Handler]:
        return {("POST", self.path): self.handle}

    @property
    def url(self) -> str | None:
        """Base URL of the receiver's own listener (``None`` when it is on the main server)."""
        return self._server.url if self._server is not None else None

    # --- worker side ------------------------------------------------------------------

    def start(self) -> None:
        """Start the dispatch worker thread, and the own listener if configured (idempotent)."""
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(target=self._run, name="webhook-dispatch", daemon=True)
            self._worker.start()
        if self._server is not None and not self._serving:
            self._server.start()
            self._serving = True
            log.info("receiving Codat webhooks on %s%s", self._server.url, self.path)

    def stop(self, timeout: float = 5.0) -> None:
        """Close the own listener (if any), let the worker finish the queued events, then stop it."""
        if self._server is not None:
            self._server.stop()
            self._server = None
            self._serving = False
        worker = self._worker
        if worker is None:
            return
        self._queue.put(_STOP)
        worker.join(timeout)
        self._worker = None

    def wait_idle(self, timeout: float) -> bool:
        """Block until every queued event has been dispatched; False if ``timeout`` passed first."""
        deadline = self._monotonic() + timeout
        with self._queue.all_tasks_done:
            while self._queue.unfinished_tasks:
                remaining = deadline - self._monotonic()
                if remaining <= 0:
                    return False
                self._queue.all_tasks_done.wait(remaining)
        return True

    def on_snapshot(self, snapshot: Snapshot) -> None:
        """Observe webhook → metrics latency for companies this new snapshot shows freshly polled."""
        for seconds in self._latency.resolve(snapshot, self._monotonic()):
            self._telemetry.observe_webhook_latency(seconds)

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is _STOP:
                    return
                if isinstance(job, _Job):
                    self._dispatch(job)
            except Exception:
                # One bad event must not kill the worker; the next delivery still gets served.
                log.exception("webhook dispatch failed")
            finally:
                self._queue.task_done()

    def _dispatch(self, job: _Job) -> None:
        event = job.event
        label = event_type_label(event.event_type)
        if isinstance(event, ReadCompleted):
            if not self._owns(event.company_id):
                log.debug("webhook %s: company %s belongs to another shard", label, event.company_id)
                self._telemetry.count_webhook(label, Result.IGNORED)
                return
            for data_type, issues in event.validation_issues().items():
                self._telemetry.count_validation_issues(event.company_id, data_type, issues)
            self._latency.expect(event.company_id, job.received_at, self._scheduler.snapshot)
            # An event naming no data type says nothing narrower than "this company".
            self._scheduler.request_poll(event.company_id, POLL_REASON, event.data_type_names or None)
            # Debug, not info: a large account sends thousands of these a day.
            log.debug("webhook %s: polling company %s now", label, event.company_id)
        elif isinstance(event, ConnectionEvent | CompanyEvent):
            if not self._owns(event.company_id):
                self._telemetry.count_webhook(label, Result.IGNORED)
                return
            self._scheduler.request_poll(event.company_id, RELIST_REASON)
            log.info("webhook %s: re-listing company %s now", label, event.company_id)
        elif isinstance(event, RateLimitReached):
            self._scheduler.pause_until(event.expiry)
            log.warning(
                "webhook %s: Codat quota spent; pausing non-essential polling until %s",
                label,
                event.expiry.isoformat(),
            )
        elif isinstance(event, RateLimitReset):
            self._scheduler.resume()
            log.info("webhook %s: Codat quota reset; polling resumes", label)
        elif isinstance(event, OtherEvent):
            log.debug("webhook of type %r ignored", event.event_type)
            self._telemetry.count_webhook(label, Result.IGNORED)
            return
        self._telemetry.count_webhook(label, Result.PROCESSED)
