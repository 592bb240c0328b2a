"""The simulated Codat API over real HTTP: paging, queries, auth, refresh semantics and error shapes."""

from __future__ import annotations

import base64
import re
from typing import Any

import requests

from tests.conftest import RunningSimulator

AUTH = {"Authorization": "Basic " + base64.b64encode(b"demo").decode()}
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{7}Z$")


def get(sim: RunningSimulator, path: str, **params: Any) -> requests.Response:
    return requests.get(sim.url + path, params=params, headers=AUTH, timeout=10)


def post(sim: RunningSimulator, path: str, **params: Any) -> requests.Response:
    return requests.post(sim.url + path, params=params, headers=AUTH, timeout=10)


def assert_error_shape(body: dict[str, Any], status: int) -> None:
    assert body["statusCode"] == status
    assert set(body) >= {
        "statusCode",
        "service",
        "error",
        "correlationId",
        "canBeRetried",
        "detailedErrorCode",
    }
    assert re.fullmatch(r"[0-9a-f]{32}", body["correlationId"])


def test_companies_first_page_links_to_next_but_not_previous(simulator: RunningSimulator) -> None:
    body = get(simulator, "/companies", page=1, pageSize=3).json()
    assert body["pageNumber"] == 1
    assert body["pageSize"] == 3
    assert body["totalResults"] == 11
    assert len(body["results"]) == 3
    assert body["_links"] == {
        "self": {"href": "/companies"},
        "current": {"href": "/companies?page=1&pageSize=3"},
        "next": {"href": "/companies?page=2&pageSize=3"},
    }


def test_companies_last_page_links_to_previous_but_not_next(simulator: RunningSimulator) -> None:
    body = get(simulator, "/companies", page=4, pageSize=3).json()
    assert len(body["results"]) == 2
    assert "next" not in body["_links"]
    assert body["_links"]["previous"] == {"href": "/companies?page=3&pageSize=3"}


def test_paging_through_companies_sees_each_company_once(simulator: RunningSimulator) -> None:
    seen: list[str] = []
    href: str | None = "/companies?page=1&pageSize=3"
    while href:
        body = requests.get(simulator.url + href, headers=AUTH, timeout=10).json()
        seen.extend(c["id"] for c in body["results"])
        href = body["_links"].get("next", {}).get("href")
    assert sorted(seen) == sorted(simulator.sim.company_ids)


def test_links_keep_the_query(simulator: RunningSimulator) -> None:
    body = get(simulator, "/companies", pageSize=2, query="dataConnections.status=Linked").json()
    assert body["totalResults"] == 9
    assert (
        body["_links"]["current"]["href"]
        == "/companies?page=1&pageSize=2&query=dataConnections.status%3DLinked"
    )
    assert body["_links"]["next"]["href"].startswith("/companies?page=2&pageSize=2&query=")


def test_page_size_above_5000_is_rejected(simulator: RunningSimulator) -> None:
    assert get(simulator, "/companies", pageSize=5000).status_code == 200
    response = get(simulator, "/companies", pageSize=5001)
    assert response.status_code == 400
    assert_error_shape(response.json(), 400)
    assert get(simulator, "/companies", page=0).status_code == 400


def test_company_query_on_connection_status_and_tags(simulator: RunningSimulator) -> None:
    deauthorized = get(simulator, "/companies", query="dataConnections.status=Deauthorized").json()
    assert [c["name"] for c in deauthorized["results"]] == ["Foxglove Florists"]
    us = get(simulator, "/companies", tags="region=us").json()
    assert sorted(c["name"] for c in us["results"]) == [
        "Bluebird Bakery",
        "Foxglove Florists",
        "Ironbark Joinery",
        "Juniper Analytics",
    ]
    both = get(simulator, "/companies", tags="region=uk && tier=gold").json()
    assert {c["name"] for c in both["results"]} == {
        "Acme Trading Ltd",
        "Evergreen Logistics",
        "Harbour Health",
    }


def test_company_query_on_last_sync_date(simulator: RunningSimulator) -> None:
    recent = get(simulator, "/companies", query="lastSync>=2026-01-04").json()
    names = {c["name"] for c in recent["results"]}
    assert "Driftwood Outfitters" not in names  # last synced three days before the clock's start
    assert "Granite Builders" not in names  # never synced: null is not queryable
    assert "Acme Trading Ltd" in names


def test_malformed_company_query_is_a_400_from_clients_api(simulator: RunningSimulator) -> None:
    response = get(simulator, "/companies", query="name==x")
    assert response.status_code == 400
    body = response.json()
    assert_error_shape(body, 400)
    assert body["service"] == "ClientsApi"
    assert body["error"] == "Error parsing query - Malformed query."


