"""What Codat knows beyond dataStatus, simulated: sync settings, connections and their errors, what
``POST /data/all`` queues, stuck syncs, and webhooks shaped the way Codat sends them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from exporter.codat.auth import authorization_header
from exporter.simulator import FakeClock, Scenario, Simulator, SimulatorServer
from exporter.simulator.scenario import ConnectionSpec
from tests.support.webhook_capture import Receiver, webhook_receiver

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
TYPES = ("invoices", "bills", "customers", "banking-accounts")


def scenario() -> Scenario:
    quick = {"history": 2, "records_modified_probability": 1.0}
    return Scenario.from_dict(
        {
            "name": "truth",
            "data_types": list(TYPES),
            "sync": {"stages": [["Queued", 2], ["Fetching", 8]]},
            "profiles": {
                "hourly": {"sync_schedule_hours": 1, "history_interval_hours": 1, **quick},
                "weekly": {"sync_schedule_hours": 168, "last_success_hours_ago": 50, **quick},
                "mixed": {
                    "sync_schedule_hours": 24,
                    "sync_schedules": {"invoices": 1, "banking-*": None},
                    "not_fetched_on_first_link": ["bills"],
                    **quick,
                },
                "stuck": {"sync_schedule_hours": 24, "stuck": ["invoices"], "stuck_since_hours": 6, **quick},
                "quiet": {"sync_schedule_hours": None, "history": 0, "never_synced": ["*"]},
                "checked": {"sync_schedule_hours": None, "validation_warning_probability": 1.0, **quick},
            },
            "companies": [
                {"name": "Hourly Ltd", "profile": "hourly"},
                {"name": "Weekly Ltd", "profile": "weekly"},
                {
                    "name": "Mixed Ltd",
                    "profile": "mixed",
                    "connections": [
                        {"platform": "Xero"},
                        {
                            "platform": "Plaid",
                            "source_type": "Banking",
                            "status": "Deauthorized",
                            "connection_info": {"institution": "Simulated Bank"},
                        },
                    ],
                },
                {"name": "Stuck Ltd", "profile": "stuck", "platform": "QuickBooks Desktop"},
                {"name": "Pending Ltd", "profile": "quiet", "connection_status": "PendingAuth"},
                {"name": "Checked Ltd", "profile": "checked"},
            ],
        }
    )


class Rig:
    """The scenario on a fake clock, over HTTP, with webhooks going to a recording endpoint."""

    def __init__(self, sim: Simulator, server: SimulatorServer, clock: FakeClock, hooks: Receiver) -> None:
        self.sim = sim
        self.server = server
        self.clock = clock
        self.hooks = hooks

    def get(self, path: str) -> Any:
        answer = requests.get(
            self.server.url + path, headers={"Authorization": authorization_header("demo")}, timeout=10
        )
        assert answer.status_code == 200, answer.text
        return answer.json()

    def post(self, path: str) -> requests.Response:
        headers = {"Authorization": authorization_header("demo")}
        return requests.post(self.server.url + path, headers=headers, timeout=10)

    def id(self, name: str) -> str:
        return self.sim.company_id_by_name(name)

    def events(self, event_type: str) -> list[dict[str, Any]]:
        return [e for e in self.hooks.events() if e["eventType"] == event_type]


@pytest.fixture
def rig() -> Iterator[Rig]:
    clock = FakeClock(START)
    with webhook_receiver() as hooks:
        sim = Simulator(scenario(), api_key="demo", clock=clock, webhook_url=hooks.url)
        server = sim.serve()
        try:
            yield Rig(sim, server, clock, hooks)
        finally:
            server.close()


# ----- sync settings -------------------------------------------------------------------------


def test_company_sync_settings_report_each_data_types_schedule_in_hours(rig: Rig) -> None:
    settings = rig.get(f"/companies/{rig.id('Mixed Ltd')}/syncSettings")
    assert settings["companyId"] == rig.id("Mixed Ltd")
    assert settings["overridesDefaults"] is True
    by_type = {s["dataType"]: s for s in settings["settings"]}
    assert {t: s["syncSchedule"] for t, s in by_type.items()} == {
        "invoices": 1,
        "bills": 24,
        "customers": 24,
        "banking-accounts": 0,
    }
    assert by_type["bills"]["fetchOnFirstLink"] is False
    assert by_type["invoices"]["fetchOnFirstLink"] is True
    weekly = rig.get(f"/companies/{rig.id('Weekly Ltd')}/syncSettings")["settings"]
    assert {s["syncSchedule"] for s in weekly} == {168}


def test_profile_sync_settings_are_the_client_wide_defaults(rig: Rig) -> None:
    profile = rig.get("/profile/syncSettings")
    assert [s["dataType"] for s in profile["settings"]] == list(TYPES)
    assert {s["syncSchedule"] for s in profile["settings"]} == {24}
    assert profile["overridesDefaults"] is False


def test_schedules_drive_the_simulators_own_syncs(rig: Rig) -> None:
    rig.clock.advance(timedelta(hours=5).total_seconds())
    hourly, weekly = rig.id("Hourly Ltd"), rig.id("Weekly Ltd")
    for data_type in TYPES:
        assert 4 <= rig.sim.completed_operations(hourly, data_type) <= 6, data_type
    assert rig.sim.completed_operations(weekly) == 0
    rig.clock.advance(timedelta(days=5).total_seconds())
    # Last success was 50 h before the start: the weekly sync falls due 118 h in.
    assert all(rig.sim.completed_operations(weekly, t) == 1 for t in TYPES)


def test_a_company_with_an_unknown_id_has_no_sync_settings(rig: Rig) -> None:
    answer = requests.get(
        rig.server.url + "/companies/00000000-0000-0000-0000-000000000000/syncSettings",
        headers={"Authorization": authorization_header("demo")},
        timeout=10,
    )
    assert answer.status_code == 404


# ----- connections ---------------------------------------------------------------------------


def test_connections_list_carries_errors_and_info(rig: Rig) -> None:
    page = rig.get(f"/companies/{rig.id('Mixed Ltd')}/connections")
    assert page["totalResults"] == 2
    xero, plaid = sorted(page["results"], key=lambda c: c["platformName"] != "Xero")
    assert xero["dataConnectionErrors"] == []
    assert xero["connectionInfo"] is None
    assert plaid["connectionInfo"] == {"institution": "Simulated Bank"}
    linked = rig.get(f"/companies/{rig.id('Mixed Ltd')}/connections?query=status%3DLinked")
    assert [c["id"] for c in linked["results"]] == [xero["id"]]


def test_a_platform_failure_raises_an_active_error_that_a_success_resolves(rig: Rig) -> None:
    company = rig.id("Hourly Ltd")
    rig.sim.complete_syncs_now()
    rig.sim.force_outcome(company, "FetchError", "invoices")
    rig.sim.queue_sync(company, "invoices")
    rig.clock.advance(30)
    [conn] = rig.get(f"/companies/{company}/connections")["results"]
    [error] = conn["dataConnectionErrors"]
    assert error["status"] == "Active"
    assert error["statusCode"] == "503"
    assert error["resolvedOnUtc"] is None
    assert error["erroredOnUtc"].startswith("2026-01-05T09:00:")
    # The same error is embedded in the company's dataConnections.
    assert rig.get(f"/companies/{company}")["dataConnections"][0]["dataConnectionErrors"] == [error]
    rig.sim.force_outcome(company, None, "invoices")
    rig.sim.queue_sync(company, "invoices", outcome="Complete")
    rig.clock.advance(30)
    [conn] = rig.get(f"/companies/{company}/connections")["results"]
    [error] = conn["dataConnectionErrors"]
    assert error["status"] == "Resolved"
    assert error["resolvedOnUtc"] is not None


# ----- POST /data/all ------------------------------------------------------------------------


def test_refresh_all_queues_only_linked_fetch_on_first_link_types(rig: Rig) -> None:
    company = rig.id("Mixed Ltd")
    rig.sim.complete_syncs_now()
    assert rig.post(f"/companies/{company}/data/all").status_code == 204
    statuses = rig.get(f"/companies/{company}/dataStatus")
    running = {t for t, s in statuses.items() if s.get("currentStatus") in ("Queued", "Fetching")}
    # bills is not fetched on first link; banking-accounts is on the deauthorized connection.
    assert running == {"invoices", "customers"}


def test_refresh_all_queues_nothing_for_a_company_without_a_linked_connection(rig: Rig) -> None:
    company = rig.id("Pending Ltd")
    assert rig.post(f"/companies/{company}/data/all").status_code == 204
    rig.clock.advance(60)
    assert rig.sim.completed_operations(company) == 0
    assert rig.get(f"/companies/{company}/data/history")["totalResults"] == 0


# ----- stuck syncs ---------------------------------------------------------------------------


def test_a_stuck_sync_never_completes(rig: Rig) -> None:
    company = rig.id("Stuck Ltd")
    rig.clock.advance(timedelta(days=2).total_seconds())
    status = rig.get(f"/companies/{company}/dataStatus")["invoices"]
    assert status["currentStatus"] == "Fetching"
    history = rig.get(f"/companies/{company}/data/history?query=dataType%3Dinvoices&orderBy=-requested")
    newest = history["results"][0]
    assert newest["status"] == "Fetching"
    assert newest["requested"].startswith("2026-01-05T03:00:00")  # 6 h before the start
    assert "completed" not in newest
    assert rig.post(f"/companies/{company}/data/queue/invoices").status_code == 400
    assert rig.sim.completed_operations(company, "bills") >= 2


# ----- webhooks ------------------------------------------------------------------------------


def test_one_read_completed_reports_every_type_of_a_product_fetch(rig: Rig) -> None:
    company = rig.id("Mixed Ltd")
    rig.sim.complete_syncs_now()
    assert rig.sim.webhooks.wait_until_idle()
    before = len(rig.events("read.completed"))
    rig.post(f"/companies/{company}/data/all")
    rig.clock.advance(60)
    assert rig.sim.webhooks.wait_until_idle()
    mine = [
        e for e in rig.events("read.completed")[before:] if e["payload"]["referenceCompany"]["id"] == company
    ]
    [event] = mine
    items = event["payload"]["dataTypes"]
    assert sorted(i["dataType"] for i in items) == ["customers", "invoices"]
    assert all(isinstance(i["recordsModified"], bool) for i in items)
    assert all(i["connectionId"] for i in items)


def test_validation_warnings_arrive_as_issues(rig: Rig) -> None:
    company = rig.id("Checked Ltd")
    rig.sim.complete_syncs_now()
    rig.sim.queue_sync(company, "invoices", outcome="Complete")
    rig.clock.advance(30)
    assert rig.sim.webhooks.wait_until_idle()
    mine = [e for e in rig.events("read.completed") if e["payload"]["referenceCompany"]["id"] == company]
    [item] = mine[-1]["payload"]["dataTypes"]
    [issue] = item["issues"]
    assert issue["type"] == "warning.validation"
    assert f"/companies/{company}/sync/" in issue["links"]["logs"]
    assert issue["links"]["logs"].endswith("/validation")


def test_linking_sends_connected_then_the_initial_read(rig: Rig) -> None:
    company = rig.id("Pending Ltd")
    rig.sim.set_connection_status(company, "Linked")
    connected = rig.hooks.wait_for_event("connection.connected")
    assert connected["payload"]["referenceCompany"]["id"] == company
    assert connected["payload"]["connection"]["status"] == "Linked"
    rig.clock.advance(60)
    initial = rig.hooks.wait_for_event("read.completed.initial")
    assert initial["payload"]["referenceCompany"]["id"] == company
    assert len(initial["payload"]["dataTypes"]) == len(TYPES)


def test_connection_and_company_lifecycle_events(rig: Rig) -> None:
    company = rig.id("Weekly Ltd")
    rig.sim.set_connection_status(company, "Deauthorized")
    assert (
        rig.hooks.wait_for_event("connection.disconnected")["payload"]["connection"]["status"]
        == "Deauthorized"
    )
    rig.sim.set_connection_status(company, "Linked")
    assert rig.hooks.wait_for_event("connection.reconnected")["payload"]["referenceCompany"]["id"] == company
    with rig.sim.lock:
        now = rig.sim.tick()
        conn = rig.sim.state.add_connection(company, ConnectionSpec(platform="Sage"), now)
        rig.sim.state.fail_connection(company, conn.id, now)
        rig.sim.state.delete_connection(company, conn.id, now)
    for event_type in ("connection.created", "connection.failed", "connection.deleted"):
        assert rig.hooks.wait_for_event(event_type)["payload"]["connection"]["id"] == conn.id
    added = rig.sim.add_company("Newcomer Ltd")
    assert rig.hooks.wait_for_event("company.created")["payload"]["id"] == added
    rig.sim.remove_company(added)
    deleted = rig.hooks.wait_for_event("company.deleted")["payload"]
    assert deleted["id"] == added
    assert "dataConnections" not in deleted
