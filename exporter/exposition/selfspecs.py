"""The exporter's own metrics: their specs and the label values known in advance.

They are few and process-wide (API requests, rate limits, poll durations, listing health and
progress, auto-refresh and webhook activity); ``selfmetrics.Telemetry`` keeps them in a
prometheus_client registry. The per-company families are in ``families``.
"""

from __future__ import annotations

from typing import Final

from exporter.exposition.spec import MetricSpec, MetricType

SYNC_DURATION_BUCKETS: Final = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0)
API_DURATION_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
POLL_DURATION_BUCKETS: Final = (0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0)
WEBHOOK_LATENCY_BUCKETS: Final = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

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
READ_VALIDATION_ISSUES = MetricSpec(
    "codat_read_validation_issues_total",
    MetricType.COUNTER,
    "Validation warnings (issues of type warning.validation) Codat reported in read.completed "
    "webhooks, by company and data type.",
    ("company_id", "data_type"),
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
LISTING_UP = MetricSpec(
    "codat_exporter_listing_up",
    MetricType.GAUGE,
    "1 if the most recent GET /companies listing succeeded, 0 if it failed or none has succeeded yet.",
)
LISTING_LAST_SUCCESS = MetricSpec(
    "codat_exporter_listing_last_success_timestamp_seconds",
    MetricType.GAUGE,
    "When the GET /companies listing last succeeded (absent if it never has).",
)
LISTING_FAILING = MetricSpec(
    "codat_exporter_listing_failing",
    MetricType.GAUGE,
    "1 for the reason the GET /companies listing is failing now; all 0 while it works.",
    ("reason",),
)
LISTING_FAILURE_REASONS: Final = (
    "unauthorized",
    "forbidden",
    "payment_required",
    "rate_limited",
    "server_error",
    "malformed_response",
    "connection_error",
    "other",
)
"""Every ``reason`` of ``codat_exporter_listing_failing``; each series is always present."""
COMPANIES_LISTED = MetricSpec(
    "codat_exporter_companies_listed",
    MetricType.GAUGE,
    "Companies of this shard in the last GET /companies listing.",
)
COMPANIES_POLLED = MetricSpec(
    "codat_exporter_companies_polled",
    MetricType.GAUGE,
    "Companies of the last listing that have been read at least once since start-up.",
)
DETECTION_LAG = MetricSpec(
    "codat_exporter_detection_lag_seconds",
    MetricType.GAUGE,
    "Age of the oldest change seen (lastSync moved, or a webhook) not yet read by a dataStatus poll; "
    "0 when none is waiting.",
)
CONFIG_RELOAD_SUCCESSFUL = MetricSpec(
    "codat_exporter_config_last_reload_successful",
    MetricType.GAUGE,
    "1 if the last configuration reload (start-up, SIGHUP or POST /-/reload) succeeded, else 0.",
)
CONFIG_RELOAD_SUCCESS_TIME = MetricSpec(
    "codat_exporter_config_last_reload_success_timestamp_seconds",
    MetricType.GAUGE,
    "When the configuration was last loaded successfully (start-up or reload), as Unix time.",
)
BUILD_INFO = MetricSpec(
    "codat_exporter_build_info",
    MetricType.GAUGE,
    "Always 1; carries the exporter's version and the Python version.",
    ("version", "python_version"),
)

# --- label values known in advance: their series exist at 0 from start-up -----------------

POLL_ERROR_REASONS: Final = (
    "rate_limited",
    "unauthorized",
    "forbidden",
    "payment_required",
    "not_found",
    "bad_request",
    "server_error",
    "malformed_response",
    "connection_error",
    "api_error",
    "unexpected",
)
"""The ``reason`` values of a failed company poll; a failed listing counts as ``companies_<reason>``."""
REFRESH_RESULTS: Final = (
    "queued",
    "already_in_progress",
    "dry_run",
    "skipped_budget",
    "rate_limited",
    "error",
)
"""The ``result`` values of ``codat_refresh_requests_total``."""
API_ENDPOINTS: Final = (
    "companies",
    "dataStatus",
    "history",
    "pullOperation",
    "refreshDataType",
    "refreshAll",
    "companySyncSettings",
    "profileSyncSettings",
    "connections",
)
"""The ``endpoint`` values of the Codat API self-metrics."""
API_PRESET_CODES: Final = ("429", "error")
"""``code`` values created at 0 for every endpoint, so error and rate-limit ratios exist from start-up."""
WEBHOOK_EVENT_TYPES: Final = (
    "read.completed",
    "read.completed.initial",
    "client.rateLimit.reached",
    "client.rateLimit.reset",
    "connection.created",
    "connection.connected",
    "connection.disconnected",
    "connection.reconnected",
    "connection.failed",
    "connection.deleted",
    "company.created",
    "company.deleted",
    "company.product.added",
    "company.product.removed",
    "other",
)
"""The ``event_type`` values of the webhook counter: Codat's fixed event names (the one list;
``exporter.webhooks.events`` derives its event types from it); every other type counts as ``other``."""
WEBHOOK_RESULTS: Final = (
    "processed",
    "duplicate",
    "ignored",
    "invalid_signature",
    "bad_request",
    "too_large",
)
"""The ``result`` values of the webhook counter."""

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
    READ_VALIDATION_ISSUES,
    WEBHOOK_LATENCY,
    SHARD_ORDINAL,
    TOTAL_SHARDS,
    LISTING_UP,
    LISTING_LAST_SUCCESS,
    LISTING_FAILING,
    COMPANIES_LISTED,
    COMPANIES_POLLED,
    DETECTION_LAG,
    CONFIG_RELOAD_SUCCESSFUL,
    CONFIG_RELOAD_SUCCESS_TIME,
    BUILD_INFO,
)
