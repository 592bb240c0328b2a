"""Company tags reach the alerts and route them: the shipped rules copy a fixed set of tag labels.

``metrics.company_tag_labels`` puts ``tag_<name>`` labels on ``codat_company_info``; every rule
that joins the company's name copies ``tag_team``, ``tag_tier`` and ``tag_region`` with it (absent
where the company lacks the tag), and the example Alertmanager routes on ``tag_team``. The promtool
cases are in ``prometheus/tests/tag_labels_test.yml``; here: the convention over every rule, the
routing through ``amtool``, and the whole path on a real Prometheus scraping the exporter.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from exporter.app import App, build_app
from exporter.config.schema import Config
from tests.conftest import RunningSimulator
from tests.support.prometheus import run_prometheus, scrape_config
from tests.support.tools import REPO_ROOT, free_port, require_tool
from tests.support.waiting import wait_until

PROMETHEUS_DIR = REPO_ROOT / "prometheus"
RULE_FILES = (PROMETHEUS_DIR / "rules.yml", PROMETHEUS_DIR / "alerts.yml")
ALERTMANAGER_EXAMPLE = PROMETHEUS_DIR / "alertmanager.example.yml"
ALERT_TAG_LABELS = ("tag_team", "tag_tier", "tag_region")
"""The tag labels the shipped rules copy from ``codat_company_info`` (documented in the README)."""


def _rules() -> list[dict[str, Any]]:
    return [
        rule
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
    ]


def _grouping_lists(expr: str) -> list[list[str]]:
    return [
        [label.strip() for label in match.split(",")]
        for match in re.findall(r"(?:group_left|max by) \(([^)]*)\)", expr)
        if "company_name" in match
    ]


def test_every_rule_that_joins_the_company_name_copies_the_tag_labels() -> None:
    joining = [rule for rule in _rules() if "codat_company_info" in rule["expr"]]
    named = [rule for rule in joining if _grouping_lists(rule["expr"])]
    assert len(named) >= 8  # the staleness and stuck ages, the name record and the company alerts
    for rule in named:
        for labels in _grouping_lists(rule["expr"]):
            missing = set(ALERT_TAG_LABELS) - set(labels)
            assert not missing, f"{rule.get('alert') or rule['record']}: {labels} lacks {sorted(missing)}"


def _route(*labels: str) -> str:
    amtool = require_tool("amtool")
    result = subprocess.run(
        [amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER_EXAMPLE}", *labels],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip()


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (
            ("severity=warning", "alertname=CodatDataStale", "company_id=c1", "tag_team=wholesale"),
            "codat-team-wholesale",
        ),
        (
            ("severity=critical", "alertname=CodatDataStale", "company_id=c1", "tag_team=wholesale"),
            "codat-pager",
        ),
        (
            ("severity=warning", "alertname=CodatDataStale", "company_id=c1", "tag_team=retail"),
            "codat-tickets",
        ),
        (("severity=warning", "alertname=CodatDataStale", "company_id=c1"), "codat-tickets"),
        (("severity=critical", "alertname=CodatExporterDown"), "codat-pager"),
    ],
)
def test_the_example_alertmanager_routes_a_team_tag_to_its_receiver(
    labels: tuple[str, ...], receiver: str
) -> None:
    assert _route(*labels) == receiver


@pytest.fixture
def tagged_exporter(simulator: RunningSimulator) -> Iterator[App]:
    """The exporter over the demo simulator with the team, tier and region tags as labels."""
    config = Config.model_validate(
        {
            "codat": {"base_url": simulator.url, "api_key": simulator.api_key, "max_retries": 0},
            "budget": {"daily_quota_share": 1.0, "max_requests_per_minute": 1000},
            "server": {"listen_address": f"127.0.0.1:{free_port()}"},
            "metrics": {"company_tag_labels": ["team", "tier", "region"]},
        }
    )
    app = build_app(config)
    app.start()
    try:
        yield app
    finally:
        app.stop()


def test_a_team_tag_reaches_a_real_alert_and_routes_it(tagged_exporter: App, tmp_path: Path) -> None:
    wait_until(lambda: requests.get(tagged_exporter.url + "/readyz", timeout=5).status_code == 200, "ready")
    address = tagged_exporter.url.removeprefix("http://")
    with run_prometheus(tmp_path, [scrape_config([address])], rule_files=RULE_FILES) as prom:
        # Foxglove Florists (team retail in the demo) is deauthorized: its alert is pending at once.
        pending = prom.wait_for(
            'ALERTS{alertname="CodatConnectionDeauthorized",company_name="Foxglove Florists"}', timeout=30
        )
        labels = pending[0]["metric"]
        assert (labels["tag_team"], labels["tag_tier"], labels["tag_region"]) == ("retail", "bronze", "us")
        # The recorded ages carry the tags too (the staleness alerts read them).
        ages = prom.wait_for(
            'company_data_type:codat_data_staleness_seconds:age{tag_team="wholesale"}', timeout=30
        )
        assert {s["metric"]["company_name"] for s in ages} == {"Acme Trading Ltd", "Evergreen Logistics"}
        untagged = prom.query(
            'company_data_type:codat_data_staleness_seconds:age{company_name="Bluebird Bakery"}'
        )
        assert untagged
        assert all("tag_team" not in s["metric"] for s in untagged)
    alert = [f"{k}={v}" for k, v in labels.items() if k not in ("__name__", "alertstate")]
    assert _route(*alert) == "codat-tickets"  # severity warning, team retail: no team route
    assert (
        _route(*[a for a in alert if not a.startswith("tag_team=")], "tag_team=wholesale")
        == "codat-team-wholesale"
    )
