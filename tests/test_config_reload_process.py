"""Config reload on a real ``codat-exporter run``: SIGHUP and ``POST /-/reload`` against the simulator.

A valid new file is applied live (a company excluded disappears, the others keep their counters);
a setting that needs a restart is named and not applied; an invalid file is refused with its
field paths in the log, the reload gauge says so, and the process keeps serving the old config.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from exporter.app import build_app
from exporter.config import Config
from tests.conftest import RunningSimulator
from tests.support.processes import stop_process
from tests.support.tools import REPO_ROOT, free_port
from tests.support.waiting import wait_until
from tests.test_cli_serve import exporter_env

RELOAD_OK = "codat_exporter_config_last_reload_successful"
RELOAD_TIME = "codat_exporter_config_last_reload_success_timestamp_seconds"
SAMPLE = re.compile(r"^(?P<name>[a-z_]+)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")


@dataclass
class Exporter:
    """A running ``codat-exporter run`` process, its config file and its log."""

    proc: subprocess.Popen[bytes]
    url: str
    config: Path
    log: Path

    def samples(self) -> dict[str, float]:
        """Every sample on /metrics, keyed by its series text (name and labels)."""
        text = requests.get(self.url + "/metrics", timeout=10).text
        found: dict[str, float] = {}
        for line in text.splitlines():
            match = SAMPLE.match(line)
            if match is not None:
                key = match["name"] + ("{" + match["labels"] + "}" if match["labels"] else "")
                found[key] = float(match["value"])
        return found

    def write_config(self, settings: dict[str, Any]) -> None:
        """Replace the config file."""
        self.config.write_text(yaml.safe_dump(settings))

    def logged(self, text: str) -> bool:
        """Whether the log holds ``text``."""
        return text in self.log.read_text()


def _settings(port: int, **extra: Any) -> dict[str, Any]:
    return {
        "server": {"listen_address": f"127.0.0.1:{port}", "enable_lifecycle": True},
        "polling": {"interval": "1s"},
        **extra,
    }


@pytest.fixture
def exporter(simulator: RunningSimulator, tmp_path: Path) -> Iterator[Exporter]:
    """``codat-exporter run`` with the lifecycle API on, polling the simulator every second, ready."""
    port = free_port()
    config, log = tmp_path / "config.yaml", tmp_path / "exporter.log"
    config.write_text(yaml.safe_dump(_settings(port)))
    env = exporter_env(CODAT_API_KEY="demo", CODAT_BASE_URL=simulator.url)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "exporter", "run", "--config", str(config)],
            env=env,
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    running = Exporter(proc, f"http://127.0.0.1:{port}", config, log)
    try:
        wait_until(lambda: proc.poll() is not None or running.logged("codat-exporter is up"), "start-up", 30)
        assert proc.poll() is None, log.read_text()
        wait_until(lambda: _answers(running.url + "/readyz"), "readiness", 30)
        yield running
    finally:
        stop_process(proc)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.RequestException:
        return False


def _company_counters(samples: dict[str, float], company_id: str) -> dict[str, float]:
    return {k: v for k, v in samples.items() if "_total{" in k and f'company_id="{company_id}"' in k}


def _company_ids(samples: dict[str, float]) -> set[str]:
    return {
        m.group(1)
        for k in samples
        if k.startswith("codat_company_info{")
        for m in [re.search(r'company_id="([^"]+)"', k)]
        if m is not None
    }


def _counted(exporter: Exporter, simulator: RunningSimulator) -> bool:
    """Move the simulator's day on; True once some company counter has counted a sync."""
    simulator.clock.advance(3600)
    return any(v > 0 for k, v in exporter.samples().items() if "_total{company_id=" in k)


def test_sighup_applies_a_valid_config_and_post_refuses_an_invalid_one(
    exporter: Exporter, simulator: RunningSimulator
) -> None:
    wait_until(lambda: _counted(exporter, simulator), "a company counter to count", 30, interval=0.5)
    before = exporter.samples()
    assert before[RELOAD_OK] == 1
    started_at = before[RELOAD_TIME]
    companies = sorted(_company_ids(before))
    assert len(companies) > 2
    counting = [cid for cid in companies if any(v > 0 for v in _company_counters(before, cid).values())]
    gone = next(cid for cid in companies if cid != counting[0])  # a company that has counted stays
    staying = [cid for cid in companies if cid != gone]
    counters = {cid: _company_counters(before, cid) for cid in staying}

    # A valid file: one company excluded (live), a listen address changed (needs a restart).
    exporter.write_config(_settings(free_port(), companies={"exclude": [gone]}, logging={"level": "debug"}))
    exporter.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: exporter.logged("configuration reloaded: changed"), "the SIGHUP reload", 20)
    wait_until(lambda: gone not in _company_ids(exporter.samples()), "the excluded company to go", 20)
    after = exporter.samples()  # still on the old address: the new one needs a restart
    assert exporter.proc.poll() is None
    assert after[RELOAD_OK] == 1
    assert after[RELOAD_TIME] > started_at
    assert exporter.logged("need a restart and were not applied: server.listen_address")
    assert set(staying) <= _company_ids(after)
    for series in counters.values():
        for key, value in series.items():
            assert after[key] >= value, f"{key} went from {value} to {after[key]}"

    # An invalid file through the lifecycle API: refused, the old config keeps running.
    exporter.write_config({"polling": {"interval": "-5m", "intervl": 3}})
    answer = requests.post(exporter.url + "/-/reload", timeout=10)
    assert answer.status_code == 500
    assert "polling.interval: must not be negative" in answer.text
    refused = exporter.samples()
    assert exporter.proc.poll() is None
    assert refused[RELOAD_OK] == 0
    assert refused[RELOAD_TIME] == after[RELOAD_TIME]
    assert exporter.logged("configuration reload failed; keeping the running configuration")
    assert exporter.logged("polling.intervl: unknown key (did you mean interval?)")
    assert gone not in _company_ids(refused)  # the applied exclusion stays in force
    for series in counters.values():
        for key, value in series.items():
            assert refused[key] >= value

    # A valid file again, by SIGHUP: the gauge recovers.
    exporter.write_config(_settings(free_port(), companies={"exclude": [gone]}))
    exporter.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: exporter.samples()[RELOAD_OK] == 1, "the gauge to recover", 20)
    assert "Traceback" not in exporter.log.read_text()


def test_post_reload_is_not_served_unless_the_lifecycle_api_is_enabled(simulator: RunningSimulator) -> None:
    config = Config.model_validate(
        {
            "codat": {"api_key": "demo", "base_url": simulator.url},
            "server": {"listen_address": f"127.0.0.1:{free_port()}"},
        }
    )
    app = build_app(config)
    app.server.start()
    try:
        assert requests.post(app.url + "/-/reload", timeout=10).status_code == 404
    finally:
        app.stop()
