"""Generate the Grafana dashboards of codat-exporter as JSON files in grafana/dashboards/.

Run ``python -m grafana.build`` from the checkout (``make dashboards``) after changing this file and
commit the JSON it writes; ``python -m grafana.build --check`` exits 1 if the committed JSON is out
of date.

The dashboards are plain dictionaries in Grafana's dashboard JSON model (schema 39, Grafana 10.4
and later): no SDK to pin, and the output is exactly what is written here. Every panel and query
uses the ``datasource`` template variable, so the dashboards work with any Prometheus data source.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exporter.codat.statuses import (
    ERROR_STATUSES,
    IN_PROGRESS_STATUSES,
    NEVER_SYNCED,
    OTHER,
    SUCCESS_STATUSES,
    TERMINAL_OTHER_STATUSES,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
OUTPUT_DIR = REPO_ROOT / "grafana" / "dashboards"
SCHEMA_VERSION = 39
DATASOURCE: dict[str, str] = {"type": "prometheus", "uid": "${datasource}"}
EXPORTER_JOB = 'job=~"codat-exporter.*"'
OVERVIEW_UID = "codat-overview"
COMPANY_UID = "codat-company"

Json = dict[str, Any]


@dataclass(frozen=True)
class Query:
    """One Prometheus query of a panel."""

    expr: str
    legend: str = ""
    instant: bool = False
    table: bool = False

    def target(self, ref_id: str) -> Json:
        """The panel target for this query."""
        return {
            "datasource": DATASOURCE,
            "expr": self.expr,
            "legendFormat": self.legend or "__auto",
            "refId": ref_id,
            "instant": self.instant,
            "range": not self.instant,
            "format": "table" if self.table else "time_series",
        }


@dataclass
class Panel:
    """A panel before layout: its type, size and the JSON it contributes."""

    type: str
    title: str
    queries: Sequence[Query]
    width: int = 8
    height: int = 8
    description: str = ""
    unit: str = ""
    options: Json = field(default_factory=dict)
    defaults: Json = field(default_factory=dict)
    overrides: list[Json] = field(default_factory=list)
    transformations: list[Json] = field(default_factory=list)

    def to_json(self, panel_id: int, x: int, y: int) -> Json:
        """The panel's dashboard JSON at grid position (x, y)."""
        defaults: Json = {"unit": self.unit} if self.unit else {}
        defaults.update(self.defaults)
        letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
        panel: Json = {
            "id": panel_id,
            "type": self.type,
            "title": self.title,
            "description": self.description,
            "datasource": DATASOURCE,
            "gridPos": {"h": self.height, "w": self.width, "x": x, "y": y},
            "targets": [q.target(letters[i]) for i, q in enumerate(self.queries)],
            "fieldConfig": {"defaults": defaults, "overrides": self.overrides},
            "options": self.options,
        }
        if self.transformations:
            panel["transformations"] = self.transformations
        return panel


@dataclass(frozen=True)
class Row:
    """A row header; the panels after it, until the next row, belong to it."""

    title: str


def layout(items: Iterable[Panel | Row]) -> list[Json]:
    """Number the panels and place them left to right, wrapping at Grafana's 24 columns."""
    panels: list[Json] = []
    x = y = row_height = 0
    for panel_id, item in enumerate(items, start=1):
        if isinstance(item, Row):
            y += row_height
            panels.append(
                {
                    "id": panel_id,
                    "type": "row",
                    "title": item.title,
                    "collapsed": False,
                    "datasource": DATASOURCE,
                    "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                    "panels": [],
                }
            )
            x, y, row_height = 0, y + 1, 0
            continue
        if x + item.width > 24:
            x, y, row_height = 0, y + row_height, 0
        panels.append(item.to_json(panel_id, x, y))
        x += item.width
        row_height = max(row_height, item.height)
    return panels


# --- panel kinds ----------------------------------------------------------------------


def thresholds(*steps: tuple[float | None, str]) -> Json:
    """Absolute thresholds: (from value, colour) pairs, the first from None (base)."""
    return {"mode": "absolute", "steps": [{"color": color, "value": value} for value, color in steps]}


