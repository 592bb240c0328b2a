"""The Grafana dashboards: their JSON, and every panel query run on a live Prometheus scraping the demo."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from exporter.codat.statuses import ALL_STATUSES, NEVER_SYNCED, OTHER
from exporter.exposition import ALL_METRICS
from exporter.exposition.spec import MetricType
from exporter.simulator import Scenario
from grafana import build as grafana_build
from tests.support.demo import run_demo_exporter
from tests.support.prometheus import PrometheusServer, run_prometheus, scrape_config
from tests.support.tools import REPO_ROOT

GRAFANA_DIR = REPO_ROOT / "grafana"
DASHBOARD_DIR = GRAFANA_DIR / "dashboards"
RULES = REPO_ROOT / "prometheus" / "rules.yml"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
DEMO_COMPANY = "Evergreen Logistics"
"""The demo company the drill-down queries are run for: it syncs, fails and is auto-refreshed."""

# What Grafana puts in for its built-in variables when the queries are run here.
BUILT_INS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "5m"}

Json = dict[str, Any]


def _dashboards() -> dict[str, Json]:
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARD_DIR.glob("*.json"))}


DASHBOARDS = _dashboards()


def _panels(board: Json) -> list[Json]:
    found = []
    for panel in board["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def _targets() -> list[tuple[str, Json]]:
    """(test id, target) of every query of every panel."""
    return [
        (f"{board['uid']}/{panel['title']}/{target['refId']}", target)
        for board in DASHBOARDS.values()
        for panel in _panels(board)
        for target in panel.get("targets", [])
    ]


TARGETS = _targets()


# --- the JSON ---------------------------------------------------------------------------------


def test_committed_dashboards_are_what_build_py_generates() -> None:
    generated = grafana_build.build()
    committed = {path.name: path.read_text() for path in DASHBOARD_DIR.glob("*.json")}
    assert set(committed) == set(generated), "run make dashboards"
    for name, text in generated.items():
        assert committed[name] == text, f"{name} is out of date: run make dashboards"


def test_dashboard_uids_are_unique() -> None:
    uids = [board["uid"] for board in DASHBOARDS.values()]
    assert len(uids) == len(set(uids)) == 2


@pytest.mark.parametrize("name", DASHBOARDS)
def test_panel_ids_are_unique(name: str) -> None:
    ids = [panel["id"] for panel in _panels(DASHBOARDS[name])]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("name", DASHBOARDS)
def test_every_panel_and_target_uses_the_datasource_variable(name: str) -> None:
    for panel in _panels(DASHBOARDS[name]):
        assert panel["datasource"] == DATASOURCE, panel["title"]
        for target in panel.get("targets", []):
            assert target["datasource"] == DATASOURCE, panel["title"]


def _datasource_refs(node: Any) -> Iterator[Any]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                yield value
            yield from _datasource_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _datasource_refs(item)


@pytest.mark.parametrize("name", DASHBOARDS)
def test_no_data_source_uid_is_hard_coded(name: str) -> None:
    builtin_annotations = {"type": "grafana", "uid": "-- Grafana --"}
    for ref in _datasource_refs(DASHBOARDS[name]):
        assert ref in (DATASOURCE, builtin_annotations), ref
    variables = {v["name"]: v for v in DASHBOARDS[name]["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"


@pytest.mark.parametrize("name", DASHBOARDS)
def test_every_target_has_a_ref_id_unique_in_its_panel(name: str) -> None:
    for panel in _panels(DASHBOARDS[name]):
        ref_ids = [target["refId"] for target in panel.get("targets", [])]
        assert all(ref_ids), panel["title"]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        if panel["type"] != "row":
            assert ref_ids, f"{panel['title']} has no query"


@pytest.mark.parametrize("name", DASHBOARDS)
def test_panels_do_not_overlap_and_fit_the_grid(name: str) -> None:
    taken: set[tuple[int, int]] = set()
    for panel in _panels(DASHBOARDS[name]):
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        cells = {
            (x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells


def _known_series() -> set[str]:
    names = {"up"}
    for spec in ALL_METRICS:
        names.add(spec.name)
        if spec.type is MetricType.HISTOGRAM:
            names |= {f"{spec.name}_bucket", f"{spec.name}_sum", f"{spec.name}_count"}
    rules = yaml.safe_load(RULES.read_text())
    names |= {rule["record"] for group in rules["groups"] for rule in group["rules"]}
    return names


def test_queries_use_only_catalogue_metrics_and_recorded_series() -> None:
    known = _known_series()
    for test_id, target in TARGETS:
        expr = re.sub(r'"[^"]*"', '""', target["expr"])
        for token in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
            if "codat" in token:
                assert token in known, f"{test_id}: unknown series {token}"


def test_company_variable_shows_names_and_passes_ids() -> None:
    board = DASHBOARDS["codat-company.json"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["company"]["definition"] == "query_result(codat_company_info)"
    assert "(?<value>" in variables["company"]["regex"]
    assert "(?<text>" in variables["company"]["regex"]
    assert variables["data_type"]["multi"]
    assert variables["data_type"]["allValue"] == ".*"


def test_provisioning_points_grafana_at_the_dashboards_folder() -> None:
    provider = yaml.safe_load((GRAFANA_DIR / "provisioning" / "dashboards" / "codat.yml").read_text())
    (only,) = provider["providers"]
    assert only["type"] == "file"
    assert only["folder"] == "Codat"
    datasources = yaml.safe_load(
        (GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    assert [d["type"] for d in datasources["datasources"]] == ["prometheus"]


# --- every query on a live Prometheus ---------------------------------------------------------


@pytest.fixture(scope="module")
def demo_exporter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``codat-exporter run --demo`` on a free port, ready (first full poll done); yields host:port."""
    with run_demo_exporter(tmp_path_factory.mktemp("exporter")) as address:
        yield address


