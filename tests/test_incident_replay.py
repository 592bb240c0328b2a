"""Incident replay: the shipped rules and Alertmanager routing against injected Codat incidents.

A simulator with the control API, two exporter shards, a real Prometheus evaluating a
time-compressed copy of the shipped rules (thresholds through the tuning group only, ``for`` and
windows by the same factor; see tests/support/rule_scaling.py) and a real Alertmanager with the
example routing. Incidents are injected at known times; for each, the expected alert must fire
within threshold + 2 polls + ``for`` + one evaluation, healthy companies must raise nothing, and
no incident alert may be resolved while its incident lasts, an exporter kill and restart
included. The measured latencies are written to the test's temporary directory, and to
bench/ALERTS.md when ``RECORD_INCIDENT_REPLAY=1`` is set: a test run leaves the checkout as it was.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.alertmanager import NotificationLog, alert_receiver, example_config, run_alertmanager
from tests.support.processes import stop_process, wait_until_ready
from tests.support.prometheus import PrometheusServer, Sample, run_prometheus, scrape_config
from tests.support.rule_scaling import duration_ms, write_scaled_rules
from tests.support.tools import REPO_ROOT, free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

FACTOR = 80.0
"""Production time / replay time. A 45 s sync schedule stands for Codat's hourly one (3600 / 80)."""
SCHEDULE = 45.0
SYNC_SECONDS = 4.0
"""Longest sync of the scenario (stages of 3 s with jitter)."""
POLL = 4.0
"""The exporters' full sweep: every company is read at least this often (the listing every 1 s)."""
EVALUATION = 1.0
API_KEY = "replay"
ALERTS_MD = REPO_ROOT / "bench" / "ALERTS.md"
RULE_FILES = [REPO_ROOT / "prometheus" / "rules.yml", REPO_ROOT / "prometheus" / "alerts.yml"]
HEALTHY = ("Healthy One", "Healthy Two")
COMPANIES = 8
RECEIVERS = {"critical": "codat-pager", "warning": "codat-tickets"}
"""Where the example routing sends each severity."""

SCENARIO = f"""\
name: replay
seed: 7
default_sync_schedule_hours: 1
rate_limit: {{daily_quota: 10000000, per_minute: 100000}}
sync:
  stages: [[Queued, 0.5], [Fetching, 1.5], [Processing, 1]]
  jitter: 0.2
  history_limit: 200
data_types: [invoices, bills, customers]
profiles:
  steady:
    sync_schedule_hours: {SCHEDULE / 3600}
    history: 3
    history_interval_hours: {SCHEDULE / 3600}
    last_success_hours_ago: 0.005
  stuck:
    sync_schedule_hours: {SCHEDULE / 3600}
    history: 3
    history_interval_hours: {SCHEDULE / 3600}
    last_success_hours_ago: 0.005
    stuck: [invoices]
    stuck_status: Fetching
    stuck_since_hours: 0
companies:
  - {{name: Healthy One, profile: steady, platform: Xero}}
  - {{name: Healthy Two, profile: steady, platform: Sage}}
  - {{name: Stale Co, profile: steady, platform: Xero}}
  - {{name: Failing Co, profile: steady, platform: Xero}}
  - {{name: Deauth Co, profile: steady, platform: QuickBooks Online}}
  - {{name: Unlinked Co, profile: steady, platform: Xero}}
  - {{name: Forbidden Co, profile: steady, platform: Xero}}
  - {{name: Stuck Co, profile: stuck, platform: QuickBooks Desktop}}
"""

EXPORTER_CONFIG = """\
codat: {{base_url: "{base_url}", max_retries: 1, retry_max_elapsed: 2s}}
polling: {{interval: 1s, full_sweep_interval: {poll}s}}
budget: {{max_requests_per_minute: 1000, daily_quota_share: 1.0}}
"""


@dataclass(frozen=True)
class Incident:
    """One injected incident and the alert it must raise."""

    description: str
    company: str | None
    action: str
    """The control API action that injects it; empty for one the scenario has from the start."""
    body: dict[str, Any]
    alert: str
    labels: dict[str, str]
    threshold: float
    """Seconds from injection until the alert's condition holds (production threshold / FACTOR)."""
    for_: str
    """The alert's production ``for``."""

    @property
    def bound(self) -> float:
        """threshold + 2 polls + for + one evaluation, in replay seconds."""
        return self.threshold + 2 * POLL + duration_ms(self.for_) / 1000 / FACTOR + EVALUATION