def stat(
    title: str,
    query: Query,
    *,
    unit: str = "",
    description: str = "",
    steps: Json | None = None,
    width: int = 4,
    mappings: list[Json] | None = None,
    text_mode: str = "auto",
) -> Panel:
    """A single big number (text_mode "name" shows the legend instead, e.g. a version label)."""
    defaults: Json = {"thresholds": steps or thresholds((None, "green")), "color": {"mode": "thresholds"}}
    if mappings:
        defaults["mappings"] = mappings
    return Panel(
        "stat",
        title,
        [query],
        width=width,
        height=4,
        unit=unit,
        description=description,
        defaults=defaults,
        options={
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "area",
            "textMode": text_mode,
            "justifyMode": "auto",
            "orientation": "auto",
        },
    )


def timeseries(
    title: str,
    *queries: Query,
    unit: str = "",
    description: str = "",
    width: int = 12,
    stacked: bool = False,
    bars: bool = False,
    height: int = 8,
) -> Panel:
    """Lines (or stacked areas or bars) over time."""
    custom: Json = {
        "drawStyle": "bars" if bars else "line",
        "fillOpacity": 60 if (stacked or bars) else 10,
        "lineWidth": 1,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"mode": "normal" if stacked else "none", "group": "A"},
    }
    return Panel(
        "timeseries",
        title,
        queries,
        width=width,
        height=height,
        unit=unit,
        description=description,
        defaults={"custom": custom, "min": 0},
        options={
            "legend": {"displayMode": "table", "placement": "right", "calcs": ["lastNotNull", "max"]},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    )


def table(
    title: str,
    *queries: Query,
    description: str = "",
    width: int = 12,
    height: int = 8,
    transformations: list[Json] | None = None,
    overrides: list[Json] | None = None,
    sort_by: str | None = None,
) -> Panel:
    """Instant query results as rows."""
    options: Json = {"showHeader": True, "cellHeight": "sm", "footer": {"show": False}}
    if sort_by:
        options["sortBy"] = [{"displayName": sort_by, "desc": True}]
    return Panel(
        "table",
        title,
        queries,
        width=width,
        height=height,
        description=description,
        transformations=transformations or [],
        overrides=overrides or [],
        options=options,
    )


def organize(exclude: Sequence[str], rename: dict[str, str], order: Sequence[str] = ()) -> Json:
    """A transformation hiding, renaming and ordering table columns."""
    return {
        "id": "organize",
        "options": {
            "excludeByName": dict.fromkeys(exclude, True),
            "renameByName": rename,
            "indexByName": {name: i for i, name in enumerate(order)},
        },
    }


def unit_override(column: str, unit: str) -> Json:
    """A field override giving one table column a unit."""
    return {"matcher": {"id": "byName", "options": column}, "properties": [{"id": "unit", "value": unit}]}


def company_link(column: str) -> Json:
    """A field override linking a company id column to the company dashboard."""
    url = f"/d/{COMPANY_UID}/codat-company?var-company=${{__value.raw}}&${{datasource:queryparam}}"
    return {
        "matcher": {"id": "byName", "options": column},
        "properties": [{"id": "links", "value": [{"title": "Open company", "url": url}]}],
    }


def variable_datasource() -> Json:
    """The data source picker every panel uses."""
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "hide": 0,
        "includeAll": False,
        "multi": False,
        "refresh": 1,
        "regex": "",
        "options": [],
    }


def variable_query(name: str, label: str, query: str, *, regex: str = "", multi: bool = False) -> Json:
    """A variable whose values come from a Prometheus query."""
    variable: Json = {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": query,
        "query": {"query": query, "refId": f"{name}-variable"},
        "regex": regex,
        "refresh": 2,
        "sort": 5,
        "hide": 0,
        "current": {},
        "options": [],
        "includeAll": multi,
        "multi": multi,
    }
    if multi:
        variable["allValue"] = ".*"
        variable["current"] = {"selected": True, "text": ["All"], "value": ["$__all"]}
    return variable


