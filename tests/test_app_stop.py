"""Stopping the wired exporter in the middle of a poll cycle."""

from __future__ import annotations

from exporter.app import build_app
from exporter.config.schema import Config
from exporter.simulator import FakeClock, Scenario, Simulator
from tests.support.tools import free_port
from tests.support.waiting import wait_until

COMPANIES = 40


def test_stop_drops_the_polls_a_cycle_still_has_queued() -> None:
    # One poll at a time, each request slow: the first cycle queues forty company polls. A
    # SIGTERM must not work through all of them (spending minutes and quota) before exiting.
    sim = Simulator(
        Scenario.generated(companies=COMPANIES, data_types=2, seed=1), api_key="demo", clock=FakeClock()
    )
    server = sim.serve(host="127.0.0.1", port=0)
    try:
        config = Config.model_validate(
            {
                "codat": {"base_url": server.url, "api_key": "demo", "max_retries": 0},
                "budget": {"max_concurrency": 1, "daily_quota_share": 1.0},
                "server": {"listen_address": f"127.0.0.1:{free_port()}"},
            }
        )
        app = build_app(config)
        sim.faults.set(None, latency=0.05)
        app.start()
        wait_until(lambda: sim.count_requests("dataStatus") >= 1)
        app.stop(timeout=10)
        assert not app.busy, "the poll loop should end once the queued polls are dropped"
        assert sim.count_requests("dataStatus") < COMPANIES // 2
    finally:
        server.close()
