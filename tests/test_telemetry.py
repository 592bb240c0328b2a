"""The process-wide self-metrics: names from the catalogue, values from what the exporter reports."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import get_args

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from exporter.codat import client, errors
from exporter.codat.models import RateLimitInfo
from exporter.collector import listing
from exporter.collector.poll import error_reason
from exporter.exposition.cache import ExpositionCache
from exporter.exposition.selfmetrics import Telemetry
from exporter.exposition.selfspecs import (
    API_ENDPOINTS,
    API_PRESET_CODES,
    API_REQUESTS,
    COMPANIES_LISTED,
    COMPANIES_POLLED,
    DETECTION_LAG,
    LISTING_FAILING,
    LISTING_FAILURE_REASONS,
    LISTING_LAST_SUCCESS,
    LISTING_UP,
    POLL_ERROR_REASONS,
    POLL_ERRORS,
    PULL_OPERATION_DURATION,
    REFRESH_REQUESTS,
    REFRESH_RESULTS,
    TELEMETRY_METRICS,
    WEBHOOK_EVENT_TYPES,
    WEBHOOK_RESULTS,
    WEBHOOKS_RECEIVED,
)
from exporter.refresh import auto
from exporter.refresh.actions import RefreshResult
from exporter.webhooks import events
from exporter.webhooks.receiver import Result


def test_every_catalogued_self_metric_is_served_without_created_series() -> None:
    telemetry = Telemetry()
    telemetry.on_request("companies", "200", 0.2)
    text = generate_latest(telemetry.registry).decode()
    for spec in TELEMETRY_METRICS:
        assert f"# TYPE {spec.name}" in text
    assert "_created" not in text


def test_a_429_is_counted_as_a_request_and_as_rate_limited() -> None:
    telemetry = Telemetry()
    telemetry.on_request("dataStatus", "429", 0.1)
    telemetry.on_request("dataStatus", "200", 0.1)
    value = telemetry.registry.get_sample_value
    assert value("codat_exporter_api_requests_total", {"endpoint": "dataStatus", "code": "429"}) == 1
    assert value("codat_exporter_api_requests_total", {"endpoint": "dataStatus", "code": "200"}) == 1
    assert value("codat_exporter_rate_limited_total") == 1


def test_rate_limit_headers_keep_their_last_reading() -> None:
    telemetry = Telemetry()
    reset = datetime(2026, 11, 24, tzinfo=UTC)
    telemetry.on_rate_limit(RateLimitInfo(9000, 8000, reset, observed_at=reset))
    telemetry.on_rate_limit(RateLimitInfo(None, 7999, None, observed_at=reset))
    value = telemetry.registry.get_sample_value
    assert value("codat_exporter_rate_limit_limit") == 9000
    assert value("codat_exporter_rate_limit_remaining") == 7999
    assert value("codat_exporter_rate_limit_reset_timestamp_seconds") == reset.timestamp()


def _samples(telemetry: Telemetry, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Every sample of ``name`` in the telemetry registry, by sorted labels."""
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in telemetry.registry.collect()
        for s in family.samples
        if s.name == name
    }


def test_counters_with_known_label_values_exist_at_zero_from_start_up() -> None:
    telemetry = Telemetry()
    errors = _samples(telemetry, POLL_ERRORS.name)
    assert {dict(k)["reason"] for k in errors} == {
        *POLL_ERROR_REASONS,
        *(f"companies_{r}" for r in POLL_ERROR_REASONS),
    }
    assert set(errors.values()) == {0}
    webhooks = _samples(telemetry, WEBHOOKS_RECEIVED.name)
    assert len(webhooks) == len(WEBHOOK_EVENT_TYPES) * len(WEBHOOK_RESULTS)
    api = _samples(telemetry, API_REQUESTS.name)
    assert {(dict(k)["endpoint"], dict(k)["code"]) for k in api} == {
        (e, c) for e in API_ENDPOINTS for c in API_PRESET_CODES
    }
    assert _samples(telemetry, REFRESH_REQUESTS.name) == {}
    telemetry.know_data_types(["invoices", "bills"])
    telemetry.know_data_types(["invoices"])  # idempotent
    refresh = _samples(telemetry, REFRESH_REQUESTS.name)
    assert len(refresh) == 2 * len(REFRESH_RESULTS)
    assert set(refresh.values()) == {0}


def test_listing_health_starts_down_and_follows_the_last_listing() -> None:
    telemetry = Telemetry()
    value = telemetry.registry.get_sample_value
    assert value(LISTING_UP.name) == 0
    assert value(LISTING_LAST_SUCCESS.name) is None  # absent until a listing succeeds
    assert {value(LISTING_FAILING.name, {"reason": r}) for r in LISTING_FAILURE_REASONS} == {0}
    telemetry.set_listing_failed("unauthorized")
    failing = {r: value(LISTING_FAILING.name, {"reason": r}) for r in LISTING_FAILURE_REASONS}
    assert [r for r, v in failing.items() if v == 1] == ["unauthorized"]
    assert sum(v or 0 for v in failing.values()) == 1
    telemetry.set_listing_failed("something_new")
    assert value(LISTING_FAILING.name, {"reason": "other"}) == 1
    assert value(LISTING_FAILING.name, {"reason": "unauthorized"}) == 0
    telemetry.set_listing_ok(1_700_000_000.0)
    assert value(LISTING_UP.name) == 1
    assert value(LISTING_LAST_SUCCESS.name) == 1_700_000_000.0
    assert {value(LISTING_FAILING.name, {"reason": r}) for r in LISTING_FAILURE_REASONS} == {0}