INCIDENTS = (
    Incident(
        "schedule of invoices stopped",
        "Stale Co",
        "schedule",
        {"data_type": "invoices"},
        "CodatDataStale",
        {"severity": "warning", "data_type": "invoices"},
        (2 * 3600 + 3600) / FACTOR,  # 2 x the hourly schedule + 1 h grace
        "15m",
    ),
    Incident(
        "every new sync of bills ends in FetchError",
        "Failing Co",
        "outcome",
        {"data_type": "bills", "status": "FetchError"},
        "CodatSyncFailing",
        {"data_type": "bills"},
        SCHEDULE + SYNC_SECONDS,  # the next scheduled sync fails
        "30m",
    ),
    Incident(
        "connection deauthorized",
        "Deauth Co",
        "connection",
        {"status": "Deauthorized"},
        "CodatConnectionDeauthorized",
        {},
        0.0,
        "5m",
    ),
    Incident(
        "connection unlinked",
        "Unlinked Co",
        "connection",
        {"status": "Unlinked"},
        "CodatConnectionUnlinked",
        {},
        0.0,
        "5m",
    ),
    Incident(
        "Codat answers 403 for one company",
        "Forbidden Co",
        "forbid",
        {},
        "CodatExporterCompanyPollFailing",
        {},
        0.0,
        "30m",
    ),
)
STUCK_FROM_START = Incident(
    "a sync of invoices that never finishes (from the start)",
    "Stuck Co",
    "",
    {},
    "CodatSyncStuck",
    {"data_type": "invoices"},
    (1 * 3600 + 3600) / FACTOR,  # 1 x the hourly schedule + 1 h grace
    "15m",
)
CRASH_LOOP = Incident(
    "exporter shard 1 killed and restarted three times",
    None,
    "",
    {},
    "CodatExporterRestarting",
    {},
    0.0,  # set to how long the three restarts took
    "0s",
)
KEY_REVOKED = Incident("API key revoked", None, "revoke-key", {}, "CodatApiKeyRejected", {}, 0.0, "5m")


