"""The shipped alert and recording rules: promtool checks and unit tests, and the alert conventions."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.codat.statuses import ALL_STATUSES, ERROR_STATUSES, NEVER_SYNCED, OTHER
from exporter.exposition import ALL_METRICS
from exporter.exposition.spec import MetricType
from tests.support.alertmanager import example_config, run_alertmanager
from tests.support.demo import run_demo_exporter
from tests.support.prometheus import PrometheusServer, run_prometheus, scrape_config
from tests.support.tools import REPO_ROOT, require_tool
from tests.support.waiting import wait_until

PROMETHEUS_DIR = REPO_ROOT / "prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
RULES = PROMETHEUS_DIR / "rules.yml"
ALERTMANAGER_EXAMPLE = PROMETHEUS_DIR / "alertmanager.example.yml"
UNIT_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*_test.yml"))
RUNBOOK = REPO_ROOT / "docs" / "runbook.md"
RUNBOOK_BASE = "https://github.com/codat-exporter/codat-exporter/blob/main/docs/runbook.md"


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


def _rules(path: Path) -> list[dict[str, Any]]:
    return [rule for group in _load(path)["groups"] for rule in group["rules"]]


ALERT_RULES = [rule for rule in _rules(ALERTS) if "alert" in rule]
ALERT_NAMES = sorted({rule["alert"] for rule in ALERT_RULES})
RECORDED_NAMES = {rule["record"] for rule in _rules(RULES)}


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a markdown heading."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return slug.replace(" ", "-")


def test_rule_files_pass_promtool_check() -> None:
    promtool = require_tool("promtool")
    result = _run(promtool, "check", "rules", str(ALERTS), str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    promtool = require_tool("promtool")
    assert UNIT_TESTS, "no promtool unit tests found"
    result = _run(promtool, "test", "rules", *map(str, UNIT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_wrong_expectation_fails_the_promtool_unit_tests(tmp_path: Path) -> None:
    """Guards the guard: promtool must report a broken expectation, not pass silently."""
    promtool = require_tool("promtool")
    source = PROMETHEUS_DIR / "tests" / "exporter_alerts_test.yml"
    broken = source.read_text().replace("received 75 rate-limited", "received 74 rate-limited")
    assert broken != source.read_text()
    (tmp_path / "tests").mkdir()
    for name in ("alerts.yml", "rules.yml"):
        (tmp_path / name).write_text((PROMETHEUS_DIR / name).read_text())
    (tmp_path / "tests" / source.name).write_text(broken)
    result = _run(promtool, "test", "rules", str(tmp_path / "tests" / source.name))
    assert result.returncode != 0
    assert "received 75 rate-limited" in result.stdout + result.stderr


@pytest.mark.parametrize("rule", ALERT_RULES, ids=lambda r: f"{r['alert']}-{r['labels']['severity']}")
def test_every_alert_follows_the_mixin_conventions(rule: dict[str, Any]) -> None:
    assert re.fullmatch(r"Codat[A-Z][A-Za-z]+", rule["alert"])
    assert rule["labels"]["severity"] in ("critical", "warning", "info")
    annotations = rule["annotations"]
    assert set(annotations) >= {"summary", "description", "runbook_url"}
    assert "{{" not in annotations["summary"], "summary must be static"
    assert annotations["summary"].endswith(".")
    if not rule["expr"].startswith("absent("):  # an absent series has no labels to fill in
        assert "{{" in annotations["description"], "description must be templated"
    assert annotations["runbook_url"] == f"{RUNBOOK_BASE}#{rule['alert'].lower()}"


def test_every_runbook_anchor_exists_in_the_runbook() -> None:
    headings = re.findall(r"^#{2,3} (.+)$", RUNBOOK.read_text(), flags=re.MULTILINE)
    anchors = {github_anchor(h) for h in headings}
    for rule in ALERT_RULES:
        anchor = rule["annotations"]["runbook_url"].rsplit("#", 1)[1]
        assert anchor in anchors, f"{rule['alert']}: no '#{anchor}' section in docs/runbook.md"


def test_alerts_about_a_company_carry_its_name() -> None:
    for rule in ALERT_RULES:
        if "company_id" in rule["annotations"]["description"]:
            assert "company_name" in rule["annotations"]["description"], rule["alert"]
            if "over_threshold" not in rule["expr"]:  # the recorded series carry the name already
                # the name and the routing tags (see test_tag_label_routing.py)
                join = "group_left (company_name, tag_team, tag_tier, tag_region)"
                assert join in rule["expr"], rule["alert"]


def _alert_tests() -> list[dict[str, Any]]:
    cases = []
    for path in UNIT_TESTS:
        for test in _load(path)["tests"]:
            cases.extend(test.get("alert_rule_test", []))
    return cases


@pytest.mark.parametrize("alertname", ALERT_NAMES)
def test_every_alert_has_a_firing_and_a_quiet_unit_test(alertname: str) -> None:
    cases = [case for case in _alert_tests() if case["alertname"] == alertname]
    firing = [case for case in cases if case["exp_alerts"]]
    assert firing, f"{alertname}: no unit test where it fires"
    assert any(not case["exp_alerts"] for case in cases), f"{alertname}: no unit test where it stays quiet"
    for case in firing:
        for alert in case["exp_alerts"]:
            assert set(alert["exp_annotations"]) == {"summary", "description", "runbook_url"}
            assert "severity" in alert["exp_labels"]
            if "company_id" in alert["exp_labels"]:
                assert alert["exp_labels"].get("company_name"), f"{alertname}: company name not joined"


def test_unit_tests_feed_only_status_labels_the_exporter_emits() -> None:
    """codat_data_status names every documented status, NeverSynced and the catch-all Other, and
    nothing else: a fixture with another label value tests a shape that never reaches Prometheus."""
    emitted = {*ALL_STATUSES, NEVER_SYNCED, OTHER}
    fed = set()
    for path in UNIT_TESTS:
        for test in _load(path)["tests"]:
            for series in test.get("input_series", []):
                if series["series"].startswith("codat_data_status{"):
                    match = re.search(r'[{,]status="([^"]*)"', series["series"])
                    assert match, f"{path.name}: {series['series']} has no status label"
                    assert match.group(1) in emitted, f"{path.name}: {series['series']}"
                    fed.add(match.group(1))
    assert {NEVER_SYNCED, OTHER, "MapError"} <= fed, (
        "the fixtures cover never-synced, unknown and named statuses"
    )


def _status_alternatives(expr: str) -> set[str]:
    match = re.search(r'status=~"([^"]+)"', expr)
    assert match, expr
    return set(match.group(1).split("|"))


def test_error_status_selectors_match_the_status_catalogue() -> None:
    sync_failing = next(r for r in ALERT_RULES if r["alert"] == "CodatSyncFailing")
    assert _status_alternatives(sync_failing["expr"]) == ERROR_STATUSES - {"AuthError"}
    for rule in _rules(RULES):
        if "status=~" in rule["expr"]:
            assert _status_alternatives(rule["expr"]) == ERROR_STATUSES, rule["record"]


def _catalogue_names() -> set[str]:
    names = set()
    for spec in ALL_METRICS:
        names.add(spec.name)
        if spec.type is MetricType.HISTOGRAM:
            names |= {f"{spec.name}_bucket", f"{spec.name}_sum", f"{spec.name}_count"}
    return names


def test_rules_use_only_catalogue_metrics_and_recorded_series() -> None:
    known = _catalogue_names() | RECORDED_NAMES | {"up"}
    for rule in _rules(ALERTS) + _rules(RULES):
        expr = re.sub(r'"[^"]*"', '""', rule["expr"])  # label values are not series names
        names = {token for token in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr) if "codat" in token}
        for name in names:
            assert name in known, f"unknown series {name!r} in {rule.get('alert') or rule['record']}"


def test_recording_rules_follow_the_level_metric_operations_naming() -> None:
    for name in RECORDED_NAMES:
        assert re.fullmatch(r"[a-z_]+:[a-z_]+(:[a-z0-9_]+)?", name), name


def test_alertmanager_example_passes_amtool() -> None:
    amtool = require_tool("amtool")
    result = _run(amtool, "check-config", str(ALERTMANAGER_EXAMPLE))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (("severity=critical", "alertname=CodatDataStale", "company_id=c1"), "codat-pager"),
        (("severity=critical", "alertname=CodatExporterDown"), "codat-pager"),
        (("severity=warning", "alertname=CodatDataStale", "company_id=c1"), "codat-tickets"),
        (("severity=warning", "alertname=CodatApiQuotaLow"), "codat-tickets"),
        (("severity=critical", "alertname=CodatApiKeyRejected", "reason=unauthorized"), "codat-pager"),
        (("severity=critical", "alertname=CodatExporterRestarting"), "codat-pager"),
    ],
)
def test_alertmanager_example_routes_by_severity(labels: tuple[str, ...], receiver: str) -> None:
    amtool = require_tool("amtool")
    result = _run(amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER_EXAMPLE}", *labels)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver


def test_alertmanager_example_groups_by_alert_and_company() -> None:
    route = _load(ALERTMANAGER_EXAMPLE)["route"]
    assert route["group_by"] == ["alertname", "company_id"]


# --- the rules on a live Prometheus scraping the demo -------------------------------------------


@pytest.fixture(scope="module")
def prometheus_on_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """A Prometheus with rules.yml and alerts.yml, scraping ``codat-exporter run --demo``."""
    with (
        run_demo_exporter(tmp_path_factory.mktemp("exporter")) as address,
        run_prometheus(
            tmp_path_factory.mktemp("prometheus"), [scrape_config([address])], rule_files=[RULES, ALERTS]
        ) as prom,
    ):
        prom.wait_for("codat:data_pairs_synced:count > 0", timeout=30)
        yield prom


def test_every_rule_evaluates_without_error_on_demo_data(prometheus_on_demo: PrometheusServer) -> None:
    """promtool cannot see runtime errors such as duplicate series in a group_left join; this can."""
    groups = prometheus_on_demo.api("/api/v1/rules")["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) == len(_rules(ALERTS)) + len(_rules(RULES))
    for rule in rules:
        assert rule["health"] == "ok", f"{rule['name']}: {rule.get('lastError')}"


def test_the_demo_deauthorized_company_raises_its_alert_with_its_name(
    prometheus_on_demo: PrometheusServer,
) -> None:
    alerts = prometheus_on_demo.wait_for(
        'ALERTS{alertname="CodatConnectionDeauthorized", company_name="Foxglove Florists"}', timeout=30
    )
    assert alerts[0]["metric"]["severity"] == "warning"
    assert alerts[0]["metric"]["platform"] == "QuickBooks Online"


NEVER_SYNCED_PAIRS = f'codat_data_status{{status="{NEVER_SYNCED}"}} == 1'
NOT_SUPPORTED_PAIRS = 'codat_data_status{status="NotSupported"} == 1'
LAST_SYNC = "codat_data_last_successful_sync_timestamp_seconds"


def test_never_synced_and_not_supported_demo_pairs_get_no_staleness(
    prometheus_on_demo: PrometheusServer,
) -> None:
    """The exporter's output has the shapes the rules rely on, and the rules leave those pairs out."""
    assert prometheus_on_demo.query(NEVER_SYNCED_PAIRS), "the demo has data types that never synced"
    assert (
        prometheus_on_demo.query(f"({NEVER_SYNCED_PAIRS}) and on (company_id, data_type) {LAST_SYNC}") == []
    ), "a never-synced pair has no last-sync timestamp"
    assert prometheus_on_demo.query(NOT_SUPPORTED_PAIRS), "the demo has data types that are NotSupported"
    for excluded in (NEVER_SYNCED_PAIRS, NOT_SUPPORTED_PAIRS):
        stale = prometheus_on_demo.query(
            f"company_data_type:codat_data_staleness_seconds:age and on (company_id, data_type) ({excluded})"
        )
        assert stale == [], excluded
    assert prometheus_on_demo.query("company_data_type:codat_data_staleness_seconds:age")