def dashboard(
    uid: str, title: str, description: str, panels: list[Json], variables: list[Json], time_from: str
) -> Json:
    """A complete dashboard."""
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["codat", "codat-exporter"],
        "timezone": "",
        "editable": True,
        "graphTooltip": 1,
        "refresh": "1m",
        "schemaVersion": SCHEMA_VERSION,
        "time": {"from": time_from, "to": "now"},
        "timepicker": {},
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "version": 1,
        "links": [
            {
                "title": "Codat dashboards",
                "type": "dashboards",
                "tags": ["codat-exporter"],
                "asDropdown": True,
                "includeVars": False,
                "keepTime": True,
            }
        ],
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "templating": {"list": variables},
        "panels": panels,
    }


# --- status colouring -------------------------------------------------------------------

STATUS_CLASSES: tuple[tuple[int, str, str, frozenset[str]], ...] = (
    (1, "Complete", "green", SUCCESS_STATUSES),
    (2, "In progress", "blue", IN_PROGRESS_STATUSES),
    (3, "Error", "red", ERROR_STATUSES),
    (4, "Not supported / cancelled", "text", TERMINAL_OTHER_STATUSES),
    (5, "Never synced", "purple", frozenset({NEVER_SYNCED})),
    (6, "Unknown status (Other)", "orange", frozenset({OTHER})),
)
"""(code, text, colour, statuses) of the state timeline: one colour per kind of status."""


def status_code_expr(selector: str) -> str:
    """PromQL giving each data type a number for the kind of its current status (see STATUS_CLASSES).

    codat_data_status is one-hot, so exactly one of the alternatives matches per data type; the
    regex alternatives cover every status mode (default, full, sparse).
    """
    parts = []
    for code, _text, _color, statuses in STATUS_CLASSES:
        alternatives = "|".join(sorted(statuses))
        parts.append(f'{code} * (codat_data_status{{{selector},status=~"{alternatives}"}} == 1)')
    return "max by (data_type) (\n  " + "\n  or\n  ".join(parts) + "\n)"


def status_mappings() -> list[Json]:
    """Value mappings turning the status codes into words and colours."""
    return [
        {
            "type": "value",
            "options": {
                str(code): {"text": text, "color": color, "index": code - 1}
                for code, text, color, _statuses in STATUS_CLASSES
            },
        }
    ]


# --- the overview -------------------------------------------------------------------------

STALE = "company_data_type:codat_data_staleness_seconds:age"


