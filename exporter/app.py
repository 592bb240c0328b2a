"""Wires the exporter together: config → Codat client → scheduler → exposition and HTTP server.

``build_app`` only constructs; ``App.start`` starts the threads (HTTP server,
poll loop, webhook dispatch) and ``App.stop`` ends them in the reverse order.
``App.run_until_signal`` is what ``codat-exporter run`` calls: it serves until
SIGTERM or SIGINT, then shuts down gracefully and returns exit code 0. SIGHUP (and
``POST /-/reload`` when the lifecycle API is enabled) reloads the configuration: what can
change live is applied in place (``App.apply_config``), every company's state and counters
are kept, and an invalid file changes nothing (``exporter.config.reload``).
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Final

from exporter.codat.auth import authorization_header
from exporter.codat.client import CodatClient
from exporter.collector.poll import PLAIN_DATA_TYPE
from exporter.collector.readiness import ServedReadiness
from exporter.collector.scheduler import Scheduler
from exporter.collector.settings import collector_settings
from exporter.collector.sharding import owns
from exporter.collector.snapshot import CompanySnapshot, Snapshot
from exporter.common.clock import Clock, utc_now
from exporter.config.loading import ConfigError
from exporter.config.reload import ConfigReloader, ReloadResult
from exporter.config.schema import Config
from exporter.exposition import ExpositionCache
from exporter.exposition.families import company_catalogue
from exporter.exposition.selfmetrics import Telemetry
from exporter.http.endpoints import reload_endpoint
from exporter.http.exporter import ExporterServer
from exporter.http.landing import LandingData
from exporter.http.messages import Handler
from exporter.http.webconfig import WebConfig, load_web_config
from exporter.refresh.auto import AutoRefresher
from exporter.webhooks import WebhookReceiver, build_webhook_receiver, webhooks_enabled

log = logging.getLogger(__name__)

STOP_TIMEOUT: Final = 5.0
"""How long ``stop`` waits for the poll loop to finish its current request."""
GLOB_CHARACTERS: Final = frozenset("*?[")
_STOP: Final = "stop"
_RELOAD: Final = "reload"


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
        request_timeout=config.codat.request_timeout,
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
    reloader: ConfigReloader | None = None
    """Reloads the config (SIGHUP, ``POST /-/reload``); None when there is nothing to reload from."""
    _signals: queue.SimpleQueue[str] = field(default_factory=queue.SimpleQueue)
    """What signal handlers ask of the main loop: ``SimpleQueue.put`` is safe in a signal handler."""
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
        self._signals.put(_STOP)

    def reload_config(self) -> ReloadResult | None:
        """Reload the configuration now (None when this app has no reloader); thread-safe."""
        return self.reloader.reload() if self.reloader is not None else None

    def apply_config(self, config: Config, changed: Sequence[str]) -> None:
        """Apply what a reload may change live; every company's state and counters are kept.

        ``config`` already holds the running values of the settings that need a restart
        (``exporter.config.reload.keep_values``), so rebuilding from it changes only the rest:
        company and data-type selection, polling cadence, refresh rules and the log level.
        """
        self.scheduler.reconfigure(collector_settings(config, webhooks_enabled=self.webhooks is not None))
        if self.refresher is not None:
            self.refresher.reconfigure(config.auto_refresh)
        logging.getLogger().setLevel(config.logging.level.upper())
        self.telemetry.know_data_types(configured_data_types(config))
        self.config = config
        log.debug("applied live: %s", ", ".join(changed))

    def run_until_signal(self) -> int:
        """Serve until SIGTERM/SIGINT, then shut down gracefully; SIGHUP reloads the config; returns 0."""

        def on_stop_signal(signum: int, _frame: FrameType | None) -> None:
            self._signals.put(signal.Signals(signum).name)  # the main loop logs it and stops

        def on_hangup(_signum: int, _frame: FrameType | None) -> None:
            self._signals.put(_RELOAD)  # the reload itself runs on the main loop, not in the handler

        previous = {sig: signal.signal(sig, on_stop_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, on_hangup)
        try:
            self.start()
            log.info("codat-exporter is up: %s/ and %s/metrics", self.url, self.url)
            self._serve_signals()
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        log.info("stopped")
        return 0

    def _serve_signals(self) -> None:
        """The main loop: wait for a signal's request and act on it, until asked to stop."""
        while not self._stop_event.is_set():
            try:
                request = self._signals.get(timeout=1.0)
            except queue.Empty:
                continue
            if request == _RELOAD:
                log.info("received SIGHUP, reloading the configuration")
                self.reload_config()
            elif request != _STOP:
                log.info("received %s, shutting down", request)
                self.request_stop()


