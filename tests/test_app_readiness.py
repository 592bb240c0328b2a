"""Readiness tells the truth: once /readyz says ready, /metrics serves every listed company."""

from __future__ import annotations

import requests

from exporter.app import build_app
from exporter.config.schema import Config
from exporter.simulator import FakeClock, Scenario, Simulator
from tests.support.tools import free_port
from tests.support.waiting import wait_until

COMPANIES = 25


def test_ready_only_once_metrics_serves_every_company() -> None:
    sim = Simulator(
        Scenario.generated(companies=COMPANIES, data_types=2, seed=5), api_key="demo", clock=FakeClock()
    )
    server = sim.serve(host="127.0.0.1", port=0)
    try:
        config = Config.model_validate(
            {
                "codat": {"base_url": server.url, "api_key": "demo", "max_retries": 0},
                "budget": {"max_concurrency": 1, "daily_quota_share": 1.0, "max_requests_per_minute": 1000},
                "server": {"listen_address": f"127.0.0.1:{free_port()}"},
            }
        )
        app = build_app(config)
        sim.faults.set(None, latency=0.01)
        app.start()
        try:
            assert requests.get(app.url + "/readyz", timeout=5).status_code != 200
            wait_until(lambda: requests.get(app.url + "/readyz", timeout=5).status_code == 200, "ready")
            body = requests.get(app.url + "/metrics", timeout=10).text
            for company_id in sim.company_ids:
                assert f'company_id="{company_id}"' in body, company_id
            assert f"codat_exporter_companies_listed {COMPANIES}" in body
            assert f"codat_exporter_companies_polled {COMPANIES}" in body
            assert "codat_exporter_listing_up 1" in body
        finally:
            app.stop()
    finally:
        server.close()
