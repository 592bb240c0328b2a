"""The JSON shapes the simulator answers with, field for field as Codat's Platform API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from exporter.simulator.state import CompanyState, ConnectionState, DataTypeState, Operation
from exporter.simulator.wire import codat_timestamp

PORTAL = "https://app.codat.io"


def _ts(when: datetime | None) -> str | None:
    return codat_timestamp(when) if when is not None else None


def connection_json(company: CompanyState, conn: ConnectionState) -> dict[str, Any]:
    """A ``dataConnections[]`` entry."""
    body: dict[str, Any] = {
        "id": conn.id,
        "integrationId": conn.integration_id,
        "integrationKey": conn.integration_key,
        "sourceId": conn.source_id,
        "platformName": conn.platform_name,
        "linkUrl": f"https://link-api.codat.io/companies/{company.id}/connections/{conn.id}/start",
        "status": conn.status,
        "lastSync": _ts(conn.last_sync),
        "created": codat_timestamp(conn.created),
        "sourceType": conn.source_type,
    }
    if conn.last_sync is None:
        del body["lastSync"]
    return body


def company_json(company: CompanyState) -> dict[str, Any]:
    """A company as ``GET /companies`` lists it."""
    body: dict[str, Any] = {
        "id": company.id,
        "name": company.name,
        "description": company.description,
        "redirect": f"https://link.codat.io/company/{company.id}",
        "lastSync": _ts(company.last_sync),
        "created": codat_timestamp(company.created),
        "createdByUserName": "Simulator",
        "products": [],
        "tags": dict(company.tags),
        "referenceSubsidiaryCompanies": [],
        "dataConnections": [connection_json(company, c) for c in company.connections],
    }
    if company.description is None:
        del body["description"]
    if company.last_sync is None:
        del body["lastSync"]
    return body


def company_reference(company: CompanyState) -> dict[str, Any]:
    """The ``referenceCompany`` block of webhook payloads."""
    return {
        "id": company.id,
        "name": company.name,
        "description": company.description or "",
        "links": {"portal": f"{PORTAL}/companies/{company.id}/summary"},
        "tags": dict(company.tags),
    }


def data_status_json(state: DataTypeState, now: datetime) -> dict[str, Any]:
    """One dataStatus entry; a never-synced type has only ``dataType``."""
    body: dict[str, Any] = {"dataType": state.data_type}
    if state.running is not None:
        body["currentStatus"] = state.running.status_at(now)
    elif state.latest_status is not None:
        body["currentStatus"] = state.latest_status
    if state.last_success is not None:
        body["lastSuccessfulSync"] = codat_timestamp(state.last_success)
    if state.latest_sync_id is not None:
        body["latestSyncId"] = state.latest_sync_id
    if state.latest_success_id is not None:
        body["latestSuccessfulSyncId"] = state.latest_success_id
    return body


def data_statuses_json(company: CompanyState, now: datetime) -> dict[str, Any]:
    """``GET /companies/{id}/dataStatus``: an object keyed by data type."""
    return {name: data_status_json(state, now) for name, state in company.types.items()}


def operation_json(op: Operation, now: datetime) -> dict[str, Any]:
    """A pull operation as it stands at ``now``."""
    status = op.status_at(now)
    finished = op.is_finished(now)
    body: dict[str, Any] = {
        "id": op.id,
        "companyId": op.company_id,
        "connectionId": op.connection_id,
        "dataType": op.data_type,
        "status": status,
        "statusDescription": None,
        "errorMessage": op.error_message if finished and status != "Complete" else None,
        "requested": codat_timestamp(op.requested),
        "progress": op.progress_at(now),
        "isCompleted": finished and status == "Complete",
        "isErrored": finished and status not in ("Complete", "NotSupported", "Cancelled"),
    }
    completed = op.completed_at()
    if finished and completed is not None:
        body["completed"] = codat_timestamp(completed)
    return body
