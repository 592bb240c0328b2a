"""The exporter's own metrics: ``Telemetry``, the registry that keeps them (specs in ``selfspecs``).

They are few and process-wide (API requests, rate limits, poll durations, auto-refresh and
webhook activity), so an ordinary prometheus_client registry keeps them; the per-company families
are in ``families``.
"""

from __future__ import annotations

import contextlib
import platform
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from exporter import __version__
from exporter.codat.models import RateLimitInfo
from exporter.exposition.histogram import LabelledHistogram
from exporter.exposition.registry import GroupedRegistry, Refresh
from exporter.exposition.selfspecs import (
    API_DURATION_BUCKETS,
    API_ENDPOINTS,
    API_PRESET_CODES,
    API_REQUEST_DURATION,
    API_REQUESTS,
    BUILD_INFO,
    COMPANIES_LISTED,
    COMPANIES_POLLED,
    CONFIG_RELOAD_SUCCESS_TIME,
    CONFIG_RELOAD_SUCCESSFUL,
    DETECTION_LAG,
    LISTING_FAILING,
    LISTING_FAILURE_REASONS,
    LISTING_LAST_SUCCESS,
    LISTING_UP,
    POLL_DURATION,
    POLL_DURATION_BUCKETS,
    POLL_ERROR_REASONS,
    POLL_ERRORS,
    PULL_OPERATION_DURATION,
    RATE_LIMIT_LIMIT,
    RATE_LIMIT_REMAINING,
    RATE_LIMIT_RESET,
    RATE_LIMITED,
    READ_VALIDATION_ISSUES,
    REFRESH_PENDING,
    REFRESH_REQUESTS,
    REFRESH_RESULTS,
    REQUEST_BUDGET,
    SHARD_ORDINAL,
    SYNC_DURATION_BUCKETS,
    TELEMETRY_METRICS,
    TOTAL_SHARDS,
    WEBHOOK_EVENT_TYPES,
    WEBHOOK_LATENCY,
    WEBHOOK_LATENCY_BUCKETS,
    WEBHOOK_RESULTS,
    WEBHOOKS_RECEIVED,
)
from exporter.exposition.spec import MetricSpec
from exporter.exposition.textformat import label_text

# prometheus_client would add a `_created` gauge beside every counter and histogram; in the
# classic text format those are separate series that no dashboard or alert reads, and they would
# double the self-metrics. Prometheus 2.x ignores them anyway.
disable_created_metrics()  # type: ignore[no-untyped-call]  # unannotated in prometheus_client

__all__ = [
    "API_DURATION_BUCKETS",
    "API_ENDPOINTS",
    "API_PRESET_CODES",
    "API_REQUESTS",
    "API_REQUEST_DURATION",
    "BUILD_INFO",
    "COMPANIES_LISTED",
    "COMPANIES_POLLED",
    "DETECTION_LAG",
    "LISTING_FAILING",
    "LISTING_FAILURE_REASONS",
    "LISTING_LAST_SUCCESS",
    "LISTING_UP",
    "POLL_DURATION",
    "POLL_DURATION_BUCKETS",
    "POLL_ERRORS",
    "POLL_ERROR_REASONS",
    "PULL_OPERATION_DURATION",
    "RATE_LIMITED",
    "RATE_LIMIT_LIMIT",
    "RATE_LIMIT_REMAINING",
    "RATE_LIMIT_RESET",
    "READ_VALIDATION_ISSUES",
    "REFRESH_PENDING",
    "REFRESH_REQUESTS",
    "REFRESH_RESULTS",
    "REQUEST_BUDGET",
    "SHARD_ORDINAL",
    "SYNC_DURATION_BUCKETS",
    "TELEMETRY_METRICS",
    "TOTAL_SHARDS",
    "WEBHOOKS_RECEIVED",
    "WEBHOOK_EVENT_TYPES",
    "WEBHOOK_LATENCY",
    "WEBHOOK_LATENCY_BUCKETS",
    "WEBHOOK_RESULTS",
    "Telemetry",
]


def _untouched() -> None:
    """The ``touch`` of a registry without groups: it is rendered on every scrape anyway."""


class _OptionalGauge(Collector):
    """A gauge without labels that is absent until first set (prometheus_client's shows 0)."""

    def __init__(self, spec: MetricSpec) -> None:
        self._spec = spec
        self._value: float | None = None

    def set(self, value: float) -> None:
        """Set the value (the series appears from now on)."""
        self._value = value

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """The family, with its one sample once set."""
        family = GaugeMetricFamily(self._spec.name, self._spec.help)
        if self._value is not None:
            family.add_metric([], self._value)
        yield family


def _counter(spec: MetricSpec, registry: CollectorRegistry) -> Counter:
    return Counter(spec.name, spec.help, spec.labels, registry=registry)


def _gauge(spec: MetricSpec, registry: CollectorRegistry) -> Gauge:
    return Gauge(spec.name, spec.help, spec.labels, registry=registry)


def _histogram(spec: MetricSpec, registry: CollectorRegistry) -> Histogram:
    return Histogram(spec.name, spec.help, spec.labels, registry=registry, buckets=spec.buckets)