def overview() -> Json:
    """The fleet: freshness, statuses, syncs, auto-refresh, exporter health and Codat quota."""
    items: list[Panel | Row] = [
        Row("Freshness"),
        stat(
            "Stale data types (warning)",
            Query('codat:data_stale_pairs:count{severity="warning"}'),
            description="Company/data type pairs older than their warning threshold "
            "(codat:data_staleness_threshold_seconds in rules.yml).",
            steps=thresholds((None, "green"), (1, "orange")),
        ),
        stat(
            "Stale data types (critical)",
            Query('codat:data_stale_pairs:count{severity="critical"}'),
            description="Company/data type pairs older than their critical threshold.",
            steps=thresholds((None, "green"), (1, "red")),
        ),
        stat(
            "Data types failing",
            Query("sum(platform:codat_data_status_error:count)"),
            description="Company/data type pairs whose current status is an error status.",
            steps=thresholds((None, "green"), (1, "red")),
        ),
        stat(
            "Data types synced",
            Query("codat:data_pairs_synced:count"),
            description="Company/data type pairs that synced at least once and are supported.",
        ),
        stat("Companies", Query("count(codat_company_info)")),
        stat(
            "Stuck syncs",
            Query("count(company_data_type:codat_pull_operation_open_seconds:over_threshold) or vector(0)"),
            description="Company/data type pairs whose oldest open sync is older than its schedule "
            "allows (CodatSyncStuck).",
            steps=thresholds((None, "green"), (1, "orange")),
        ),
        stat(
            "Oldest successful sync",
            Query(f"max({STALE})"),
            unit="s",
            width=24,
            description="Time since the last successful sync of the stalest supported pair.",
        ),
        timeseries(
            "Stale data types by severity",
            Query("codat:data_stale_pairs:count", "{{severity}}"),
            description="How many company/data type pairs are older than their threshold.",
        ),
        timeseries(
            "Data types by status",
            Query("status:codat_data_status:count", "{{status}}"),
            stacked=True,
            description="Current status of every company/data type pair; Other holds statuses "
            "outside the exported set and pairs that never synced.",
        ),
        table(
            "Stalest data types",
            Query(f"topk(25, {STALE})", instant=True, table=True),
            width=24,
            height=10,
            description="The 25 supported pairs with the oldest successful sync. Click a company id "
            "to open its dashboard.",
            transformations=[
                organize(
                    exclude=("Time", "__name__", "job", "instance"),
                    rename={
                        "Value": "Since last successful sync",
                        "company_name": "Company",
                        "company_id": "Company id",
                        "data_type": "Data type",
                        "platform": "Platform",
                    },
                    order=("company_name", "company_id", "data_type", "platform", "Value"),
                )
            ],
            overrides=[unit_override("Since last successful sync", "s"), company_link("Company id")],
            sort_by="Since last successful sync",
        ),
        timeseries(
            "Stale data types by platform (warning)",
            Query('platform:codat_data_stale_pairs:count{severity="warning"}', "{{platform}}"),
            width=8,
        ),
        timeseries(
            "Failing data types by platform",
            Query("platform:codat_data_status_error:count", "{{platform}}"),
            width=8,
            description="Pairs whose current status is an error status, per platform.",
        ),
        timeseries(
            "Failed syncs by platform (last hour)",
            Query("platform:codat_pull_operations_failed:increase1h", "{{platform}}"),
            width=8,
        ),
        Row("Syncs"),
        timeseries(
            "Finished syncs by status",
            Query(
                "sum by (status) (increase(codat_pull_operations_total[$__rate_interval]))",
                "{{status}}",
            ),
            bars=True,
            stacked=True,
            width=8,
            description="Pull operations that reached a terminal status, counted once each.",
        ),
        timeseries(
            "Sync duration",
            Query(
                "histogram_quantile(0.5, sum by (le) "
                "(rate(codat_pull_operation_duration_seconds_bucket[$__rate_interval])))",
                "p50",
            ),
            Query(
                "histogram_quantile(0.95, sum by (le) "
                "(rate(codat_pull_operation_duration_seconds_bucket[$__rate_interval])))",
                "p95",
            ),
            unit="s",
            width=8,
            description="Requested to completed, of the syncs that finished.",
        ),
        timeseries(
            "Syncs in progress",
            Query("sum(codat_pull_operations_in_progress)", "in progress"),
            width=8,
        ),
        Row("Auto-refresh"),
        timeseries(
            "Refresh requests by result",
            Query(
                "sum by (result) (increase(codat_refresh_requests_total[$__rate_interval]))",
                "{{result}}",
            ),
            bars=True,
            stacked=True,
            width=16,
            description="Auto-refresh and CLI refreshes: queued, already_in_progress, dry_run, "
            "skipped_budget, rate_limited, error.",
        ),
        timeseries(
            "Refreshes pending",
            Query("sum(codat_refresh_pending)", "pending"),
            width=8,
            description="Refreshes the exporters queued whose sync has not finished yet.",
        ),
        Row("Exporter"),
        stat(
            "Exporters up",
            Query(f"sum(up{{{EXPORTER_JOB}}})"),
            description="Scrape targets of jobs matching codat-exporter.* that answered.",
        ),
        stat(
            "Company listing",
            Query("min(codat_exporter_listing_up)"),
            mappings=[
                {
                    "type": "value",
                    "options": {
                        "0": {"text": "Failing", "color": "red", "index": 0},
                        "1": {"text": "OK", "color": "green", "index": 1},
                    },
                }
            ],
            description="Whether every exporter's last GET /companies succeeded; while it fails no "
            "company is polled (CodatApiKeyRejected, CodatApiUnavailable, CodatApiUnreachable).",
        ),
        stat(
            "Shards reporting",
            Query('count(count_values("shard", codat_exporter_shard_ordinal))'),
            description="Distinct shards scraped; fewer than Shards means a shard's companies are "
            "not monitored (CodatExporterShardMissing).",
        ),
        stat(
            "Restarts (last hour)",
            Query(f"sum(changes(process_start_time_seconds{{{EXPORTER_JOB}}}[1h]))"),
            steps=thresholds((None, "green"), (1, "orange"), (3, "red")),
            description="Exporter process starts in the last hour (CodatExporterRestarting above 2).",
        ),
        stat(
            "Companies polled OK",
            Query("sum(codat_exporter_company_up) / count(codat_exporter_company_up)"),
            unit="percentunit",
            steps=thresholds((None, "red"), (0.95, "orange"), (1, "green")),
        ),
        stat(
            "Oldest company poll",
            Query("max(time() - codat_exporter_last_poll_success_timestamp_seconds)"),
            unit="s",
            description="How old the cached values of the least recently polled company are.",
        ),
        stat(
            "Exporter version",
            Query("count by (version) (codat_exporter_build_info)", "{{version}}"),
            width=4,
            text_mode="name",
        ),
        stat(
            "Shards",
            Query("max(codat_exporter_total_shards)"),
            width=4,
        ),
        stat(
            "Poll errors (range)",
            Query("sum(increase(codat_exporter_poll_errors_total[$__range])) or vector(0)"),
            width=4,
            steps=thresholds((None, "green"), (1, "orange")),
        ),
        timeseries(
            "Company listing failures by reason",
            Query("max by (reason) (codat_exporter_listing_failing)", "{{reason}}"),
            width=8,
            description="1 while the exporters' GET /companies fails for that reason: unauthorized, "
            "forbidden or payment_required (the key), server_error or malformed_response (Codat), "
            "connection_error (the network).",
        ),
        timeseries(
            "Companies listed and polled",
            Query("sum(codat_exporter_companies_listed)", "listed"),
            Query("sum(codat_exporter_companies_polled)", "polled at least once"),
            width=8,
            description="Companies in the shards' last listings, and how many of them have been read "
            "since the exporters started.",
        ),
        timeseries(
            "Detection lag",
            Query("max by (instance) (codat_exporter_detection_lag_seconds)", "{{instance}}"),
            unit="s",
            width=8,
            description="Age of the oldest change seen in the listing or a webhook that no poll has "
            "read yet; rising without end means the exporter falls behind.",
        ),
        timeseries(
            "Poll cycle duration",
            Query(
                "histogram_quantile(0.95, sum by (le, instance) "
                "(rate(codat_exporter_poll_duration_seconds_bucket[$__rate_interval])))",
                "p95 {{instance}}",
            ),
            unit="s",
            width=8,
        ),
        timeseries(
            "Codat API requests",
            Query(
                "sum by (endpoint, code) (rate(codat_exporter_api_requests_total[$__rate_interval]))",
                "{{endpoint}} {{code}}",
            ),
            unit="reqps",
            stacked=True,
            width=8,
        ),
        timeseries(
            "Codat API latency (p95)",
            Query(
                "histogram_quantile(0.95, sum by (le, endpoint) "
                "(rate(codat_exporter_api_request_duration_seconds_bucket[$__rate_interval])))",
                "{{endpoint}}",
            ),
            unit="s",
            width=8,
        ),
        Row("Codat quota"),
        stat(
            "Daily quota left",
            Query("min(instance:codat_exporter_rate_limit_remaining:ratio)"),
            unit="percentunit",
            steps=thresholds((None, "red"), (0.1, "orange"), (0.25, "green")),
            description="From the last X-Rate-Limit-Remaining / X-Rate-Limit-Limit headers; the "
            "quota is shared by every client of the API key.",
        ),
        stat(
            "Requests per company per day",
            Query("codat:exporter_api_requests_per_company:increase1d"),
            description="What the exporter spent per company over the last day.",
        ),
        stat(
            "Daily request budget",
            Query("sum(codat_exporter_request_budget_per_day)"),
            description="Requests per day the exporters allow themselves (their share of the quota).",
        ),
        timeseries(
            "Quota remaining",
            Query("codat_exporter_rate_limit_remaining", "remaining {{instance}}"),
            Query("codat_exporter_rate_limit_limit", "limit {{instance}}"),
            width=6,
        ),
        timeseries(
            "Rate-limited responses (429)",
            Query(
                "sum by (instance) (increase(codat_exporter_rate_limited_total[$__rate_interval]))",
                "{{instance}}",
            ),
            bars=True,
            width=6,
        ),
    ]
    return dashboard(
        OVERVIEW_UID,
        "Codat / Overview",
        "Freshness and sync health of every Codat company's data, and the health of codat-exporter.",
        layout(items),
        [variable_datasource()],
        time_from="now-24h",
    )