def configured_data_types(config: Config) -> set[str]:
    """The data types the config names literally (globs left out): in the allow-list or in refresh rules."""
    names = list(config.data_types.include)
    if config.auto_refresh.enabled:
        names += [name for rule in config.auto_refresh.rules for name in rule.data_types]
    excluded = set(config.data_types.exclude)
    return {n for n in names if not GLOB_CHARACTERS & set(n) and n not in excluded}


MAX_LEARNED_DATA_TYPES: Final = 200
"""Data types whose refresh counters are created at 0 before any refresh (Codat documents ~40)."""


class DataTypeLearner:
    """Tells ``Telemetry`` every data type a snapshot shows, once, so refresh counters start at 0.

    A snapshot listener: it looks only at companies whose snapshot changed since the last
    publication (an identity check), so a publication with nothing new costs one lookup a company.
    Only plain data type names count, and at most ``MAX_LEARNED_DATA_TYPES`` of them: Codat has a
    few dozen, and an API that invents thousands must not multiply the exporter's own series.
    """

    def __init__(self, telemetry: Telemetry, known: Iterable[str] = ()) -> None:
        """Start from the data types already ``known`` (those the config names)."""
        self._telemetry = telemetry
        self._known: set[str] = set(known)
        self._seen: dict[str, CompanySnapshot] = {}

    def on_snapshot(self, snapshot: Snapshot) -> None:
        """Create the counters of the data types this snapshot shows for the first time."""
        new: set[str] = set()
        seen = self._seen
        for cid, company in snapshot.companies.items():
            if seen.get(cid) is not company:
                new.update(
                    t for t in company.statuses if t not in self._known and PLAIN_DATA_TYPE.fullmatch(t)
                )
        self._seen = dict(snapshot.companies)
        new -= self._known
        room = MAX_LEARNED_DATA_TYPES - len(self._known)
        if new and room > 0:
            learned = sorted(new)[:room]
            self._known.update(learned)
            self._telemetry.know_data_types(learned)


def _auto_refresher(
    config: Config,
    client: CodatClient,
    telemetry: Telemetry,
    scheduler: Scheduler,
    owned: Callable[[str], bool],
    clock: Clock,
) -> AutoRefresher | None:
    """Auto-refresh as a snapshot listener of ``scheduler`` (None when it is off)."""
    if not config.auto_refresh.enabled:
        return None
    refresher = AutoRefresher(
        client,
        config.auto_refresh,
        telemetry,
        owns=owned,
        clock=clock,
        daily_request_budget=scheduler.daily_request_budget,
        on_queued=lambda company_id: scheduler.request_poll(company_id, "refresh"),
        spend_requests=scheduler.spend_requests,
        publish_attempts=scheduler.publish_refresh_attempts,
    )
    # Subscribed before the exposition cache: the snapshot the cache renders then already
    # shows this cycle's attempts, so one publication is rendered once.
    scheduler.on_snapshot(refresher.on_snapshot)
    return refresher