class Telemetry:
    """The exporter's process-wide self-metrics; thread-safe, one instance per process.

    It implements ``exporter.codat.observer.RequestObserver``, so the Codat client
    reports every HTTP attempt and rate-limit reading straight into it. Every labelled series
    whose label values are known in advance exists at 0 from start-up, so ``rate()`` and ratios
    work before the first event.

    The metrics are created in groups of ``registry`` (``registry.GroupedRegistry``), each rendered
    for /metrics again only after it changed: **every write method ends by calling its group's
    ``_touch_*``**, or its change would not show until another write to that group. Adding a
    self-metric = its spec in ``selfspecs``, its creation in one of the groups below, a write
    method that touches that group, and a test.
    """

    def __init__(self, registry: CollectorRegistry | None = None, *, process_metrics: bool = True) -> None:
        """Create every self-metric in ``registry`` (a fresh ``GroupedRegistry`` by default).

        ``process_metrics`` adds prometheus_client's process, platform and GC collectors
        (``process_*``, ``python_info``, ``python_gc_*``).
        """
        self.registry = registry if registry is not None else GroupedRegistry()
        r = self.registry
        self._pull_duration = LabelledHistogram(PULL_OPERATION_DURATION)
        with self._group(Refresh.ON_CHANGE, self._pull_duration.exposition) as self._touch_pulls:
            r.register(self._pull_duration)
        # Written on every Codat request: rendered at most once a second, not on every scrape.
        with self._group(Refresh.ON_CHANGE_PER_SECOND) as self._touch_api:
            self._api_requests = _counter(API_REQUESTS, r)
            self._api_duration = _histogram(API_REQUEST_DURATION, r)
            self._rate_limited = _counter(RATE_LIMITED, r)
            self._rate_limit_remaining = _gauge(RATE_LIMIT_REMAINING, r)
            self._rate_limit_limit = _gauge(RATE_LIMIT_LIMIT, r)
            self._rate_limit_reset = _gauge(RATE_LIMIT_RESET, r)
        with self._group(Refresh.ON_CHANGE) as self._touch_events:
            self._refresh_requests = _counter(REFRESH_REQUESTS, r)
            self._poll_duration = _histogram(POLL_DURATION, r)
            self._poll_errors = _counter(POLL_ERRORS, r)
            self._webhooks = _counter(WEBHOOKS_RECEIVED, r)
            self._validation_issues = _counter(READ_VALIDATION_ISSUES, r)
            self._webhook_latency = _histogram(WEBHOOK_LATENCY, r)
        with self._group(Refresh.ON_CHANGE) as self._touch_state:
            self._refresh_pending = _gauge(REFRESH_PENDING, r)
            self._request_budget = _gauge(REQUEST_BUDGET, r)
            self._shard = _gauge(SHARD_ORDINAL, r)
            self._total_shards = _gauge(TOTAL_SHARDS, r)
            self._build_info = _gauge(BUILD_INFO, r)
            self._listing_up = _gauge(LISTING_UP, r)
            self._listing_last_success = _OptionalGauge(LISTING_LAST_SUCCESS)
            r.register(self._listing_last_success)
            self._listing_failing = _gauge(LISTING_FAILING, r)
            self._companies_listed = _gauge(COMPANIES_LISTED, r)
            self._companies_polled = _gauge(COMPANIES_POLLED, r)
            self._detection_lag = _gauge(DETECTION_LAG, r)
            self._reload_ok = _gauge(CONFIG_RELOAD_SUCCESSFUL, r)
            self._reload_success_time = _gauge(CONFIG_RELOAD_SUCCESS_TIME, r)
        self._progress = (0, 0)
        self._build_info.labels(__version__, platform.python_version()).set(1)
        self._shard.set(0)
        self._total_shards.set(1)
        self._preset()
        if process_metrics:  # the registry's live group: rendered at most once per second
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
            GCCollector(registry=r)

    @contextlib.contextmanager
    def _group(
        self, refresh: Refresh, render: Callable[[bool], bytes] | None = None
    ) -> Iterator[Callable[[], None]]:
        """Metrics created in this block form one group of the registry; yields its ``touch``.

        Every write method touches the group it wrote to, after the write (a render that read the
        version before the touch is then rendered again), so a scrape renders a group again only
        when it changed (see ``registry.Refresh``).
        """
        r = self.registry
        if not isinstance(r, GroupedRegistry):
            yield _untouched
            return
        group = r.add_group(refresh, render)
        with r.grouped(group):
            yield group.touch

    def _preset(self) -> None:
        """Create the series whose label values are known in advance, at 0."""
        for reason in POLL_ERROR_REASONS:
            self._poll_errors.labels(reason)
            self._poll_errors.labels("companies_" + reason)
        for reason in LISTING_FAILURE_REASONS:
            self._listing_failing.labels(reason).set(0)
        for endpoint in API_ENDPOINTS:
            for code in API_PRESET_CODES:
                self._api_requests.labels(endpoint, code)
        for event_type in WEBHOOK_EVENT_TYPES:
            for result in WEBHOOK_RESULTS:
                self._webhooks.labels(event_type, result)

    def know_data_types(self, data_types: Iterable[str]) -> None:
        """Create ``codat_refresh_requests_total`` at 0 for every result of each of ``data_types``.

        Call it with the data types configured or seen (again with new ones: it is idempotent).
        """
        for data_type in data_types:
            for result in REFRESH_RESULTS:
                self._refresh_requests.labels(label_text(data_type), result)

        # RequestObserver
        self._touch_events()

    def on_request(self, endpoint: str, code: str, duration_seconds: float) -> None:
        """Count one HTTP attempt to Codat and observe its duration."""
        self._api_requests.labels(endpoint, code).inc()
        self._api_duration.labels(endpoint).observe(duration_seconds)
        if code == "429":
            self._rate_limited.inc()
        self._touch_api()

    def on_rate_limit(self, info: RateLimitInfo) -> None:
        """Record the last ``X-Rate-Limit-*`` figures seen."""
        if info.remaining is not None:
            self._rate_limit_remaining.set(info.remaining)
        if info.limit is not None:
            self._rate_limit_limit.set(info.limit)
        if info.reset is not None:
            self._rate_limit_reset.set(info.reset.timestamp())
        self._touch_api()

    def observe_poll_cycle(self, duration_seconds: float) -> None:
        """Observe the duration of one full poll cycle."""
        self._poll_duration.observe(duration_seconds)
        self._touch_events()

    def count_poll_error(self, reason: str) -> None:
        """Count one failed company poll (``reason``: one of ``POLL_ERROR_REASONS``; a failed listing
        is ``companies_<reason>``)."""
        self._poll_errors.labels(reason).inc()
        self._touch_events()

    def observe_pull_operation(self, data_type: str, status: str, duration_seconds: float) -> None:
        """Observe requested→completed of a pull operation that just reached a terminal status."""
        self._pull_duration.observe((data_type, status), duration_seconds)
        self._touch_pulls()

    def count_refresh(self, data_type: str, result: str) -> None:
        """Count one refresh decision or request by its result."""
        self._refresh_requests.labels(label_text(data_type), result).inc()
        self._touch_events()

    def set_refresh_pending(self, pending: int) -> None:
        """Set how many refreshes this exporter queued are still running."""
        self._refresh_pending.set(pending)
        self._touch_state()

    def set_request_budget(self, requests_per_day: float) -> None:
        """Publish the daily request budget this exporter keeps to."""
        self._request_budget.set(requests_per_day)
        self._touch_state()

    def count_webhook(self, event_type: str, result: str) -> None:
        """Count one webhook delivery by event type and result."""
        self._webhooks.labels(label_text(event_type), result).inc()
        self._touch_events()

    def count_validation_issues(self, company_id: str, data_type: str, issues: int) -> None:
        """Count ``warning.validation`` issues a read.completed webhook reported for one pair."""
        self._validation_issues.labels(label_text(company_id), label_text(data_type)).inc(issues)
        self._touch_events()

    def observe_webhook_latency(self, seconds: float) -> None:
        """Observe the time from a webhook's receipt to the updated metrics."""
        self._webhook_latency.observe(seconds)
        self._touch_events()

    def set_shard(self, shard: int, total_shards: int) -> None:
        """Publish which shard of how many this process serves."""
        self._shard.set(shard)
        self._total_shards.set(total_shards)
        self._touch_state()

    def set_listing_ok(self, at: float) -> None:
        """The GET /companies listing succeeded at ``at`` (Unix time): up, no failure reason."""
        self._listing_up.set(1)
        self._listing_last_success.set(at)
        for reason in LISTING_FAILURE_REASONS:
            self._listing_failing.labels(reason).set(0)
        self._touch_state()

    def set_listing_failed(self, reason: str) -> None:
        """The GET /companies listing failed for ``reason`` (unknown reasons count as ``other``)."""
        active = reason if reason in LISTING_FAILURE_REASONS else "other"
        self._listing_up.set(0)
        for known in LISTING_FAILURE_REASONS:
            self._listing_failing.labels(known).set(1 if known == active else 0)
        self._touch_state()

    def set_progress(self, listed: int, polled: int) -> None:
        """Publish how many companies the last listing gave this shard, and how many were read since start."""
        self._progress = (listed, polled)
        self._companies_listed.set(listed)
        self._companies_polled.set(polled)
        self._touch_state()

    @property
    def progress(self) -> tuple[int, int]:
        """The last ``set_progress`` figures: (companies listed, companies polled since start)."""
        return self._progress

    def set_config_reload(self, ok: bool, at: float) -> None:
        """Record a configuration load at Unix time ``at``: its success, and its time when it succeeded."""
        self._reload_ok.set(1 if ok else 0)
        if ok:
            self._reload_success_time.set(at)
        self._touch_state()

    def set_detection_lag(self, seconds: float) -> None:
        """Publish the age of the oldest change not yet read (0 when none is waiting)."""
        self._detection_lag.set(max(0.0, seconds))
        self._touch_state()