# --- the company drill-down ---------------------------------------------------------------

COMPANY = 'company_id="$company"'
PAIRS = 'company_id="$company",data_type=~"$data_type"'


def company() -> Json:
    """One company: its connections, each data type's freshness and status, and its sync history."""
    items: list[Panel | Row] = [
        table(
            "Company",
            Query(f"codat_company_info{{{COMPANY}}}", instant=True, table=True),
            width=12,
            height=4,
            transformations=[
                organize(
                    exclude=("Time", "__name__", "job", "instance", "Value"),
                    rename={
                        "company_name": "Company",
                        "company_id": "Company id",
                        "platform": "Platform",
                        "tags": "Tags",
                    },
                    order=("company_name", "company_id", "platform", "tags"),
                )
            ],
        ),
        table(
            "Connections",
            Query(f"codat_connection_status{{{COMPANY}}} == 1", instant=True, table=True),
            Query(f"codat_connection_active_errors{{{COMPANY}}}", instant=True, table=True),
            width=12,
            height=4,
            description="Each connection's status and its active connection errors in Codat "
            "(dataConnectionErrors with status Active), which often precede stale data.",
            transformations=[
                {"id": "merge", "options": {}},
                organize(
                    exclude=("Time", "__name__", "job", "instance", "Value #A", "company_id"),
                    rename={
                        "connection_id": "Connection",
                        "platform": "Platform",
                        "status": "Status",
                        "Value #B": "Active errors",
                    },
                    order=("platform", "connection_id", "status", "Value #B"),
                ),
            ],
        ),
        stat(
            "Last poll",
            Query(f"codat_exporter_company_up{{{COMPANY}}}"),
            mappings=[
                {
                    "type": "value",
                    "options": {
                        "0": {"text": "Failing", "color": "red", "index": 0},
                        "1": {"text": "OK", "color": "green", "index": 1},
                    },
                }
            ],
            width=12,
            description="Whether the exporter's last poll of this company succeeded.",
        ),
        stat(
            "Values polled",
            Query(f"time() - codat_exporter_last_poll_success_timestamp_seconds{{{COMPANY}}}"),
            unit="s",
            width=12,
            description="Age of the exporter's cached values for this company.",
        ),
        Row("Freshness and status"),
        Panel(
            "state-timeline",
            "Status",
            [Query(status_code_expr(PAIRS), "{{data_type}}")],
            width=24,
            height=10,
            description="The kind of each data type's current status over time; the table below "
            "names the exact status.",
            defaults={
                "mappings": status_mappings(),
                "color": {"mode": "thresholds"},
                "thresholds": thresholds((None, "text")),
            },
            options={
                "showValue": "never",
                "mergeValues": True,
                "rowHeight": 0.8,
                "legend": {"showLegend": True, "displayMode": "list", "placement": "bottom"},
            },
        ),
        table(
            "Data types",
            Query(f"codat_data_status{{{PAIRS}}} == 1", instant=True, table=True),
            Query(
                f"codat_data_last_successful_sync_timestamp_seconds{{{PAIRS}}} * 1000",
                instant=True,
                table=True,
            ),
            Query(
                f"time() - codat_data_last_successful_sync_timestamp_seconds{{{PAIRS}}}",
                instant=True,
                table=True,
            ),
            Query(f"codat_data_sync_schedule_seconds{{{PAIRS}}}", instant=True, table=True),
            Query(
                "company_data_type:codat_data_staleness_threshold_seconds:effective"
                f'{{{PAIRS},severity="warning"}}',
                instant=True,
                table=True,
            ),
            width=12,
            height=10,
            description="Current status, last successful sync, Codat's sync schedule and the age at "
            "which CodatDataStale warns (from the schedule, else the static fallback); data types "
            "that never synced have no sync time.",
            transformations=[
                {"id": "merge", "options": {}},
                organize(
                    exclude=("Time", "__name__", "job", "instance", "company_id", "severity", "Value #A"),
                    rename={
                        "data_type": "Data type",
                        "status": "Status",
                        "Value #B": "Last successful sync",
                        "Value #C": "Since",
                        "Value #D": "Schedule",
                        "Value #E": "Warns after",
                    },
                    order=("data_type", "status", "Value #B", "Value #C", "Value #D", "Value #E"),
                ),
            ],
            overrides=[
                unit_override("Last successful sync", "dateTimeAsIso"),
                unit_override("Since", "s"),
                unit_override("Schedule", "s"),
                unit_override("Warns after", "s"),
            ],
            sort_by="Since",
        ),
        timeseries(
            "Time since last successful sync",
            Query(f"time() - codat_data_last_successful_sync_timestamp_seconds{{{PAIRS}}}", "{{data_type}}"),
            unit="s",
            height=10,
        ),
        Row("Sync history"),
        timeseries(
            "Finished syncs by data type and status",
            Query(
                "sum by (data_type, status) "
                f"(increase(codat_pull_operations_total{{{PAIRS}}}[$__rate_interval]))",
                "{{data_type}} {{status}}",
            ),
            bars=True,
            stacked=True,
            width=12,
        ),
        table(
            "Finished syncs in the time range",
            Query(
                f"sum by (data_type, status) (increase(codat_pull_operations_total{{{PAIRS}}}[$__range]))",
                instant=True,
                table=True,
            ),
            width=12,
            transformations=[
                organize(
                    exclude=("Time",),
                    rename={"data_type": "Data type", "status": "Status", "Value": "Syncs"},
                    order=("data_type", "status", "Value"),
                )
            ],
            overrides=[unit_override("Syncs", "short")],
        ),
        timeseries(
            "Syncs in progress",
            Query(f"codat_pull_operations_in_progress{{{PAIRS}}}", "{{data_type}}"),
            width=12,
        ),
        timeseries(
            "Oldest open sync",
            Query(f"time() - codat_pull_operation_oldest_open_timestamp_seconds{{{PAIRS}}}", "{{data_type}}"),
            unit="s",
            width=12,
            description="How long the oldest still-open sync of each data type has been open "
            "(CodatSyncStuck fires past the schedule's threshold).",
        ),
        table(
            "Auto-refresh attempts",
            Query(
                f"time() - codat_refresh_last_attempt_timestamp_seconds{{{COMPANY}}}",
                instant=True,
                table=True,
            ),
            width=12,
            description='Time since auto-refresh last tried each data type ("all" = every data type '
            "at once). Empty when auto-refresh is off or never acted on this company.",
            transformations=[
                organize(
                    exclude=("Time", "__name__", "job", "instance", "company_id"),
                    rename={"data_type": "Data type", "Value": "Since last attempt"},
                    order=("data_type", "Value"),
                )
            ],
            overrides=[unit_override("Since last attempt", "s")],
        ),
    ]
    return dashboard(
        COMPANY_UID,
        "Codat / Company",
        "One Codat company: connections, freshness and status per data type, and its sync history.",
        layout(items),
        [
            variable_datasource(),
            variable_query(
                "company",
                "Company",
                "query_result(codat_company_info)",
                # Shows the company name and passes its id (Prometheus sorts labels by name).
                regex='/company_id="(?<value>[^"]+)",company_name="(?<text>[^"]*)"/',
            ),
            variable_query(
                "data_type",
                "Data type",
                'label_values(codat_data_status{company_id="$company"}, data_type)',
                multi=True,
            ),
        ],
        time_from="now-7d",
    )


DASHBOARDS: dict[str, Callable[[], Json]] = {"codat-overview.json": overview, "codat-company.json": company}


def render(board: Json) -> str:
    """The JSON text of a dashboard, as committed."""
    return json.dumps(board, indent=2, ensure_ascii=False) + "\n"


def build() -> dict[str, str]:
    """Every dashboard's file name and JSON text."""
    return {name: render(make()) for name, make in DASHBOARDS.items()}


def main(argv: Sequence[str] | None = None) -> int:
    """Write the dashboards, or with --check report whether the committed ones are current."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if grafana/dashboards/ is out of date")
    args = parser.parse_args(argv)
    stale = []
    for name, text in build().items():
        path = OUTPUT_DIR / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print(f"out of date: {', '.join(stale)}; run python -m grafana.build", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