# --- issue 11: gaps, restarts, inhibition ---------------------------------------------------------


def test_every_alert_about_a_company_survives_an_exporter_gap() -> None:
    """An exporter restart must neither resolve a company alert nor restart its ``for``."""
    for rule in ALERT_RULES:
        if "company_id" in rule["annotations"]["description"]:
            assert "keep_firing_for" in rule, rule["alert"]


def test_the_compose_alertmanager_inhibits_like_the_example() -> None:
    compose = _load(REPO_ROOT / "deploy" / "compose" / "alertmanager.yml")
    assert compose["inhibit_rules"] == _load(ALERTMANAGER_EXAMPLE)["inhibit_rules"]


def _post_alerts(url: str, alerts: list[dict[str, dict[str, str]]]) -> None:
    request = urllib.request.Request(
        f"{url}/api/v2/alerts",
        data=json.dumps(alerts).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.status == 200


@pytest.mark.parametrize(
    ("source", "inhibited", "kept"),
    [
        # 11.5: data the exporter cannot read is not reported stale
        (
            {"alertname": "CodatExporterCompanyPollFailing", "company_id": "c1", "instance": "e0"},
            {"alertname": "CodatDataStale", "company_id": "c1", "instance": "e0", "data_type": "bills"},
            {"alertname": "CodatDataStale", "company_id": "c2", "instance": "e0", "data_type": "bills"},
        ),
        # a failing listing explains that instance's per-company alerts
        (
            {"alertname": "CodatApiKeyRejected", "instance": "e0", "reason": "unauthorized"},
            {"alertname": "CodatExporterAllPollsFailing", "instance": "e0"},
            {"alertname": "CodatExporterAllPollsFailing", "instance": "e1"},
        ),
        (
            {"alertname": "CodatConnectionUnlinked", "company_id": "c1"},
            {"alertname": "CodatSyncStuck", "company_id": "c1", "data_type": "invoices"},
            {"alertname": "CodatConnectionDeauthorized", "company_id": "c1"},
        ),
    ],
)
def test_the_example_inhibits_the_consequence_not_the_neighbour(
    tmp_path: Path, source: dict[str, str], inhibited: dict[str, str], kept: dict[str, str]
) -> None:
    """A real Alertmanager with the shipped example: which alerts another one silences."""
    config = example_config("http://127.0.0.1:9")  # receivers are never reached here
    with run_alertmanager(tmp_path, config) as alertmanager:
        _post_alerts(
            alertmanager.url,
            [{"labels": {**labels, "severity": "warning"}} for labels in (source, inhibited, kept)],
        )

        def states() -> dict[str, list[str]]:
            alerts = alertmanager.alerts()
            return {json.dumps(a["labels"], sort_keys=True): a["status"]["inhibitedBy"] for a in alerts}

        key = json.dumps({**inhibited, "severity": "warning"}, sort_keys=True)
        wait_until(lambda: bool(states().get(key)), timeout=10, what="the inhibition")
        assert states()[json.dumps({**kept, "severity": "warning"}, sort_keys=True)] == []


def test_the_series_the_alerts_read_exist_from_the_first_scrape(prometheus_on_demo: PrometheusServer) -> None:
    """The shapes the promtool tests feed (11.3): counters and one-hot gauges present at 0, not lazily."""
    reasons = prometheus_on_demo.query("codat_exporter_listing_failing")
    assert len(reasons) == 8
    assert prometheus_on_demo.query("codat_exporter_listing_up == 1")
    assert prometheus_on_demo.query('codat_exporter_poll_errors_total{reason="companies_unauthorized"} == 0')
    refresh_errors = prometheus_on_demo.query('codat_refresh_requests_total{result="error"}')
    assert {s["metric"]["data_type"] for s in refresh_errors} >= {"invoices", "bills"}
    assert prometheus_on_demo.query("process_start_time_seconds")
    assert prometheus_on_demo.query("codat_exporter_total_shards == 1")