def build_app(
    config: Config,
    *,
    telemetry: Telemetry | None = None,
    clock: Clock = utc_now,
    client: CodatClient | None = None,
    load: Callable[[], Config] | None = None,
) -> App:
    """Construct every part from ``config`` (nothing runs until ``App.start``).

    ``load`` reads the config anew for a reload (SIGHUP, ``POST /-/reload``); without it a
    reload finds nothing changed.

    Raises ``ConfigError`` when no API key is configured, ``WebConfigError`` when the
    web configuration file is unusable, and ``OSError`` when a listen address cannot be bound.
    """
    telemetry = telemetry or Telemetry()
    client = client or build_client(config, telemetry)
    shard, total = config.sharding.shard, config.sharding.total_shards

    def owned(company_id: str) -> bool:
        return owns(company_id, shard, total)

    telemetry.set_config_reload(True, time.time())
    known_types = configured_data_types(config)
    telemetry.know_data_types(known_types)
    with_webhooks = webhooks_enabled(config.webhooks)
    scheduler = Scheduler(client, config, telemetry, clock=clock, webhooks_enabled=with_webhooks)
    scheduler.on_snapshot(DataTypeLearner(telemetry, known_types).on_snapshot)
    refresher = _auto_refresher(config, client, telemetry, scheduler, owned, clock)
    cache = ExpositionCache(
        config.metrics.status_mode,
        registry=telemetry.registry,
        catalogue=company_catalogue(config.metrics.company_tag_labels),
    )
    scheduler.on_snapshot(cache.update)
    # After the cache: ready only once /metrics serves the snapshot that covers every company.
    served = ServedReadiness()
    scheduler.on_snapshot(served.on_snapshot)
    web = load_web_config(config.server.web_config_file)
    receiver: WebhookReceiver | None = None
    if with_webhooks:
        receiver = build_webhook_receiver(config.webhooks, scheduler, telemetry, owned, web)
        scheduler.on_snapshot(receiver.on_snapshot)

    def on_result(result: ReloadResult) -> None:
        telemetry.set_config_reload(result.ok, time.time())

    # ``apply`` is the app's, set below once it exists (no reload can run before build_app returns).
    reloader = ConfigReloader(config, load or (lambda: reloader.current), _apply_nothing, on_result)
    landing = _landing_source(config, scheduler, telemetry, served)
    server = _build_server(config, cache, telemetry, served, landing, receiver, web, reloader)
    app = App(config, telemetry, client, scheduler, cache, server, refresher, receiver, reloader=reloader)
    reloader.apply = app.apply_config
    return app


def _build_server(
    config: Config,
    cache: ExpositionCache,
    telemetry: Telemetry,
    served: ServedReadiness,
    landing: Callable[[], LandingData],
    receiver: WebhookReceiver | None,
    web: WebConfig,
    reloader: ConfigReloader,
) -> ExporterServer:
    """The HTTP server: exporter endpoints, plus webhook and lifecycle routes when enabled."""
    routes: dict[tuple[str, str], Handler] = dict(receiver.route) if receiver is not None else {}
    if config.server.enable_lifecycle:
        routes[("POST", "/-/reload")] = reload_endpoint(lambda: _reload_problem(reloader.reload()))
    return ExporterServer(
        config.server.listen_address,
        cache,
        telemetry,
        ready=served.ready,
        landing=landing,
        routes=routes,
        max_body_bytes=config.webhooks.max_body_bytes,
        on_body_too_large=receiver.count_too_large if receiver is not None else None,
        web=web,
    )


def _landing_source(
    config: Config, scheduler: Scheduler, telemetry: Telemetry, served: ServedReadiness
) -> Callable[[], LandingData]:
    """What the landing page shows, read afresh on every request."""

    def landing() -> LandingData:
        listed, polled = telemetry.progress
        return LandingData(
            snapshot=scheduler.snapshot,
            ready=served.ready(),
            shard=config.sharding.shard,
            total_shards=config.sharding.total_shards,
            status_mode=config.metrics.status_mode,
            companies_listed=listed,
            companies_polled=polled,
        )

    return landing


def _apply_nothing(_config: Config, _changed: Sequence[str]) -> None:
    """The reloader's ``apply`` until the app exists."""


def _reload_problem(result: ReloadResult) -> str | None:
    """None for a reload that succeeded, else its problems on one line."""
    if result.ok:
        return None
    return "; ".join(f"{path}: {reason}" if path else reason for path, reason in result.problems)
