"""The process-wide self-metrics: names from the catalogue, values from what the exporter reports."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import generate_latest

from exporter.codat.models import RateLimitInfo
from exporter.metrics import TELEMETRY_METRICS, Telemetry


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
