"""What Codat knows beyond dataStatus reaches /metrics: each pair's sync schedule, the oldest open
(stuck) sync, and active connection errors, read from the demo simulator by the real exporter."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from exporter.app import App, build_app
from exporter.collector.companies import RELIST_REASON
from exporter.config.loading import load_config
from exporter.simulator import FakeClock, Scenario, Simulator
from tests.support.tools import free_port
from tests.support.waiting import wait_until


@dataclass
class Stack:
    sim: Simulator
    clock: FakeClock
    app: App

    def samples(self, name: str) -> dict[tuple[tuple[str, str], ...], float]:
        body = requests.get(self.app.url + "/metrics", timeout=10).text
        return {
            tuple(sorted(s.labels.items())): s.value
            for family in text_string_to_metric_families(body)
            for s in family.samples
            if s.name == name
        }

    def value(self, name: str, **labels: str) -> float | None:
        return self.samples(name).get(tuple(sorted(labels.items())))


@pytest.fixture
def stack(fake_clock: FakeClock) -> Iterator[Stack]:
    yield from _stack(fake_clock, {})


@pytest.fixture
def slow_stack(fake_clock: FakeClock) -> Iterator[Stack]:
    """Listings an hour apart: only an explicit re-list can show a change within the test."""
    yield from _stack(fake_clock, {"polling.interval": "1h"})


def _stack(fake_clock: FakeClock, overrides: dict[str, str]) -> Iterator[Stack]:
    sim = Simulator(Scenario.demo(seed=1), api_key="demo", clock=fake_clock)
    server = sim.serve()
    config = load_config(
        None,
        env={},
        overrides={
            "codat.base_url": server.url,
            "codat.api_key": "demo",
            "server.listen_address": f"127.0.0.1:{free_port()}",
            **overrides,
        },
    )
    app = build_app(config)
    app.start()
    try:
        wait_until(lambda: requests.get(app.url + "/readyz", timeout=5).status_code == 200, "first poll")
        yield Stack(sim, fake_clock, app)
    finally:
        app.stop()
        sim.close()
        server.close()


def test_each_pairs_sync_schedule_is_exported_in_seconds(stack: Stack) -> None:
    weekly = stack.sim.company_id_by_name("Kestrel Farms")
    hourly = stack.sim.company_id_by_name("Juniper Analytics")
    stale = stack.sim.company_id_by_name("Driftwood Outfitters")
    name = "codat_data_sync_schedule_seconds"
    wait_until(lambda: stack.value(name, company_id=weekly, data_type="invoices") is not None, "schedules")
    assert stack.value(name, company_id=weekly, data_type="invoices") == 7 * 24 * 3600
    assert stack.value(name, company_id=hourly, data_type="bills") == 3600
    # No automatic syncs: no schedule series, so the rules fall back to the static thresholds.
    assert stack.value(name, company_id=stale, data_type="invoices") is None


def test_a_stuck_sync_shows_when_it_was_requested(stack: Stack) -> None:
    stuck = stack.sim.company_id_by_name("Ironbark Joinery")
    expected = stack.clock.now().timestamp() - 5 * 3600
    name = "codat_pull_operation_oldest_open_timestamp_seconds"
    wait_until(lambda: stack.value(name, company_id=stuck, data_type="invoices") is not None, "the open sync")
    assert stack.value(name, company_id=stuck, data_type="invoices") == pytest.approx(expected, abs=1)


def test_active_connection_errors_are_exported(stack: Stack) -> None:
    failing = stack.sim.company_id_by_name("Evergreen Logistics")
    healthy = stack.sim.company_id_by_name("Harbour Health")
    [failing_conn] = [c["id"] for c in stack.sim.company(failing)["dataConnections"]]
    [healthy_conn] = [c["id"] for c in stack.sim.company(healthy)["dataConnections"]]
    name = "codat_connection_active_errors"
    wait_until(lambda: stack.value(name, company_id=failing, connection_id=failing_conn) == 1, "the error")
    assert stack.value(name, company_id=healthy, connection_id=healthy_conn) == 0


def test_a_connection_webhooks_relist_shows_the_new_connection_status(slow_stack: Stack) -> None:
    company = slow_stack.sim.company_id_by_name("Acme Trading Ltd")
    [connection] = [c["id"] for c in slow_stack.sim.company(company)["dataConnections"]]
    slow_stack.sim.set_connection_status(company, "Deauthorized")
    slow_stack.app.scheduler.request_poll(company, RELIST_REASON)  # what connection.disconnected does
    wait_until(
        lambda: (
            slow_stack.samples("codat_connection_status").get(
                (
                    ("company_id", company),
                    ("connection_id", connection),
                    ("platform", "Xero"),
                    ("status", "Deauthorized"),
                )
            )
            == 1
        ),
        "the re-listed connection status",
    )
