"""End to end: simulator → exporter (in-process App over HTTP) → a real Prometheus, asserted via its API."""

from __future__ import annotations

import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest

from exporter.app import App, build_app
from exporter.codat.timestamps import parse_timestamp
from exporter.config.schema import Config
from exporter.simulator import Scenario, Simulator, SimulatorServer, SystemClock
from tests.support.prometheus import PrometheusServer, run_prometheus, scrape_config
from tests.support.tools import free_port, require_tool
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

SCENARIO: dict[str, Any] = {
    "name": "e2e",
    "seed": 11,
    "data_types": ["invoices", "bills", "customers", "suppliers"],
    "profiles": {
        "quiet": {"sync_schedule_hours": None, "history": 3, "history_interval_hours": 4},
        "never": {"sync_schedule_hours": None, "history": 0, "never_synced": ["*"]},
    },
    "companies": [
        {"name": "Alpha", "profile": "quiet", "platform": "Xero"},
        {"name": "Bravo", "profile": "quiet", "platform": "Sage"},
        {"name": "Charlie", "profile": "quiet", "platform": "Xero"},
        {"name": "Delta", "profile": "never", "platform": "QuickBooks Online"},
    ],
}
SCRAPE_SECONDS = 1.0


@dataclass
class Stack:
    """Everything running: the simulator, the exporter and Prometheus."""

    sim: Simulator
    app: App
    prom: PrometheusServer

    def company(self, name: str) -> str:
        return self.sim.company_id_by_name(name)

    def metrics_text(self) -> str:
        with urllib.request.urlopen(f"{self.app.url}/metrics", timeout=10) as resp:
            body: bytes = resp.read()
        return body.decode()

    def truth_timestamps(self, company_id: str) -> dict[str, float]:
        out = {}
        for data_type, body in self.sim.data_status(company_id).items():
            if body.get("lastSuccessfulSync"):
                out[data_type] = parse_timestamp(body["lastSuccessfulSync"]).timestamp()
        return out

    def timestamps_match(self, company_id: str, truth: dict[str, float]) -> bool:
        result = self.prom.query(
            f'codat_data_last_successful_sync_timestamp_seconds{{company_id="{company_id}"}}'
        )
        shown = {s["metric"]["data_type"]: float(s["value"][1]) for s in result}
        return set(shown) == set(truth) and all(abs(shown[dt] - truth[dt]) < 1e-3 for dt in truth)

    def counters(self) -> dict[tuple[str, str, str], float]:
        result = self.prom.query("codat_pull_operations_total")
        return {
            (s["metric"]["company_id"], s["metric"]["data_type"], s["metric"]["status"]): float(s["value"][1])
            for s in result
        }


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require_tool("prometheus")
    sim = Simulator(Scenario.from_dict(SCENARIO), api_key="demo", clock=SystemClock())
    sim_server: SimulatorServer = sim.serve()
    port = free_port()
    config = Config.model_validate(
        {
            "codat": {"base_url": sim_server.url, "api_key": "demo", "max_retries": 0},
            "polling": {"interval": 1},
            "budget": {"max_requests_per_minute": 1000},
            "server": {"listen_address": f"127.0.0.1:{port}"},
        }
    )
    app = build_app(config)
    app.start()
    try:
        wait_until(lambda: app.scheduler.ready, "the exporter's first full poll", timeout=30, interval=0.2)
        workdir = tmp_path_factory.mktemp("prometheus")
        with run_prometheus(workdir, [scrape_config([f"127.0.0.1:{port}"])], interval="1s") as prom:
            yield Stack(sim, app, prom)
    finally:
        app.stop()
        sim_server.close()


def test_timestamps_equal_the_simulators_last_successful_sync(stack: Stack) -> None:
    for name in ("Alpha", "Bravo", "Charlie"):
        cid = stack.company(name)
        truth = stack.truth_timestamps(cid)
        assert truth, "the quiet companies have synced before"
        wait_until(partial(stack.timestamps_match, cid, truth), f"timestamps of {name}", 30, interval=0.2)
    never = stack.company("Delta")
    assert (
        stack.prom.query(f'codat_data_last_successful_sync_timestamp_seconds{{company_id="{never}"}}') == []
    )


def test_seconds_since_agrees_with_time_minus_timestamp(stack: Stack) -> None:
    expr = (
        "abs(codat_data_seconds_since_last_successful_sync"
        " - on(company_id, data_type) (time() - codat_data_last_successful_sync_timestamp_seconds))"
    )
    result = stack.prom.wait_for(expr, lambda r: len(r) >= 12)
    # The sample is at most one scrape old, and the exporter rounds "now" down to the second.
    assert all(float(s["value"][1]) <= SCRAPE_SECONDS + 2.0 for s in result), result