@dataclass
class Replay:
    """The running parts and what happened."""

    simulator_url: str
    notifications: NotificationLog
    company_ids: dict[str, str] = field(default_factory=dict)
    injected_at: dict[str, float] = field(default_factory=dict)

    def control(self, action: str, body: dict[str, Any]) -> None:
        """POST one control request to the simulator."""
        request = urllib.request.Request(
            f"{self.simulator_url}/_control/{action}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.status in (200, 204), resp.status

    def inject(self, incident: Incident) -> None:
        """Inject ``incident`` now and note the time."""
        body = dict(incident.body)
        if incident.company is not None:
            body["company_id"] = self.company_ids[incident.company]
        self.injected_at[incident.description] = time.time()
        self.control(incident.action, body)

    def matches(self, incident: Incident, alert: dict[str, Any]) -> bool:
        """Whether a notified alert is the one ``incident`` must raise."""
        labels: dict[str, str] = alert["labels"]
        if labels.get("alertname") != incident.alert:
            return False
        if incident.company is not None and labels.get("company_id") != self.company_ids[incident.company]:
            return False
        return all(labels.get(k) == v for k, v in incident.labels.items())

    def fired_at(self, incident: Incident) -> float | None:
        """When Prometheus fired the incident's alert (its startsAt), from the notifications."""
        times = [
            _timestamp(alert["startsAt"])
            for _, alert in self.notifications.alerts()
            if alert["status"] == "firing" and self.matches(incident, alert)
        ]
        return min(times) if times else None


def _timestamp(iso: str) -> float:
    # Go writes up to nanoseconds; Python parses up to microseconds.
    trimmed = re.sub(r"(\.\d{6})\d+", r"\1", iso).replace("Z", "+00:00")
    return datetime.fromisoformat(trimmed).timestamp()


@contextmanager
def _process(args: list[str], log_path: Path, ready_url: str) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``args`` (a codat-exporter command), wait until ``ready_url`` answers, stop it on exit."""
    with log_path.open("ab") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT, env=_environment())
        try:
            wait_until_ready(proc, ready_url, name=args[3], log_path=log_path, timeout=60, interval=0.2)
            yield proc
        finally:
            stop_process(proc)


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODAT_")}
    env["CODAT_API_KEY"] = API_KEY
    return env


def _exporter_args(config: Path, address: str, shard: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "exporter",
        "run",
        "--config",
        str(config),
        "--web.listen-address",
        address,
        "--shard",
        str(shard),
        "--total-shards",
        "2",
    ]


def _pause(seconds: float, what: str) -> None:
    """Let ``seconds`` of replay time pass (the incidents run on wall-clock time)."""
    deadline = time.monotonic() + seconds
    wait_until(lambda: time.monotonic() >= deadline, what=what, timeout=seconds + 5, interval=0.2)


def _oldest_sync_ages(addresses: list[str], skip: str) -> dict[str, float]:
    """Per company name, the age of its oldest last successful sync, read from the exporters."""
    names: dict[str, str] = {}
    synced: dict[str, float] = {}
    for address in addresses:
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as resp:
            text = resp.read().decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                company = sample.labels.get("company_id", "")
                if sample.name == "codat_company_info":
                    names[company] = sample.labels["company_name"]
                elif sample.name == "codat_data_last_successful_sync_timestamp_seconds":
                    synced[company] = min(synced.get(company, sample.value), sample.value)
    now = time.time()
    return {names[c]: now - ts for c, ts in synced.items() if c in names and names[c] != skip}


def _wait_until_fresh(addresses: list[str]) -> None:
    """Wait until every company (the stuck one aside) has synced every data type since the start.

    The scenario's history starts up to 10 minutes old, older than the compressed thresholds: a
    replay that began at once would page on it.
    """

    def fresh() -> bool:
        ages = _oldest_sync_ages(addresses, skip=STUCK_FROM_START.company or "")
        return len(ages) == COMPANIES - 1 and max(ages.values()) < SCHEDULE + SYNC_SECONDS + POLL

    wait_until(fresh, what="every company's data to be fresh", timeout=120, interval=1)


def _start_time(address: str) -> str:
    return f'process_start_time_seconds{{instance="{address}"}}'


def _wait_restart_scraped(prometheus: PrometheusServer, address: str, before: list[Sample]) -> None:
    """Wait until Prometheus has scraped the new process start time of the exporter at ``address``."""
    old = {sample["value"][1] for sample in before}
    prometheus.wait_for(
        _start_time(address), lambda result: any(s["value"][1] not in old for s in result), timeout=30
    )


def _write_report(rows: list[tuple[Incident, float | None]], path: Path) -> None:
    lines = [
        "# Incident replay",
        "",
        "Written by `RECORD_INCIDENT_REPLAY=1 .venv/bin/python -m pytest tests/test_incident_replay.py`",
        "(do not edit). A simulator with incidents injected",
        "at known times, two exporter shards, a real Prometheus evaluating the shipped rules every",
        f"{EVALUATION:g} s, compressed {FACTOR:g}x (thresholds through the tuning group of rules.yml;",
        "`for`, `keep_firing_for` and windows in a generated copy), and a real Alertmanager with the",
        "example routing. Latency: from injection to the alert's firing time (its `startsAt`), in",
        "replay seconds; production is about the same times 80. Bound: threshold + 2 polls + `for` +",
        "one evaluation (for the crash loop, the threshold is how long the three restarts took).",
        "Meanwhile one shard is killed and restarted and the other crash-loops: the test fails if an",
        "incident's alert is resolved while the incident lasts, if a healthy company raises anything,",
        "if the unreadable (403) company is reported stale, or if a notification reaches the wrong",
        "receiver.",
        "",
        "| Incident | Alert | Latency (s) | Bound (s) | Within |",
        "|---|---|---:|---:|---|",
    ]
    for incident, latency in rows:
        measured = f"{latency:.1f}" if latency is not None else "never fired"
        within = "yes" if latency is not None and latency <= incident.bound else "NO"
        lines.append(
            f"| {incident.description} | {incident.alert} | {measured} | {incident.bound:.1f} | {within} |"
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _wait_fired(replay: Replay, incidents: tuple[Incident, ...]) -> None:
    latest = max(replay.injected_at[i.description] + i.bound for i in incidents) + 5
    wait_until(
        lambda: all(replay.fired_at(i) is not None for i in incidents) or time.time() > latest,
        timeout=latest - time.time() + 10,
        what="the incidents' alerts",
    )


def _resolved_incident_alerts(replay: Replay, incidents: tuple[Incident, ...]) -> list[dict[str, Any]]:
    return [
        alert
        for _, alert in replay.notifications.alerts()
        if alert["status"] == "resolved" and any(replay.matches(i, alert) for i in incidents)
    ]


def test_incidents_page_within_their_bounds_and_stay_firing(tmp_path: Path) -> None:
    sim_port, ports = free_port(), [free_port(), free_port()]
    simulator_url = f"http://127.0.0.1:{sim_port}"
    addresses = [f"127.0.0.1:{p}" for p in ports]
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(SCENARIO)
    config = tmp_path / "exporter.yaml"
    config.write_text(EXPORTER_CONFIG.format(base_url=simulator_url, poll=int(POLL)))
    rules = write_scaled_rules(RULE_FILES, tmp_path / "rules", FACTOR)
    simulate = [sys.executable, "-m", "exporter", "simulate", "--scenario", str(scenario), "--control"]
    simulate += ["--api-key", API_KEY, "--listen-address", f"127.0.0.1:{sim_port}"]
    with ExitStack() as stack:
        notifications = stack.enter_context(alert_receiver())
        alertmanager = stack.enter_context(
            run_alertmanager(tmp_path / "alertmanager", example_config(notifications.base_url, FACTOR))
        )
        simulator_started = time.time()
        stack.enter_context(_process(simulate, tmp_path / "simulator.log", f"{simulator_url}/_control"))
        exporters = [
            stack.enter_context(
                _process(
                    _exporter_args(config, address, shard),
                    tmp_path / f"exporter-{shard}.log",
                    f"http://{address}/readyz",
                )
            )
            for shard, address in enumerate(addresses)
        ]
        _wait_until_fresh(addresses)
        target = alertmanager.url.removeprefix("http://")
        alerting = {"alerting": {"alertmanagers": [{"static_configs": [{"targets": [target]}]}]}}
        prometheus = stack.enter_context(
            run_prometheus(
                tmp_path / "prometheus",
                [scrape_config(addresses)],
                rule_files=rules,
                interval=f"{EVALUATION:g}s",
                extra=alerting,
            )
        )
        replay = Replay(simulator_url, notifications)
        infos = prometheus.wait_for("codat_company_info", lambda r: len(r) == COMPANIES, timeout=60)
        replay.company_ids = {s["metric"]["company_name"]: s["metric"]["company_id"] for s in infos}
        replay_started = time.time()
        replay.injected_at[STUCK_FROM_START.description] = simulator_started

        for incident in INCIDENTS:
            replay.inject(incident)
        _wait_fired(replay, (*INCIDENTS, STUCK_FROM_START))

        # An exporter crash and restart mid-incident must not resolve anything.
        exporters[0].send_signal(signal.SIGKILL)
        exporters[0].wait(timeout=10)
        _pause(6, "the exporter's downtime")
        stack.enter_context(
            _process(
                _exporter_args(config, addresses[0], 0),
                tmp_path / "exporter-0.log",
                f"http://{addresses[0]}/readyz",
            )
        )
        _pause(10, "the restart to settle")

        # A crash loop: shard 1 dies and comes back three times in a row.
        replay.injected_at[CRASH_LOOP.description] = time.time()
        victim = exporters[1]
        for _ in range(3):
            before = prometheus.query(_start_time(addresses[1]))
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=10)
            victim = stack.enter_context(
                _process(
                    _exporter_args(config, addresses[1], 1),
                    tmp_path / "exporter-1.log",
                    f"http://{addresses[1]}/readyz",
                )
            )
            _wait_restart_scraped(prometheus, addresses[1], before)
        crash_loop = replace(CRASH_LOOP, threshold=time.time() - replay.injected_at[CRASH_LOOP.description])
        _wait_fired(replay, (crash_loop,))
        _pause(25, "the restarts to settle")  # longer than the scaled keep_firing_for (22.5 s)
        resolved = _resolved_incident_alerts(replay, (*INCIDENTS, STUCK_FROM_START))

        replay.inject(KEY_REVOKED)
        _wait_fired(replay, (KEY_REVOKED,))

        latencies = []
        for incident in (*INCIDENTS, STUCK_FROM_START, crash_loop, KEY_REVOKED):
            fired = replay.fired_at(incident)
            injected = replay.injected_at[incident.description]
            latencies.append((incident, fired - injected if fired is not None else None))
        # Recorded into the repository only on request, so the suite never dirties a checkout.
        recording = os.environ.get("RECORD_INCIDENT_REPLAY") == "1"
        _write_report(latencies, ALERTS_MD if recording else tmp_path / "ALERTS.md")
        # Inhibited alerts are never notified: ask Prometheus whether any fired during the replay.
        window = int(time.time() - replay_started) + 5
        healthy_alerts = prometheus.query(
            f'count by (alertname, company_name) (count_over_time(ALERTS{{alertstate="firing",'
            f'company_name=~"{"|".join(HEALTHY)}"}}[{window}s]))'
        )
        # 11.5: a company the exporter cannot read is not reported stale.
        unreadable = replay.company_ids["Forbidden Co"]
        misattributed = [
            alert
            for _, alert in notifications.alerts()
            if alert["labels"]["alertname"] == "CodatDataStale"
            and alert["labels"].get("company_id") == unreadable
        ]
        misrouted = [
            alert
            for notification, alert in notifications.alerts()
            if notification.receiver != RECEIVERS[alert["labels"]["severity"]]
        ]

    problems = [
        f"{incident.alert} never fired for: {incident.description}"
        if latency is None
        else f"{incident.alert}: {latency:.1f} s > bound {incident.bound:.1f} s"
        for incident, latency in latencies
        if latency is None or latency > incident.bound
    ]
    problems += [f"alert on a healthy company: {alert['metric']}" for alert in healthy_alerts]
    problems += [f"resolved while its incident lasted: {alert['labels']}" for alert in resolved]
    problems += [f"stale while the exporter cannot read it: {alert['labels']}" for alert in misattributed]
    problems += [f"routed to the wrong receiver: {alert['labels']}" for alert in misrouted]
    assert problems == [], "\n".join(problems)
