"""Wires the exporter together: config → Codat client → scheduler → exposition and HTTP server.

``build_app`` only constructs; ``App.start`` starts the threads (HTTP server,
poll loop, webhook dispatch) and ``App.stop`` ends them in the reverse order.
``App.run_until_signal`` is what ``codat-exporter run`` calls: it serves until
SIGTERM or SIGINT, then shuts down gracefully and returns exit code 0.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import FrameType
from typing import Any, Final

from exporter.codat.auth import authorization_header
from exporter.codat.client import CodatClient
from exporter.collector.scheduler import Clock, Scheduler, utc_now
from exporter.collector.sharding import owns
from exporter.config.loading import ConfigError
from exporter.config.schema import Config
from exporter.exposition import ExpositionCache
from exporter.landing import LandingData
from exporter.metrics import Telemetry
from exporter.refresh.auto import AutoRefresher
from exporter.server import ExporterServer
from exporter.webhooks import WebhookReceiver, build_webhook_receiver, webhooks_enabled

log = logging.getLogger(__name__)

STOP_TIMEOUT: Final = 5.0
"""How long ``stop`` waits for the poll loop to finish its current request."""
REDACTED: Final = "[REDACTED]"


class SecretFilter(logging.Filter):
    """Replaces any configured secret that slips into a log record with ``[REDACTED]``.

    The client and config already keep secrets out of their messages; this is the
    last line of defence for whatever a third-party library might log.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        """Remember the secret strings to mask (empty ones are ignored)."""
        super().__init__()
        self._secrets = tuple(s for s in secrets if s and len(s) >= 4)

    def filter(self, record: logging.LogRecord) -> bool:
        """Mask secrets in the formatted message and traceback; always keeps the record."""
        if not self._secrets:
            return True
        message = record.getMessage()
        masked = self._mask(message)
        if masked != message:
            record.msg = masked
            record.args = None
        if record.exc_info and not record.exc_text:
            # An exception's text is as likely to echo a secret as a message; formatters use
            # ``exc_text`` when it is set, so the traceback is rendered once, masked.
            record.exc_text = self._mask(logging.Formatter().formatException(record.exc_info))
        return True

    def _mask(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and the exception, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as a JSON line."""
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            payload["exception"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(payload, ensure_ascii=False)


def setup_logging(level: str = "info", fmt: str = "text", secrets: Iterable[str] = ()) -> None:
    """Send logs to stderr in ``text`` or ``json`` lines at ``level``, with secrets masked."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(SecretFilter(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # urllib3 logs every retry with the full URL at debug; keep it at warning.
    logging.getLogger("urllib3").setLevel(logging.WARNING)


def config_secrets(config: Config) -> list[str]:
    """The secret values a config holds (for log masking), the key also as its Authorization form."""
    api_key = config.codat.api_key_value() or ""
    encoded = authorization_header(api_key).removeprefix("Basic ") if api_key else ""
    values = [api_key, encoded, config.webhooks.secret_value() or ""]
    return [v for v in values if v]


def build_client(config: Config, telemetry: Telemetry | None = None) -> CodatClient:
    """A Codat client from the ``codat`` and ``budget`` sections (raises ConfigError without a key)."""
    api_key = config.codat.api_key_value()
    if not api_key:
        raise ConfigError(
            [("codat.api_key", "required: set CODAT_API_KEY, CODAT_API_KEY_FILE or codat.api_key_file")]
        )
    return CodatClient(
        api_key,
        config.codat.base_url,
        connect_timeout=config.codat.connect_timeout,
        read_timeout=config.codat.read_timeout,
        max_retries=config.codat.max_retries,
        retry_max_elapsed=config.codat.retry_max_elapsed,
        requests_per_minute=config.budget.max_requests_per_minute,
        max_concurrency=config.budget.max_concurrency,
        observer=telemetry,
    )


@dataclass
class App:
    """A built exporter: its parts, and the threads that run them."""

    config: Config
    telemetry: Telemetry
    client: CodatClient
    scheduler: Scheduler
    cache: ExpositionCache
    server: ExporterServer
    refresher: AutoRefresher | None = None
    webhooks: WebhookReceiver | None = None
    on_stop: list[Callable[[], None]] = field(default_factory=list)
    """Extra clean-up run last by ``stop`` (e.g. the demo's simulator)."""
    _stop_event: threading.Event = field(default_factory=threading.Event)
    _poll_thread: threading.Thread | None = None
    _stopped: bool = False

    @property
    def url(self) -> str:
        """Base URL of the HTTP server (``http://127.0.0.1:PORT``)."""
        return self.server.url

    def start(self) -> None:
        """Start serving and polling (returns at once; everything runs on background threads)."""
        self.server.start()
        if self.webhooks is not None:
            self.webhooks.start()
        self._poll_thread = threading.Thread(
            target=self.scheduler.run_forever, args=(self._stop_event,), name="poll-loop", daemon=True
        )
        self._poll_thread.start()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop polling, webhooks and the server, and release connections; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        self._stop_event.set()
        self.scheduler.wake()
        self.scheduler.close(wait=False)  # the polls this cycle still has queued are dropped now
        if self._poll_thread is not None:
            self._poll_thread.join(timeout)
            if self._poll_thread.is_alive():
                log.warning("poll loop still busy after %.0fs; exiting anyway", timeout)
        if self.webhooks is not None:
            self.webhooks.stop(timeout)
        self.server.stop()
        if not self.busy:
            self.scheduler.close()  # wait for the polls in flight before closing the client
        self.client.close()
        for callback in self.on_stop:
            try:
                callback()
            except Exception:
                log.exception("clean-up step failed during shutdown")

    @property
    def busy(self) -> bool:
        """True while the poll loop is still inside a request (after ``stop`` gave up waiting)."""
        return self._poll_thread is not None and self._poll_thread.is_alive()

    def request_stop(self) -> None:
        """Ask ``run_until_signal`` to shut down (what SIGTERM does)."""
        self._stop_event.set()
        self.scheduler.wake()

    def run_until_signal(self) -> int:
        """Serve until SIGTERM/SIGINT, then shut down gracefully; returns the exit code (0)."""

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            log.info("received %s, shutting down", signal.Signals(signum).name)
            self.request_stop()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.start()
            log.info("codat-exporter is up: %s/ and %s/metrics", self.url, self.url)
            while not self._stop_event.wait(1.0):
                pass
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        log.info("stopped")
        return 0


def build_app(
    config: Config,
    *,
    telemetry: Telemetry | None = None,
    clock: Clock = utc_now,
    client: CodatClient | None = None,
) -> App:
    """Construct every part from ``config`` (nothing runs until ``App.start``).

    Raises ``ConfigError`` when no API key is configured, and ``OSError`` when
    the listen address cannot be bound.
    """
    telemetry = telemetry or Telemetry()
    client = client or build_client(config, telemetry)
    shard, total = config.sharding.shard, config.sharding.total_shards

    def owned(company_id: str) -> bool:
        return owns(company_id, shard, total)

    with_webhooks = webhooks_enabled(config.webhooks)
    scheduler = Scheduler(client, config, telemetry, clock=clock, webhooks_enabled=with_webhooks)
    refresher: AutoRefresher | None = None
    if config.auto_refresh.enabled:
        refresher = AutoRefresher(
            client,
            config.auto_refresh,
            telemetry,
            owns=owned,
            clock=clock,
            daily_request_budget=scheduler.daily_request_budget,
            on_queued=lambda company_id: scheduler.request_poll(company_id, "refresh"),
        )
        scheduler.set_refresher(refresher)
    cache = ExpositionCache(config.metrics.status_mode, registry=telemetry.registry)
    scheduler.on_snapshot(cache.update)
    receiver: WebhookReceiver | None = None
    if with_webhooks:
        receiver = build_webhook_receiver(config.webhooks, scheduler, telemetry, owned)
        scheduler.on_snapshot(receiver.on_snapshot)

    def landing() -> LandingData:
        return LandingData(
            snapshot=scheduler.snapshot,
            ready=scheduler.ready,
            shard=shard,
            total_shards=total,
            status_mode=config.metrics.status_mode,
        )

    server = ExporterServer(
        config.server.listen_address,
        cache,
        telemetry,
        ready=lambda: scheduler.ready,
        landing=landing,
        routes=receiver.route if receiver is not None else {},
        max_body_bytes=config.webhooks.max_body_bytes,
        on_body_too_large=receiver.count_too_large if receiver is not None else None,
    )
    return App(config, telemetry, client, scheduler, cache, server, refresher, receiver)