def test_company_shape_matches_codat(simulator: RunningSimulator) -> None:
    company = next(
        c for c in get(simulator, "/companies").json()["results"] if c["name"] == "Copperfield Consulting"
    )
    assert set(company) >= {"id", "name", "created", "lastSync", "tags", "dataConnections", "redirect"}
    assert TIMESTAMP.match(company["lastSync"])
    assert [c["sourceType"] for c in company["dataConnections"]] == ["Accounting", "Banking"]
    for connection in company["dataConnections"]:
        assert set(connection) >= {
            "id",
            "integrationId",
            "integrationKey",
            "sourceId",
            "sourceType",
            "platformName",
            "linkUrl",
            "status",
            "lastSync",
            "created",
        }
        assert connection["status"] == "Linked"
    assert company["lastSync"] == max(c["lastSync"] for c in company["dataConnections"])


def test_data_status_fields_and_never_synced_entries(simulator: RunningSimulator) -> None:
    healthy = get(
        simulator, f"/companies/{simulator.sim.company_id_by_name('Acme Trading Ltd')}/dataStatus"
    ).json()
    assert len(healthy) == 10
    complete = [e for e in healthy.values() if e.get("currentStatus") == "Complete"]
    assert complete
    for entry in complete:
        assert TIMESTAMP.match(entry["lastSuccessfulSync"])
        assert entry["latestSyncId"] == entry["latestSuccessfulSyncId"]
    never = get(
        simulator, f"/companies/{simulator.sim.company_id_by_name('Granite Builders')}/dataStatus"
    ).json()
    assert never["invoices"] == {"dataType": "invoices"}


def test_failing_company_shows_error_with_older_success(simulator: RunningSimulator) -> None:
    body = get(
        simulator, f"/companies/{simulator.sim.company_id_by_name('Evergreen Logistics')}/dataStatus"
    ).json()
    assert {e["currentStatus"] for e in body.values()} == {"FetchError"}
    with_success = [e for e in body.values() if "lastSuccessfulSync" in e]
    assert with_success
    assert all(e["latestSyncId"] != e["latestSuccessfulSyncId"] for e in with_success)


def test_history_orders_filters_and_pages(simulator: RunningSimulator) -> None:
    company_id = simulator.sim.company_id_by_name("Evergreen Logistics")
    path = f"/companies/{company_id}/data/history"
    newest_first = get(simulator, path, orderBy="-requested", pageSize=5000).json()["results"]
    requested = [op["requested"] for op in newest_first]
    assert requested == sorted(requested, reverse=True)
    failed = get(simulator, path, query="status!=Complete&&status!=NotSupported", pageSize=5000).json()
    assert failed["totalResults"] > 0
    assert all(op["isErrored"] and not op["isCompleted"] for op in failed["results"])
    invoices = get(simulator, path, query="dataType=invoices", pageSize=2, orderBy="-requested").json()
    assert all(op["dataType"] == "invoices" for op in invoices["results"])
    assert (
        invoices["_links"]["current"]["href"]
        == f"{path}?page=1&pageSize=2&query=dataType%3Dinvoices&orderBy=-requested"
    )


def test_history_operation_shape(simulator: RunningSimulator) -> None:
    company_id = simulator.sim.company_id_by_name("Acme Trading Ltd")
    op = get(simulator, f"/companies/{company_id}/data/history").json()["results"][0]
    assert set(op) >= {
        "id",
        "companyId",
        "connectionId",
        "dataType",
        "status",
        "statusDescription",
        "errorMessage",
        "requested",
        "completed",
        "progress",
        "isCompleted",
        "isErrored",
    }
    single = get(simulator, f"/companies/{company_id}/data/history/{op['id']}").json()
    assert single == op


def test_history_query_on_is_completed_is_rejected_like_codat(simulator: RunningSimulator) -> None:
    company_id = simulator.sim.company_ids[0]
    response = get(simulator, f"/companies/{company_id}/data/history", query="isCompleted=true")
    assert response.status_code == 400
    body = response.json()
    assert body["service"] == "PullApi"
    assert body["error"] == "Error parsing query - Could not resolve property isCompleted on Dataset"
    malformed = get(simulator, f"/companies/{company_id}/data/history", query="status>>Complete").json()
    assert malformed["error"] == "Error parsing query - Malformed query."


def test_unknown_company_and_dataset_are_404(simulator: RunningSimulator) -> None:
    missing = "00000000-0000-4000-8000-000000000000"
    for response in (
        get(simulator, f"/companies/{missing}/dataStatus"),
        get(simulator, f"/companies/{missing}/data/history"),
        post(simulator, f"/companies/{missing}/data/queue/invoices"),
        post(simulator, f"/companies/{missing}/data/all"),
    ):
        assert response.status_code == 404
        assert response.json()["error"] == f"No company was found with ID {missing}"
    company_id = simulator.sim.company_ids[0]
    assert get(simulator, f"/companies/{company_id}/data/history/{missing}").status_code == 404