def test_one_hot_status_sums_to_one_for_every_pair(stack: Stack) -> None:
    pairs = 4 * len(SCENARIO["data_types"])
    result = stack.prom.wait_for(
        "sum by (company_id, data_type) (codat_data_status)", lambda r: len(r) == pairs
    )
    assert all(float(s["value"][1]) == 1.0 for s in result)
    never = stack.company("Delta")
    never_synced = stack.prom.query(f'codat_data_status{{company_id="{never}",status="NeverSynced"}} == 1')
    assert len(never_synced) == len(SCENARIO["data_types"])
    assert stack.prom.query('codat_data_status{status="Other"} == 1') == []


def test_counters_rise_by_exactly_the_operations_the_simulator_completed(stack: Stack) -> None:
    companies = [stack.company(n) for n in ("Alpha", "Bravo", "Charlie")]
    stack.prom.wait_for("codat_pull_operations_total", bool)
    before = stack.counters()
    truth_before = stack.sim.terminal_counts()
    for cid in companies:
        stack.sim.queue_sync(cid, "invoices", outcome="Complete")
        stack.sim.queue_sync(cid, "bills", outcome="FetchError")
    stack.sim.complete_syncs_now()
    for cid in companies:
        stack.sim.queue_sync(cid, "invoices", outcome="Complete")
    stack.sim.complete_syncs_now()
    delta = stack.sim.terminal_counts() - truth_before
    assert sum(delta.values()) == 9

    def risen() -> bool:
        now = stack.counters()
        return all(now.get(key, 0.0) - before.get(key, 0.0) == n for key, n in delta.items())

    wait_until(risen, "counters to rise by the completed operations", timeout=30, interval=0.2)
    after = stack.counters()
    changed = {k: after[k] - before.get(k, 0.0) for k in after if after[k] != before.get(k, 0.0)}
    assert changed == {k: float(n) for k, n in delta.items()}


def test_faulty_company_is_down_while_the_others_keep_exact_values(stack: Stack) -> None:
    bad, good = stack.company("Bravo"), stack.company("Charlie")
    bad_before = stack.truth_timestamps(bad)
    stack.prom.wait_for(f'codat_exporter_company_up{{company_id="{bad}"}} == 1', bool)
    stack.sim.faults.set(bad, error_rate=1.0, error_status=500)
    try:
        for cid in (bad, good):
            stack.sim.set_status(cid, "customers", "Complete")
        stack.prom.wait_for(f'codat_exporter_company_up{{company_id="{bad}"}} == 0', bool)
        good_truth = stack.truth_timestamps(good)
        stack.prom.wait_for(
            f'codat_data_last_successful_sync_timestamp_seconds{{company_id="{good}"}}',
            lambda r: stack.timestamps_match(good, good_truth),
        )
        assert stack.prom.query(f'codat_exporter_company_up{{company_id="{good}"}} == 1')
        # The failing company keeps its last good values, not the simulator's new ones.
        assert stack.timestamps_match(bad, bad_before)
        assert not stack.timestamps_match(bad, stack.truth_timestamps(bad))
    finally:
        stack.sim.faults.clear()
    stack.prom.wait_for(f'codat_exporter_company_up{{company_id="{bad}"}} == 1', bool, timeout=60)


def test_live_exposition_passes_promtool_check_metrics(stack: Stack) -> None:
    promtool = require_tool("promtool")
    body = stack.metrics_text()
    assert "codat_data_status" in body
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=body.encode(), capture_output=True, timeout=60, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.strip() == b""
    assert checked.stderr.strip() == b""


def test_removed_company_series_vanish(stack: Stack) -> None:
    gone = stack.company("Alpha")
    stack.prom.wait_for(f'codat_data_status{{company_id="{gone}"}}', bool)
    stack.sim.remove_company(gone)
    for expr in (
        f'codat_data_status{{company_id="{gone}"}}',
        f'codat_data_last_successful_sync_timestamp_seconds{{company_id="{gone}"}}',
        f'codat_exporter_company_up{{company_id="{gone}"}}',
        f'codat_company_info{{company_id="{gone}"}}',
    ):
        stack.prom.wait_for(expr, lambda r: r == [])
    assert stack.prom.query("count(codat_exporter_company_up)")[0]["value"][1] == "3"
