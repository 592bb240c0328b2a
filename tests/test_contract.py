"""The simulator's real responses match our own JSON Schemas of Codat's documented shapes.

The schemas in ``tests/schemas`` are written from Codat's Platform API
reference (DataStatus, PullOperation, PagingInfo, Company and Connection with
its dataConnectionErrors, ErrorMessage, CompanySyncSettings / SyncSettings /
SyncSetting, and the ReadCompletedWebhook, ConnectionWebhook and CompanyWebhook
payloads). If
the simulator drifts from Codat's shapes, the client tests against it would
prove nothing; this test catches the drift.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests
from jsonschema import Draft202012Validator, FormatChecker  # type: ignore[import-untyped, unused-ignore]
from referencing import Registry, Resource

from exporter.codat.auth import authorization_header
from exporter.simulator import FakeClock, Scenario, Simulator
from tests.conftest import RunningSimulator
from tests.support.webhook_capture import webhook_receiver

SCHEMAS = Path(__file__).parent / "schemas"


def _registry() -> Registry[Any]:
    resources = []
    for path in sorted(SCHEMAS.glob("*.json")):
        schema = json.loads(path.read_text())
        resources.append((schema["$id"], Resource.from_contents(schema)))
    return Registry().with_resources(resources)


REGISTRY = _registry()


def _validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{name}.json").read_text())
    return Draft202012Validator(schema, registry=REGISTRY, format_checker=FormatChecker())


def _errors(name: str, body: object) -> list[str]:
    return [
        f"{'/'.join(str(p) for p in e.absolute_path)}: {e.message}"
        for e in _validator(name).iter_errors(body)
    ]


def _get(running: RunningSimulator, path: str, **params: int) -> requests.Response:
    headers = {"Authorization": authorization_header(running.api_key)}
    return requests.get(running.url + path, params=params, headers=headers, timeout=10)


@pytest.mark.parametrize("path", sorted(p.name for p in SCHEMAS.glob("*.json")))
def test_every_schema_is_a_valid_json_schema(path: str) -> None:
    Draft202012Validator.check_schema(json.loads((SCHEMAS / path).read_text()))


def test_companies_page_matches_the_schema(simulator: RunningSimulator) -> None:
    body = _get(simulator, "/companies", page=1, pageSize=3).json()
    assert _errors("companies_page", body) == []
    assert "next" in body["_links"]


def test_last_companies_page_matches_the_schema(simulator: RunningSimulator) -> None:
    total = len(simulator.sim.company_ids)
    body = _get(simulator, "/companies", page=total, pageSize=1).json()
    assert _errors("companies_page", body) == []
    assert "next" not in body["_links"]


def test_data_status_of_every_demo_company_matches_the_schema(simulator: RunningSimulator) -> None:
    for company_id in simulator.sim.company_ids:
        body = _get(simulator, f"/companies/{company_id}/dataStatus").json()
        assert _errors("data_status", body) == [], company_id


def test_history_page_of_every_demo_company_matches_the_schema(simulator: RunningSimulator) -> None:
    for company_id in simulator.sim.company_ids:
        body = _get(simulator, f"/companies/{company_id}/data/history", page=1, pageSize=100).json()
        assert _errors("history_page", body) == [], company_id


def test_one_pull_operation_matches_the_schema(simulator: RunningSimulator) -> None:
    company_id = simulator.sim.company_id_by_name("Acme Trading Ltd")
    dataset = simulator.sim.operations(company_id)[-1]["id"]
    body = _get(simulator, f"/companies/{company_id}/data/history/{dataset}").json()
    assert _errors("pull_operation", body) == []


def test_refresh_response_matches_the_schema(simulator: RunningSimulator) -> None:
    company_id = simulator.sim.company_id_by_name("Acme Trading Ltd")
    simulator.sim.complete_syncs_now(company_id)
    headers = {"Authorization": authorization_header(simulator.api_key)}
    response = requests.post(
        f"{simulator.url}/companies/{company_id}/data/queue/invoices", headers=headers, timeout=10
    )
    assert response.status_code == 200
    assert _errors("pull_operation", response.json()) == []


@pytest.mark.parametrize(
    ("path", "status"),
    [("/companies/00000000-0000-0000-0000-000000000000/dataStatus", 404), ("/companies", 401)],
)
def test_error_bodies_match_the_schema(simulator: RunningSimulator, path: str, status: int) -> None:
    headers = {"Authorization": authorization_header("wrong")} if status == 401 else None
    if headers is None:
        response = _get(simulator, path)
    else:
        response = requests.get(simulator.url + path, headers=headers, timeout=10)
    assert response.status_code == status
    body = response.json()
    assert _errors("error_message", body) == []
    assert body["statusCode"] == status


def test_the_schemas_reject_what_codat_would_never_send() -> None:
    # Guards against schemas so loose they accept anything.
    assert _errors("pull_operation", {"id": "x"})
    assert _errors("data_status", {"invoices": {"currentStatus": "Complete"}})
    assert _errors(
        "data_status", {"invoices": {"dataType": "invoices", "lastSuccessfulSync": "2024-09-01T23:59"}}
    )
    assert _errors("companies_page", {"results": [], "pageNumber": 1, "pageSize": 100, "totalResults": 0})
    assert _errors("error_message", {"statusCode": 200, "service": "PublicApi", "error": "x"})


def test_company_sync_settings_of_every_demo_company_match_the_schema(simulator: RunningSimulator) -> None:
    for company_id in simulator.sim.company_ids:
        body = _get(simulator, f"/companies/{company_id}/syncSettings").json()
        assert _errors("company_sync_settings", body) == [], company_id


def test_profile_sync_settings_match_the_schema(simulator: RunningSimulator) -> None:
    assert _errors("profile_sync_settings", _get(simulator, "/profile/syncSettings").json()) == []


def test_connections_of_every_demo_company_match_the_schema(simulator: RunningSimulator) -> None:
    # Let failures raise (and successes resolve) connection errors first.
    simulator.clock.advance(600)
    seen_errors = 0
    for company_id in simulator.sim.company_ids:
        body = _get(simulator, f"/companies/{company_id}/connections").json()
        assert _errors("connections_page", body) == [], company_id
        seen_errors += sum(len(c["dataConnectionErrors"] or []) for c in body["results"])
    assert seen_errors > 0, "the demo should produce connection errors to check"


def test_every_webhook_the_simulator_sends_matches_the_schema() -> None:
    with webhook_receiver() as hooks:
        clock = FakeClock()
        sim = Simulator(Scenario.demo(seed=1), api_key="demo", clock=clock, webhook_url=hooks.url)
        try:
            healthy = sim.company_id_by_name("Acme Trading Ltd")
            pending = sim.company_id_by_name("Granite Builders")
            sim.set_connection_status(healthy, "Deauthorized")
            sim.set_connection_status(healthy, "Linked")
            sim.set_connection_status(pending, "Linked")
            added = sim.add_company("Contract Ltd")
            sim.remove_company(added)
            clock.advance(300)
            assert sim.webhooks.wait_until_idle()
        finally:
            sim.close()
        events = hooks.events()
    kinds = {e["eventType"] for e in events}
    assert {
        "read.completed",
        "read.completed.initial",
        "connection.connected",
        "connection.disconnected",
        "connection.reconnected",
        "company.created",
        "company.deleted",
    } <= kinds
    assert any(len(e["payload"].get("dataTypes", [])) > 1 for e in events), "no event batches data types"
    assert any(i.get("issues") for e in events for i in e["payload"].get("dataTypes", []))
    for event in events:
        assert _errors("webhook_events", event) == [], event["eventType"]


def test_the_new_schemas_reject_what_codat_would_never_send() -> None:
    good = {"dataType": "invoices", "fetchOnFirstLink": True, "syncSchedule": 24, "syncOrder": 0}
    assert _errors("sync_setting", good) == []
    assert _errors("sync_setting", {**good, "syncSchedule": 0.5})
    assert _errors("sync_setting", {"dataType": "invoices"})
    envelope = {
        "id": "743ec94a-8aa4-44bb-8bd4-e1855ee0e74b",
        "eventType": "read.completed",
        "generatedDate": "2026-01-05T09:00:00Z",
        "payload": {"referenceCompany": {"id": "743ec94a-8aa4-44bb-8bd4-e1855ee0e74b"}, "dataTypes": []},
    }
    assert _errors("webhook_events", envelope)  # a read of no data type
    item = {
        "connectionId": "743ec94a-8aa4-44bb-8bd4-e1855ee0e74b",
        "dataType": "invoices",
        "recordsModified": "yes",
        "status": "Complete",
    }
    envelope["payload"]["dataTypes"] = [item]  # type: ignore[index]
    assert _errors("webhook_events", envelope)
    assert _errors("webhook_events", {**envelope, "eventType": "connection.sideways"})
