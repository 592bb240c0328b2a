"""Webhooks end to end: a simulated Codat sync completes, its signed event reaches the exporter, and
/metrics shows the new sync long before the next poll would have."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from exporter.app import App, build_app
from exporter.config.loading import load_config
from exporter.exposition.families import DATA_LAST_SUCCESSFUL_SYNC
from exporter.exposition.selfspecs import WEBHOOK_LATENCY, WEBHOOKS_RECEIVED
from exporter.simulator import FakeClock, Scenario, Simulator
from tests.support.tools import free_port
from tests.support.waiting import wait_until
from tests.support.webhooks import SECRET_TEXT, forged, post


@dataclass
class Stack:
    sim: Simulator
    clock: FakeClock
    app: App

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        body = requests.get(self.app.url + "/metrics", timeout=10).text
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(body)
            for sample in family.samples
        }

    def last_sync(self, company_id: str, data_type: str) -> float | None:
        labels = (("company_id", company_id), ("data_type", data_type))
        return self.metrics().get((DATA_LAST_SUCCESSFUL_SYNC.name, labels))


@pytest.fixture
def stack(fake_clock: FakeClock) -> Iterator[Stack]:
    sim = Simulator(Scenario.generated(companies=5, data_types=3, seed=7), api_key="demo", clock=fake_clock)
    sim_server = sim.serve(host="127.0.0.1", port=0)
    config = load_config(
        None,
        env={"CODAT_WEBHOOK_SECRET": SECRET_TEXT},
        overrides={
            "codat.base_url": sim_server.url,
            "codat.api_key": "demo",
            "polling.interval": "1h",  # no poll would notice the sync within the test
            "server.listen_address": f"127.0.0.1:{free_port()}",
            "webhooks.max_body_bytes": 4096,
        },
    )
    app = build_app(config)
    app.start()
    try:
        sim.configure_webhooks(app.url + config.webhooks.path, SECRET_TEXT)
        wait_until(lambda: requests.get(app.url + "/readyz", timeout=5).status_code == 200, "first poll")
        yield Stack(sim, fake_clock, app)
    finally:
        app.stop()
        sim.close()
        sim_server.close()


def test_completed_sync_shows_in_metrics_via_webhook_before_any_poll(stack: Stack) -> None:
    company_id = stack.sim.company_ids[0]
    data_type = sorted(stack.sim.data_status(company_id))[0]
    before = stack.last_sync(company_id, data_type)

    stack.clock.advance(3600)
    stack.sim.queue_sync(company_id, data_type, outcome="Complete")
    stack.sim.complete_syncs_now(company_id)
    expected = stack.clock.now().timestamp()

    wait_until(lambda: stack.last_sync(company_id, data_type) == pytest.approx(expected), "the new sync time")
    assert before != pytest.approx(expected)
    # No change-detection cycle ran (1 h interval): the webhook's targeted poll did it.
    assert stack.sim.count_requests("companies") == 1
    assert stack.sim.count_requests("dataStatus", company_id) == 2
    processed = (("event_type", "read.completed"), ("result", "processed"))
    # Counted right after the poll was requested, so possibly a moment after the poll shows.
    wait_until(
        lambda: stack.metrics().get((WEBHOOKS_RECEIVED.name, processed), 0) >= 1, "the processed count"
    )
    wait_until(
        lambda: stack.metrics().get((WEBHOOK_LATENCY.name + "_count", ()), 0) >= 1,
        "the webhook latency observation",
    )


def test_forged_event_changes_nothing(stack: Stack) -> None:
    company_id = stack.sim.company_ids[0]
    body = b'{"eventType":"read.completed","payload":{"referenceCompany":{"id":"%s"}}}' % company_id.encode()
    answer = post(stack.app.url + "/webhooks/codat", body, forged("forged"))
    assert answer.status_code == 401
    invalid = (("event_type", "other"), ("result", "invalid_signature"))
    assert stack.metrics()[(WEBHOOKS_RECEIVED.name, invalid)] == 1
    assert stack.sim.count_requests("dataStatus", company_id) == 1  # only the first poll


def test_rate_limit_events_pause_and_resume_the_scheduler(stack: Stack) -> None:
    # The spec's own example has 99 seconds; the pause still ends at a real time.
    today = stack.clock.now().date()
    reached = {"dailyQuota": 12000, "quotaRemaining": 0, "expiryDate": f"{today}T23:59:99Z"}
    stack.sim.webhooks.enqueue("client.rateLimit.reached", reached, stack.clock.now())
    resumes_at = datetime.combine(today + timedelta(days=1), time(0, 0, 39), tzinfo=UTC)
    wait_until(lambda: stack.app.scheduler.paused_until == resumes_at, "the pause")

    reset = {"dailyQuota": 12000, "quotaRemaining": 12000, "expiryDate": f"{today}T23:59:59Z"}
    stack.sim.webhooks.enqueue("client.rateLimit.reset", reset, stack.clock.now())
    wait_until(lambda: stack.app.scheduler.paused_until is None, "the resume")


def test_oversized_delivery_is_refused_unread_and_counted(stack: Stack) -> None:
    body = b"{" + b" " * 8192 + b"}"
    answer = post(stack.app.url + "/webhooks/codat", body, forged("big"))
    assert answer.status_code == 413
    too_large = (("event_type", "other"), ("result", "too_large"))
    assert stack.metrics()[(WEBHOOKS_RECEIVED.name, too_large)] == 1


def test_one_batched_read_with_validation_warnings_is_counted_per_data_type(stack: Stack) -> None:
    company_id = stack.sim.company_ids[0]
    with stack.sim.lock:
        company = stack.sim.state.companies[company_id]
        company.profile = company.profile.model_copy(
            update={"validation_warning_probability": 1.0, "error_rates": {}}
        )
        stack.sim.complete_syncs_now(company_id)
        queued = stack.sim.state.queue_all(company_id, stack.sim.tick())
    data_types = sorted(op.data_type for op in queued)
    assert len(data_types) > 1
    stack.sim.complete_syncs_now(company_id, status="Complete")

    def counted() -> dict[str, float]:
        samples = stack.metrics()
        return {
            dt: samples.get(
                ("codat_read_validation_issues_total", (("company_id", company_id), ("data_type", dt))), 0
            )
            for dt in data_types
        }

    wait_until(lambda: set(counted().values()) == {1}, "one validation issue per data type")
    deliveries = [a for a in stack.sim.webhooks.attempts if a.event_type == "read.completed"]
    assert len(deliveries) == 1  # one event named every data type of the fetch
