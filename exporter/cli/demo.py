"""``codat-exporter run --demo``: the exporter against an in-process simulated Codat account.

Everything the demo adds to a normal run lives here: its config, its
auto-refresh thresholds and the wiring to the simulator (whose demo scenario is
the packaged ``exporter/simulator/scenarios/demo.yaml``).

The simulator serves the packaged demo scenario on a free loopback port in
real time; the exporter polls it every few seconds with auto-refresh on, so
every metric moves within seconds of start-up. With ``CODAT_WEBHOOK_SECRET``
set, the simulator also sends signed webhooks to the exporter's receiver.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

from exporter.app import App, build_app
from exporter.common import env as envvars
from exporter.config.loading import load_config
from exporter.config.schema import AutoRefreshSettings, Config, RefreshRule
from exporter.simulator import Scenario, Simulator, SystemClock

log = logging.getLogger(__name__)

DEMO_API_KEY: Final = "demo"
DEMO_POLL_INTERVAL: Final = 5.0
DEMO_LISTEN_ADDRESS: Final = "127.0.0.1:8329"


DEMO_ENV: Final = (
    envvars.WEBHOOK_SECRET,
    envvars.WEBHOOK_SECRET_FILE,
    envvars.LISTEN_ADDRESS,
    envvars.LOG_LEVEL,
)
"""The only environment variables the demo reads: a real API key or base URL must not send demo
traffic to Codat (or the demo key to a real endpoint)."""


def demo_auto_refresh_settings() -> AutoRefreshSettings:
    """Auto-refresh for the demo: data older than 5 minutes is refreshed, each pair at most every 2 minutes.

    The demo's healthy companies sync every minute or so and never cross the
    threshold; the stale company (days old) and the never-synced one do, so
    the first cycle after start-up queues their syncs and the metrics show the
    staleness drop within a minute. Deauthorized data types (AuthError) are
    skipped, as they would be in production.
    """
    return AutoRefreshSettings(
        enabled=True,
        dry_run=False,
        rules=[RefreshRule(data_types=["*"], max_staleness=300.0)],
        never_synced_grace=600.0,
        cooldown=120.0,
        max_per_cycle=10,
        max_per_day=2000,
        request_share=0.2,
        refresh_all_threshold=5,
    )


def demo_config(
    base_url: str, listen_address: str | None, env: Mapping[str, str], log_level: str | None = None
) -> Config:
    """The demo's configuration: the simulator's address, a short interval, auto-refresh on, tag labels."""
    overrides: dict[str, Any] = {
        "codat": {"base_url": base_url, "api_key": DEMO_API_KEY, "max_retries": 2, "retry_max_elapsed": 10},
        "polling": {"interval": DEMO_POLL_INTERVAL, "full_sweep_interval": 300},
        "auto_refresh": demo_auto_refresh_settings().model_dump(),
        # The demo companies' tags as labels, so the shipped alerts carry them and route by team.
        "metrics": {"company_tag_labels": ["team", "tier", "region"]},
    }
    demo_env = {k: v for k, v in env.items() if k in DEMO_ENV}
    if listen_address:
        overrides["server"] = {"listen_address": listen_address}
    elif envvars.LISTEN_ADDRESS not in demo_env:
        overrides["server"] = {"listen_address": DEMO_LISTEN_ADDRESS}
    if log_level:
        overrides["logging"] = {"level": log_level}
    return load_config(None, env=demo_env, overrides=overrides)


def build_demo_app(
    listen_address: str | None, env: Mapping[str, str], *, log_level: str | None = None
) -> App:
    """Start the simulator and build (not start) the exporter wired to it; stopping the app stops both.

    Raises ``ConfigError`` for a bad listen address or webhook secret in the environment.
    """
    simulator = Simulator(Scenario.demo(), api_key=DEMO_API_KEY, clock=SystemClock())
    server = simulator.serve(host="127.0.0.1", port=0)
    try:
        config = demo_config(server.url, listen_address, env, log_level)
        app = build_app(config)
    except BaseException:
        server.close()
        raise
    app.on_stop.append(server.close)
    secret = config.webhooks.secret_value()
    if app.webhooks is not None and secret:
        simulator.configure_webhooks(app.url + config.webhooks.path, secret)
        log.info("demo: the simulator sends signed webhooks to %s%s", app.url, config.webhooks.path)
    log.info("demo: simulated Codat API at %s (api key %r)", server.url, DEMO_API_KEY)
    return app
