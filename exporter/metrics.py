"""The metric catalogue: every metric the exporter serves is named here and nowhere else.

Two kinds of metric live here:

* per-company series (freshness, status, pull-operation counters, company info,
  connection status, company health). They can number in the millions, so they
  are rendered from the poll snapshot into pre-built exposition bytes by
  ``exporter.exposition``; this module only gives their names, types, HELP and
  labels.
* process-wide self-metrics (API requests, rate limits, poll durations,
  auto-refresh and webhook activity). They are few, and ``Telemetry`` keeps them
  in an ordinary prometheus_client registry.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

from exporter import __version__
from exporter.codat.models import RateLimitInfo


class MetricType(StrEnum):
    """Prometheus metric types used by the catalogue."""

    GAUGE = "gauge"
    COUNTER = "counter"
    HISTOGRAM = "histogram"


# prometheus_client would add a `_created` gauge beside every counter and histogram; in the
# classic text format those are separate series that no dashboard or alert reads, and they would
# double the self-metrics. Prometheus 2.x ignores them anyway.
disable_created_metrics()  # type: ignore[no-untyped-call]  # unannotated in prometheus_client

CACHED: Final = " Cached from background polls of the Codat API, not read at scrape time."


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """Name, type, HELP text and label names of one metric family."""

    name: str
    type: MetricType
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()

    @property
    def family(self) -> str:
        """The family name: the name without ``_total`` for counters (OpenMetrics TYPE line)."""
        if self.type is MetricType.COUNTER and self.name.endswith("_total"):
            return self.name.removesuffix("_total")
        return self.name


SYNC_DURATION_BUCKETS: Final = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0)
API_DURATION_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
POLL_DURATION_BUCKETS: Final = (0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0)
WEBHOOK_LATENCY_BUCKETS: Final = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# --- per-company series, rendered from the snapshot -------------------------------

DATA_LAST_SUCCESSFUL_SYNC = MetricSpec(
    "codat_data_last_successful_sync_timestamp_seconds",
    MetricType.GAUGE,
    "Unix time of the last successful sync of a company's data type (absent if it never synced)." + CACHED,
    ("company_id", "data_type"),
)
DATA_SECONDS_SINCE_SYNC = MetricSpec(
    "codat_data_seconds_since_last_successful_sync",
    MetricType.GAUGE,
    "Seconds from the last successful sync of a company's data type to this scrape; keeps rising "
    "if polling stalls." + CACHED,
    ("company_id", "data_type"),
)
DATA_STATUS = MetricSpec(
    "codat_data_status",
    MetricType.GAUGE,
    "Current sync status of a company's data type, one-hot: the series of the current status is 1 "
    '(statuses outside the configured set, and never-synced types, are status="Other").' + CACHED,
    ("company_id", "data_type", "status"),
)
PULL_OPERATIONS = MetricSpec(
    "codat_pull_operations_total",
    MetricType.COUNTER,
    "Pull operations (syncs) that reached a terminal status, each counted once." + CACHED,
    ("company_id", "data_type", "status"),
)
PULL_OPERATIONS_IN_PROGRESS = MetricSpec(
    "codat_pull_operations_in_progress",
    MetricType.GAUGE,
    "Pull operations of a company's data type that are queued or running." + CACHED,
    ("company_id", "data_type"),
)
COMPANY_INFO = MetricSpec(
    "codat_company_info",
    MetricType.GAUGE,
    "Always 1; carries a company's name, platforms and tags for joins on company_id." + CACHED,
    ("company_id", "company_name", "platform", "tags"),
)
CONNECTION_STATUS = MetricSpec(
    "codat_connection_status",
    MetricType.GAUGE,
    "Status of a company's data connection, one-hot over PendingAuth, Linked, Unlinked, "
    "Deauthorized and Other." + CACHED,
    ("company_id", "connection_id", "platform", "status"),
)
COMPANY_UP = MetricSpec(
    "codat_exporter_company_up",
    MetricType.GAUGE,
    "1 if the last poll of this company succeeded, 0 if it failed (its other values are then the "
    "last good ones).",
    ("company_id",),
)
COMPANY_LAST_POLL_SUCCESS = MetricSpec(
    "codat_exporter_last_poll_success_timestamp_seconds",
    MetricType.GAUGE,
    "Unix time of the last successful poll of this company: how old its cached values are.",
    ("company_id",),
)
REFRESH_LAST_ATTEMPT = MetricSpec(
    "codat_refresh_last_attempt_timestamp_seconds",
    MetricType.GAUGE,
    "Unix time of the last auto-refresh attempt for a company's data type.",
    ("company_id", "data_type"),
)

SNAPSHOT_METRICS: Final[tuple[MetricSpec, ...]] = (
    DATA_LAST_SUCCESSFUL_SYNC,
    DATA_SECONDS_SINCE_SYNC,
    DATA_STATUS,
    PULL_OPERATIONS,
    PULL_OPERATIONS_IN_PROGRESS,
    COMPANY_INFO,
    CONNECTION_STATUS,
    COMPANY_UP,
    COMPANY_LAST_POLL_SUCCESS,
    REFRESH_LAST_ATTEMPT,
)

# --- process-wide self-metrics, kept by Telemetry ---------------------------------

PULL_OPERATION_DURATION = MetricSpec(
    "codat_pull_operation_duration_seconds",
    MetricType.HISTOGRAM,
    "Time from requested to completed of pull operations that finished.",
    ("data_type", "status"),
    SYNC_DURATION_BUCKETS,
)
REFRESH_REQUESTS = MetricSpec(
    "codat_refresh_requests_total",
    MetricType.COUNTER,
    "Refresh decisions and requests by result: queued, already_in_progress, dry_run, "
    "skipped_budget, rate_limited, error.",
    ("data_type", "result"),
)
REFRESH_PENDING = MetricSpec(
    "codat_refresh_pending",
    MetricType.GAUGE,
    "Refreshes this exporter queued whose sync has not finished yet.",
)
POLL_DURATION = MetricSpec(
    "codat_exporter_poll_duration_seconds",
    MetricType.HISTOGRAM,
    "Duration of one full poll cycle over this shard's companies.",
    (),
    POLL_DURATION_BUCKETS,
)
POLL_ERRORS = MetricSpec(
    "codat_exporter_poll_errors_total",
    MetricType.COUNTER,
    "Company polls that failed, by reason.",
    ("reason",),
)
API_REQUESTS = MetricSpec(
    "codat_exporter_api_requests_total",
    MetricType.COUNTER,
    'HTTP requests made to the Codat API, by endpoint and status code (code="error" for no response).',
    ("endpoint", "code"),
)
API_REQUEST_DURATION = MetricSpec(
    "codat_exporter_api_request_duration_seconds",
    MetricType.HISTOGRAM,
    "Duration of HTTP requests to the Codat API.",
    ("endpoint",),
    API_DURATION_BUCKETS,
)
RATE_LIMITED = MetricSpec(
    "codat_exporter_rate_limited_total",
    MetricType.COUNTER,
    "Responses with status 429 (rate limited) from the Codat API.",
)
RATE_LIMIT_REMAINING = MetricSpec(
    "codat_exporter_rate_limit_remaining",
    MetricType.GAUGE,
    "Requests left in Codat's daily quota, from the last X-Rate-Limit-Remaining header seen.",
)
RATE_LIMIT_LIMIT = MetricSpec(
    "codat_exporter_rate_limit_limit",
    MetricType.GAUGE,
    "Size of Codat's daily quota, from the last X-Rate-Limit-Limit header seen.",
)
RATE_LIMIT_RESET = MetricSpec(
    "codat_exporter_rate_limit_reset_timestamp_seconds",
    MetricType.GAUGE,
    "Unix time at which Codat's quota resets, from the last X-Rate-Limit-Reset header seen.",
)
REQUEST_BUDGET = MetricSpec(
    "codat_exporter_request_budget_per_day",
    MetricType.GAUGE,
    "Requests per day this exporter allows itself to spend (its configured share of the quota).",
)
WEBHOOKS_RECEIVED = MetricSpec(
    "codat_exporter_webhooks_received_total",
    MetricType.COUNTER,
    "Webhook deliveries received, by event type and result (processed, duplicate, ignored, "
    "invalid_signature, bad_request, too_large).",
    ("event_type", "result"),
)
WEBHOOK_LATENCY = MetricSpec(
    "codat_exporter_webhook_to_update_seconds",
    MetricType.HISTOGRAM,
    "Time from receiving a webhook to the metrics reflecting the company's new data status.",
    (),
    WEBHOOK_LATENCY_BUCKETS,
)
SHARD_ORDINAL = MetricSpec(
    "codat_exporter_shard_ordinal",
    MetricType.GAUGE,
    "The shard this exporter serves (0-based).",
)
TOTAL_SHARDS = MetricSpec(
    "codat_exporter_total_shards",
    MetricType.GAUGE,
    "The number of shards the companies are split across.",
)
BUILD_INFO = MetricSpec(
    "codat_exporter_build_info",
    MetricType.GAUGE,
    "Always 1; carries the exporter's version and the Python version.",
    ("version", "python_version"),
)

TELEMETRY_METRICS: Final[tuple[MetricSpec, ...]] = (
    PULL_OPERATION_DURATION,
    REFRESH_REQUESTS,
    REFRESH_PENDING,
    POLL_DURATION,
    POLL_ERRORS,
    API_REQUESTS,
    API_REQUEST_DURATION,
    RATE_LIMITED,
    RATE_LIMIT_REMAINING,
    RATE_LIMIT_LIMIT,
    RATE_LIMIT_RESET,
    REQUEST_BUDGET,
    WEBHOOKS_RECEIVED,
    WEBHOOK_LATENCY,
    SHARD_ORDINAL,
    TOTAL_SHARDS,
    BUILD_INFO,
)

ALL_METRICS: Final[tuple[MetricSpec, ...]] = SNAPSHOT_METRICS + TELEMETRY_METRICS


def _counter(spec: MetricSpec, registry: CollectorRegistry) -> Counter:
    return Counter(spec.name, spec.help, spec.labels, registry=registry)


def _gauge(spec: MetricSpec, registry: CollectorRegistry) -> Gauge:
    return Gauge(spec.name, spec.help, spec.labels, registry=registry)


def _histogram(spec: MetricSpec, registry: CollectorRegistry) -> Histogram:
    return Histogram(spec.name, spec.help, spec.labels, registry=registry, buckets=spec.buckets)


class Telemetry:
    """The exporter's process-wide self-metrics; thread-safe, one instance per process.

    It implements ``exporter.codat.observer.RequestObserver``, so the Codat client
    reports every HTTP attempt and rate-limit reading straight into it.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        """Create every self-metric in ``registry`` (a fresh private registry by default)."""
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self._pull_duration = _histogram(PULL_OPERATION_DURATION, r)
        self._refresh_requests = _counter(REFRESH_REQUESTS, r)
        self._refresh_pending = _gauge(REFRESH_PENDING, r)
        self._poll_duration = _histogram(POLL_DURATION, r)
        self._poll_errors = _counter(POLL_ERRORS, r)
        self._api_requests = _counter(API_REQUESTS, r)
        self._api_duration = _histogram(API_REQUEST_DURATION, r)
        self._rate_limited = _counter(RATE_LIMITED, r)
        self._rate_limit_remaining = _gauge(RATE_LIMIT_REMAINING, r)
        self._rate_limit_limit = _gauge(RATE_LIMIT_LIMIT, r)
        self._rate_limit_reset = _gauge(RATE_LIMIT_RESET, r)
        self._request_budget = _gauge(REQUEST_BUDGET, r)
        self._webhooks = _counter(WEBHOOKS_RECEIVED, r)
        self._webhook_latency = _histogram(WEBHOOK_LATENCY, r)
        self._shard = _gauge(SHARD_ORDINAL, r)
        self._total_shards = _gauge(TOTAL_SHARDS, r)
        self._build_info = _gauge(BUILD_INFO, r)
        self._build_info.labels(__version__, platform.python_version()).set(1)
        self._shard.set(0)
        self._total_shards.set(1)

    # RequestObserver
    def on_request(self, endpoint: str, code: str, duration_seconds: float) -> None:
        """Count one HTTP attempt to Codat and observe its duration."""
        self._api_requests.labels(endpoint, code).inc()
        self._api_duration.labels(endpoint).observe(duration_seconds)
        if code == "429":
            self._rate_limited.inc()

    def on_rate_limit(self, info: RateLimitInfo) -> None:
        """Record the last ``X-Rate-Limit-*`` figures seen."""
        if info.remaining is not None:
            self._rate_limit_remaining.set(info.remaining)
        if info.limit is not None:
            self._rate_limit_limit.set(info.limit)
        if info.reset is not None:
            self._rate_limit_reset.set(info.reset.timestamp())

    def observe_poll_cycle(self, duration_seconds: float) -> None:
        """Observe the duration of one full poll cycle."""
        self._poll_duration.observe(duration_seconds)

    def count_poll_error(self, reason: str) -> None:
        """Count one failed company poll (reason: a short, bounded word such as ``server_error``)."""
        self._poll_errors.labels(reason).inc()

    def observe_pull_operation(self, data_type: str, status: str, duration_seconds: float) -> None:
        """Observe requested→completed of a pull operation that just reached a terminal status."""
        self._pull_duration.labels(data_type, status).observe(duration_seconds)

    def count_refresh(self, data_type: str, result: str) -> None:
        """Count one refresh decision or request by its result."""
        self._refresh_requests.labels(data_type, result).inc()

    def set_refresh_pending(self, pending: int) -> None:
        """Set how many refreshes this exporter queued are still running."""
        self._refresh_pending.set(pending)

    def set_request_budget(self, requests_per_day: float) -> None:
        """Publish the daily request budget this exporter keeps to."""
        self._request_budget.set(requests_per_day)

    def count_webhook(self, event_type: str, result: str) -> None:
        """Count one webhook delivery by event type and result."""
        self._webhooks.labels(event_type, result).inc()

    def observe_webhook_latency(self, seconds: float) -> None:
        """Observe the time from a webhook's receipt to the updated metrics."""
        self._webhook_latency.observe(seconds)

    def set_shard(self, shard: int, total_shards: int) -> None:
        """Publish which shard of how many this process serves."""
        self._shard.set(shard)
        self._total_shards.set(total_shards)