@pytest.fixture(scope="module")
def prometheus(demo_exporter: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """A Prometheus with the recording rules that has scraped the demo exporter for a few cycles."""
    workdir = tmp_path_factory.mktemp("prometheus")
    with run_prometheus(workdir, [scrape_config([demo_exporter])], rule_files=[RULES], interval="1s") as prom:
        prom.wait_for(
            "count_over_time(codat_exporter_build_info[1m])",
            lambda r: bool(r) and float(r[0]["value"][1]) >= 5,
            timeout=60,
        )
        prom.wait_for("codat:data_pairs_synced:count > 0", timeout=30)
        yield prom


@pytest.fixture(scope="module")
def demo_company_id(prometheus: PrometheusServer) -> str:
    """The id of the demo company the drill-down is checked with."""
    (info,) = prometheus.query(f'codat_company_info{{company_name="{DEMO_COMPANY}"}}')
    company_id: str = info["metric"]["company_id"]
    return company_id


def substitute(expr: str, company_id: str) -> str:
    """The query as Grafana would send it, with the dashboard and built-in variables filled in."""
    values = {**BUILT_INS, "${company}": company_id, "$company": company_id, "$data_type": ".*"}
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace(name, values[name])
    assert "$" not in expr, f"unsubstituted variable in {expr}"
    return expr


@pytest.mark.parametrize(("test_id", "target"), TARGETS, ids=[t for t, _ in TARGETS])
def test_panel_query_returns_data_from_the_demo(
    test_id: str, target: Json, prometheus: PrometheusServer, demo_company_id: str
) -> None:
    expr = substitute(target["expr"], demo_company_id)
    # Counters need two samples inside the window before increase() has a value: poll, not sleep.
    result = prometheus.wait_for(expr, bool, timeout=30)
    assert result, test_id


def grafana_query_result_text(sample: Json) -> str:
    """A sample the way Grafana's query_result() variable lists it (labels in Prometheus' order)."""
    metric = dict(sample["metric"])
    name = metric.pop("__name__", "")
    labels = ",".join(f'{key}="{value}"' for key, value in sorted(metric.items()))
    timestamp, value = sample["value"]
    return f"{name}{{{labels}}} {value} {int(float(timestamp) * 1000)}"


def test_company_variable_lists_every_demo_company_by_name(prometheus: PrometheusServer) -> None:
    variable = next(
        v for v in DASHBOARDS["codat-company.json"]["templating"]["list"] if v["name"] == "company"
    )
    query = re.fullmatch(r"query_result\((.+)\)", variable["definition"])
    assert query
    # Grafana's regexes are JavaScript: (?<name>...) is Python's (?P<name>...).
    pattern = re.compile(variable["regex"].strip("/").replace("(?<", "(?P<"))
    samples = prometheus.query(query.group(1))
    assert len(samples) == len(Scenario.demo().companies)
    for sample in samples:
        match = pattern.search(grafana_query_result_text(sample))
        assert match, sample
        assert match.group("value") == sample["metric"]["company_id"]
        assert match.group("text") == sample["metric"]["company_name"]


def test_data_type_variable_lists_the_company_data_types(
    prometheus: PrometheusServer, demo_company_id: str
) -> None:
    variable = next(
        v for v in DASHBOARDS["codat-company.json"]["templating"]["list"] if v["name"] == "data_type"
    )
    query = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["definition"])
    assert query
    selector = substitute(query.group(1), demo_company_id)
    values = prometheus.api(f"/api/v1/label/{query.group(2)}/values", **{"match[]": selector})
    assert "invoices" in values
    assert len(values) == 10


def test_status_timeline_gives_every_status_exactly_one_kind() -> None:
    covered = [
        status for _code, _text, _color, statuses in grafana_build.STATUS_CLASSES for status in statuses
    ]
    assert sorted(covered) == sorted((*ALL_STATUSES, OTHER, NEVER_SYNCED))


def test_status_timeline_shows_one_known_kind_per_data_type(
    prometheus: PrometheusServer, demo_company_id: str
) -> None:
    board = DASHBOARDS["codat-company.json"]
    (panel,) = [p for p in _panels(board) if p["type"] == "state-timeline"]
    codes = {int(code) for code in panel["fieldConfig"]["defaults"]["mappings"][0]["options"]}
    result = prometheus.query(substitute(panel["targets"][0]["expr"], demo_company_id))
    assert len(result) == 10
    assert len({sample["metric"]["data_type"] for sample in result}) == 10
    assert {int(float(sample["value"][1])) for sample in result} <= codes
