"""The JSON shapes the simulator answers with, field for field as Codat's Platform API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from exporter.simulator.state import (
    CompanyState,
    ConnectionErrorState,
    ConnectionState,
    DataTypeState,
    FetchGroup,
    Operation,
)
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
        # Both nullable in the spec's Connection schema; Codat's free-form connectionInfo has no
        # documented content, so the simulator only echoes what a scenario sets.
        "dataConnectionErrors": [connection_error_json(e) for e in conn.errors],
        "connectionInfo": conn.info,
    }
    if conn.last_sync is None:
        del body["lastSync"]
    return body


def connection_error_json(error: ConnectionErrorState) -> dict[str, Any]:
    """A ``dataConnectionErrors[]`` entry (spec: Connection.definitions.dataConnectionError)."""
    return {
        "statusCode": error.status_code,
        "statusText": error.status_text,
        "errorMessage": error.message,
        "erroredOnUtc": codat_timestamp(error.errored_on),
        "status": error.status,
        "resolvedOnUtc": _ts(error.resolved_on),
    }


def reported_schedule(hours: float | None) -> int:
    """``syncSchedule`` as Codat's integer hours: 0 for no automatic syncs (an assumption: the
    docs name the "None" frequency but not its value), sub-hour demo schedules as 1."""
    if hours is None:
        return 0
    return max(1, round(hours))


def sync_setting_json(state: DataTypeState, order: int) -> dict[str, Any]:
    """One ``SyncSetting``: the four required fields plus ``isLocked``."""
    return {
        "dataType": state.data_type,
        "fetchOnFirstLink": state.fetch_on_first_link,
        "syncSchedule": reported_schedule(state.schedule_hours),
        "syncOrder": order,
        "isLocked": False,
    }


def company_sync_settings_json(company: CompanyState, default_hours: int) -> dict[str, Any]:
    """``GET /companies/{id}/syncSettings`` (spec schema CompanySyncSettings)."""
    settings = [sync_setting_json(state, i) for i, state in enumerate(company.types.values())]
    overrides = any(s["syncSchedule"] != default_hours or not s["fetchOnFirstLink"] for s in settings)
    return {"companyId": company.id, "settings": settings, "overridesDefaults": overrides}


def profile_sync_settings_json(client_id: str, data_types: tuple[str, ...], hours: int) -> dict[str, Any]:
    """``GET /profile/syncSettings`` (spec schema SyncSettings): the client-wide defaults."""
    settings = [
        {
            "dataType": data_type,
            "fetchOnFirstLink": True,
            "syncSchedule": hours,
            "syncOrder": i,
            "isLocked": False,
        }
        for i, data_type in enumerate(data_types)
    ]
    return {"clientId": client_id, "settings": settings, "overridesDefaults": False}


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


def read_completed_payload(company: CompanyState, group: FetchGroup) -> dict[str, Any]:
    """The ``read.completed`` payload of a finished fetch group: one ``dataTypes[]`` entry per sync.

    Spec ``ReadCompletedWebhook``: ``recordsModified`` is True when records were created, updated
    or deleted; ``issues[]`` carries ``warning.validation`` items linking to the validation log.
    """
    last_success = max(
        (s.last_success for s in company.types.values() if s.last_success is not None), default=None
    )
    items = []
    for op in group.finished:
        item: dict[str, Any] = {
            "connectionId": op.connection_id,
            "dataType": op.data_type,
            "recordsModified": op.records_modified,
            "status": op.final_status,
        }
        if op.validation_issues:
            item["issues"] = [
                {
                    "type": "warning.validation",
                    "message": f"Some {op.data_type} records did not pass validation; see the logs.",
                    "links": {
                        "logs": f"https://api.codat.io/companies/{company.id}/sync/{op.id}/validation",
                        "portal": f"{PORTAL}/companies/{company.id}/pull-history",
                        "readMore": "https://docs.codat.io/using-the-api/get-data-troubleshooting#warning.validation",
                    },
                }
            ] * op.validation_issues
        items.append(item)
    return {
        "referenceCompany": company_reference(company),
        "modifiedFromDate": _ts(last_success),
        "dataTypes": items,
    }


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