def test_unknown_route_is_404_and_wrong_method_is_405(simulator: RunningSimulator) -> None:
    assert get(simulator, "/nope").status_code == 404
    assert post(simulator, "/companies").status_code == 405


def test_missing_or_wrong_key_is_401(simulator: RunningSimulator) -> None:
    cases = [
        {},
        {"Authorization": "Basic " + base64.b64encode(b"wrong").decode()},
        {"Authorization": "Basic demo"},
        {"Authorization": "Bearer " + base64.b64encode(b"demo").decode()},
    ]
    for headers in cases:
        response = requests.get(simulator.url + "/companies", headers=headers, timeout=10)
        assert response.status_code == 401
        body = response.json()
        assert_error_shape(body, 401)
        assert body["error"] == "Unauthorized"
        assert "X-Rate-Limit-Limit" in response.headers


def test_refresh_data_type_returns_queued_operation(simulator: RunningSimulator) -> None:
    company_id = simulator.sim.company_id_by_name("Driftwood Outfitters")
    response = post(simulator, f"/companies/{company_id}/data/queue/invoices")
    assert response.status_code == 200
    op = response.json()
    assert op["status"] == "Queued"
    assert op["companyId"] == company_id
    assert op["dataType"] == "invoices"
    assert op["isCompleted"] is False
    assert "completed" not in op
    status = get(simulator, f"/companies/{company_id}/dataStatus").json()["invoices"]
    assert status["latestSyncId"] == op["id"]
    assert status["currentStatus"] == "Queued"


def test_refresh_while_running_is_dataset_already_in_progress(simulator: RunningSimulator) -> None:
    company_id = simulator.sim.company_id_by_name("Driftwood Outfitters")
    first = post(simulator, f"/companies/{company_id}/data/queue/bills").json()
    second = post(simulator, f"/companies/{company_id}/data/queue/bills")
    assert second.status_code == 400
    assert second.json()["error"] == (
        f"DatasetAlreadyInProgressException: Cannot queue bills sync for {company_id} "
        f"as previous sync {first['id']} is still in progress"
    )
    simulator.clock.advance(120)
    assert post(simulator, f"/companies/{company_id}/data/queue/bills").status_code == 200


def test_refresh_with_connection_id(simulator: RunningSimulator) -> None:
    company_id = simulator.sim.company_id_by_name("Copperfield Consulting")
    banking = simulator.sim.company(company_id)["dataConnections"][1]["id"]
    simulator.sim.complete_syncs_now(company_id)
    op = post(simulator, f"/companies/{company_id}/data/queue/payments", connectionId=banking).json()
    assert op["connectionId"] == banking
    unknown = post(
        simulator,
        f"/companies/{company_id}/data/queue/bills",
        connectionId="11111111-1111-4111-8111-111111111111",
    )
    assert unknown.status_code == 404


def test_refresh_all_queues_each_supported_idle_type(simulator: RunningSimulator) -> None:
    company_id = simulator.sim.company_id_by_name("Harbour Health")
    running_before = simulator.sim.running_operations(company_id)
    response = post(simulator, f"/companies/{company_id}/data/all")
    assert response.status_code == 204
    assert response.content == b""
    # 10 types, two NotSupported: the other 8 now run (those already running are left alone).
    assert simulator.sim.running_operations(company_id) == 8
    assert running_before < 8
    again = post(simulator, f"/companies/{company_id}/data/all")
    assert again.status_code == 204
    assert simulator.sim.running_operations(company_id) == 8


def test_refresh_of_unknown_data_type_is_404(simulator: RunningSimulator) -> None:
    company_id = simulator.sim.company_ids[0]
    response = post(simulator, f"/companies/{company_id}/data/queue/commerce-orders")
    assert response.status_code == 404
    assert "not supported" in response.json()["error"]


def test_request_log_and_counters_name_endpoint_and_company(simulator: RunningSimulator) -> None:
    simulator.sim.reset_request_log()
    company_id = simulator.sim.company_ids[0]
    get(simulator, "/companies")
    get(simulator, f"/companies/{company_id}/dataStatus")
    get(simulator, f"/companies/{company_id}/dataStatus")
    get(simulator, f"/companies/{company_id}/data/history", query="status=Complete")
    assert simulator.sim.request_log[0] == ("GET", "/companies", None)
    assert simulator.sim.request_log[1] == ("GET", f"/companies/{company_id}/dataStatus", company_id)
    assert simulator.sim.count_requests("dataStatus", company_id) == 2
    assert simulator.sim.count_requests("history") == 1
    assert simulator.sim.count_requests(company_id=company_id) == 3
    assert simulator.sim.count_requests() == 4