def test_progress_gauges() -> None:
    telemetry = Telemetry()
    telemetry.set_progress(2000, 150)
    telemetry.set_detection_lag(42.5)
    value = telemetry.registry.get_sample_value
    assert (value(COMPANIES_LISTED.name), value(COMPANIES_POLLED.name)) == (2000, 150)
    assert value(DETECTION_LAG.name) == 42.5
    telemetry.set_detection_lag(-1)  # a clock step backwards never shows a negative lag
    assert value(DETECTION_LAG.name) == 0


def test_process_platform_and_gc_collectors_are_served_unless_turned_off() -> None:
    text = generate_latest(Telemetry().registry).decode()
    for name in ("process_resident_memory_bytes", "python_info", "python_gc_collections_total"):
        assert f"# TYPE {name} " in text
    assert "python_info" not in generate_latest(Telemetry(process_metrics=False).registry).decode()


def test_label_vocabularies_match_what_the_exporter_emits() -> None:
    codat_errors = [
        cls
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, errors.CodatError) and cls is not errors.CodatError
    ]
    emitted = {error_reason(cls("x")) for cls in codat_errors} | {error_reason(errors.CodatError("x"))}
    emitted.add(error_reason(ValueError("x")))
    assert emitted <= set(POLL_ERROR_REASONS)
    assert {listing.listing_failure_reason(cls("x")) for cls in codat_errors} <= set(LISTING_FAILURE_REASONS)
    results = {v for k, v in vars(Result).items() if k.isupper()}
    assert results == set(WEBHOOK_RESULTS)
    assert {*events.LABELLED_EVENT_TYPES, events.OTHER_EVENT_TYPE} == set(WEBHOOK_EVENT_TYPES)
    assert {*get_args(RefreshResult), auto.DRY_RUN, auto.SKIPPED_BUDGET} == set(REFRESH_RESULTS)
    endpoints = {client.COMPANIES, client.DATA_STATUS, client.HISTORY, client.PULL_OPERATION}
    settings = {client.COMPANY_SYNC_SETTINGS, client.PROFILE_SYNC_SETTINGS, client.CONNECTIONS}
    assert {*endpoints, *settings, client.REFRESH_DATA_TYPE, client.REFRESH_ALL} == set(API_ENDPOINTS)


def test_pull_operation_histogram_renders_what_prometheus_client_would() -> None:
    telemetry = Telemetry(process_metrics=False)
    reference = CollectorRegistry()
    spec = PULL_OPERATION_DURATION
    histogram = Histogram(spec.name, spec.help, spec.labels, registry=reference, buckets=spec.buckets)
    for data_type, status, seconds in (
        ("invoices", "Complete", 4.0),
        ("invoices", "Complete", 5.0),  # on a bucket bound: counted in it
        ("bills", 'Fetch"Error\\', 9000.0),  # beyond every bound: +Inf only
        ("invoices", "Complete", 61.5),
    ):
        telemetry.observe_pull_operation(data_type, status, seconds)
        histogram.labels(data_type, status).observe(seconds)
    for openmetrics in (False, True):
        ours = ExpositionCache("default", telemetry.registry).body(openmetrics, False, 0.0)
        theirs = ExpositionCache("default", reference).body(openmetrics, False, 0.0)
        parse = parse_openmetrics if openmetrics else parse_text
        assert _family(parse(ours.decode()), spec.name) == _family(parse(theirs.decode()), spec.name)
    assert (
        telemetry.registry.get_sample_value(
            f"{spec.name}_bucket", {"data_type": "invoices", "status": "Complete", "le": "5.0"}
        )
        == 2
    )


def _family(
    families: Iterable[Metric], name: str
) -> tuple[str, str, set[tuple[str, tuple[tuple[str, str], ...], float]]]:
    (family,) = (f for f in families if f.name == name)
    samples = {(s.name, tuple(sorted(s.labels.items())), s.value) for s in family.samples}
    return family.type, family.documentation, samples


def test_a_lone_surrogate_from_the_api_cannot_break_the_self_metrics() -> None:
    """prometheus_client encodes strictly: one such label value would fail every later scrape."""
    telemetry = Telemetry(process_metrics=False)
    telemetry.know_data_types(["\udfffodd"])
    telemetry.count_refresh("bad\ud800", "error")
    telemetry.count_validation_issues("c-\ud800", "invoices\udfff", 2)
    text = generate_latest(telemetry.registry).decode()
    assert 'codat_refresh_requests_total{data_type="?odd",result="error"} 0.0' in text
    assert 'codat_refresh_requests_total{data_type="bad?",result="error"} 1.0' in text
    assert 'codat_read_validation_issues_total{company_id="c-?",data_type="invoices?"} 2.0' in text
