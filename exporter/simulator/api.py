"""The simulated Codat endpoints: routing, auth, rate limits, faults, and each endpoint's answer.

``handle`` turns one request (method, target, headers) into a ``Reply``; the
socket server in ``http.py`` only reads requests and writes replies.
"""

from __future__ import annotations

import base64
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from exporter.simulator import query as q
from exporter.simulator.paging import PagingError, page_params, page_window, paged
from exporter.simulator.ratelimit import RateDecision
from exporter.simulator.state import CompanyState, Operation, SimulatorError
from exporter.simulator.views import (
    company_json,
    company_sync_settings_json,
    connection_json,
    data_statuses_json,
    operation_json,
    profile_sync_settings_json,
)
from exporter.simulator.wire import dumps, error_body, http_date, reason_text

if TYPE_CHECKING:
    from exporter.simulator.sim import Simulator

_ID = r"(?P<company>[^/]+)"
ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("GET", re.compile(r"^/companies/?$"), "companies"),
    ("GET", re.compile(rf"^/companies/{_ID}/?$"), "company"),
    ("GET", re.compile(rf"^/companies/{_ID}/dataStatus/?$"), "dataStatus"),
    ("GET", re.compile(rf"^/companies/{_ID}/data/history/?$"), "history"),
    ("GET", re.compile(rf"^/companies/{_ID}/data/history/(?P<dataset>[^/]+)/?$"), "pullOperation"),
    ("POST", re.compile(rf"^/companies/{_ID}/data/queue/(?P<data_type>[^/]+)/?$"), "refreshDataType"),
    ("POST", re.compile(rf"^/companies/{_ID}/data/all/?$"), "refreshAll"),
    ("GET", re.compile(rf"^/companies/{_ID}/syncSettings/?$"), "companySyncSettings"),
    ("GET", re.compile(r"^/profile/syncSettings/?$"), "profileSyncSettings"),
    ("GET", re.compile(rf"^/companies/{_ID}/connections/?$"), "connections"),
)
CLIENT_ID = "5b3c6f1e-0d4a-4b8e-9a7c-2f1d3e4c5b6a"
"""The simulated client's id in ``GET /profile/syncSettings``."""
MALFORMED_BODY = b'{"results":[{"id":"3fa85f64-5717-4562-b3fc-2c963f66afa6","name":"Trunc'


@dataclass(slots=True)
class Reply:
    """What to send back; ``reset`` means close the socket without answering."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    reset: bool = False
    latency: float = 0.0


@dataclass(frozen=True, slots=True)
class Route:
    """A matched route: the endpoint name and the path parameters."""

    endpoint: str
    method_allowed: bool
    params: Mapping[str, str]


def match_route(method: str, path: str) -> Route | None:
    """Find the endpoint for a path; ``method_allowed`` is False for a known path with another method."""
    found: Route | None = None
    for route_method, pattern, endpoint in ROUTES:
        matched = pattern.match(path)
        if matched is None:
            continue
        params = {k: unquote(v) for k, v in matched.groupdict().items()}
        if route_method == method:
            return Route(endpoint, True, params)
        found = found or Route(endpoint, False, params)
    return found


def _json(status: int, payload: Any) -> Reply:
    return Reply(status, dumps(payload), {"Content-Type": "application/json; charset=utf-8"})


def _error(status: int, service: str, message: str) -> Reply:
    return _json(status, error_body(status, service, message))


def _rate_headers(decision: RateDecision) -> dict[str, str]:
    return {
        "X-Rate-Limit-Limit": str(decision.limit),
        "X-Rate-Limit-Remaining": str(decision.remaining),
        "X-Rate-Limit-Reset": http_date(decision.reset),
    }


def authorized(header: str | None, api_key: str) -> bool:
    """True when ``Authorization`` is ``Basic base64(api_key)`` (compared in constant time)."""
    if not header:
        return False
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return False
    expected = base64.b64encode(api_key.encode()).decode()
    return hmac.compare_digest(token.strip().encode(), expected.encode())


def handle(sim: Simulator, method: str, target: str, headers: Mapping[str, str]) -> Reply:
    """Answer one request the way Codat would, applying faults, auth and rate limits first."""
    split = urlsplit(target)
    path = split.path
    params = {k.lower(): v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
    route = match_route(method, path)
    company_id = route.params.get("company") if route else None
    sim.record_request(method, path, company_id, route.endpoint if route else "unknown")

    fault = sim.faults.decide(company_id)
    if fault.kind == "reset":
        return Reply(0, reset=True, latency=fault.latency)
    lower_headers = {k.lower(): v for k, v in headers.items()}
    with sim.lock:
        now = sim.tick()
        if fault.kind != "none":
            reply = _fault_reply(fault.kind, fault.status, fault.retry_after)
            reply.headers.update(_rate_headers(sim.rate_limiter.peek(now)))
            reply.latency = fault.latency
            return reply
        if sim.key_revoked or not authorized(lower_headers.get("authorization"), sim.api_key):
            reply = _error(401, "PublicApi", "Unauthorized")
        elif route is None:
            reply = _error(404, "PublicApi", "Not Found")
        elif not route.method_allowed:
            reply = _error(405, "PublicApi", "Method Not Allowed")
        else:
            decision = sim.rate_limiter.take(now)
            if decision.quota_exhausted:
                sim.on_quota_exhausted(now, decision)
            if not decision.allowed:
                reply = _error(429, "PublicApi", reason_text(429))
                reply.headers["Retry-After"] = str(decision.retry_after or 1)
                reply.headers.update(_rate_headers(decision))
                reply.latency = fault.latency
                return reply
            reply = _dispatch(sim, route, params, now)
            reply.headers.update(_rate_headers(decision))
            reply.latency = fault.latency
            return reply
        reply.headers.update(_rate_headers(sim.rate_limiter.peek(now)))
        reply.latency = fault.latency
        return reply


def _fault_reply(kind: str, status: int, retry_after: float | None) -> Reply:
    if kind == "malformed":
        return Reply(200, MALFORMED_BODY, {"Content-Type": "application/json; charset=utf-8"})
    reply = _error(status, "PublicApi", reason_text(status))
    if status == 429:
        reply.headers["Retry-After"] = str(max(round(retry_after or 1), 0))
    return reply


def _dispatch(sim: Simulator, route: Route, params: Mapping[str, str], now: datetime) -> Reply:
    handler = _HANDLERS[route.endpoint]
    try:
        return handler(sim, route.params, params, now)
    except SimulatorError as exc:
        return _error(exc.status, exc.service, exc.message)
    except PagingError as exc:
        return _error(400, "PublicApi", str(exc))
    except q.QueryError as exc:
        service = "ClientsApi" if route.endpoint == "companies" else "PullApi"
        return _error(400, service, f"Error parsing query - {exc}")


# ----- endpoints ------------------------------------------------------------------------------


def company_fields() -> dict[str, q.Field]:
    """Queryable properties of a company."""
    return {
        "id": q.Field("string", lambda c: c.id),
        "name": q.Field("string", lambda c: c.name),
        "description": q.Field("string", lambda c: c.description),
        "created": q.Field("date", lambda c: c.created),
        "lastSync": q.Field("date", lambda c: c.last_sync),
        "dataConnections.id": q.Field("string", lambda c: [x.id for x in c.connections]),
        "dataConnections.status": q.Field("string", lambda c: [x.status for x in c.connections]),
        "dataConnections.platformName": q.Field("string", lambda c: [x.platform_name for x in c.connections]),
        "dataConnections.integrationKey": q.Field(
            "string", lambda c: [x.integration_key for x in c.connections]
        ),
        "dataConnections.lastSync": q.Field("date", lambda c: [x.last_sync for x in c.connections]),
    }


_COMPANY_FIELDS = q.fields_resolver(company_fields())


def _tag_field(name: str) -> q.Field:
    return q.Field("string", lambda c: c.tags.get(name))


def operation_fields(now: datetime) -> dict[str, q.Field]:
    """Queryable properties of a pull operation (status as it stands at ``now``)."""
    return {
        "id": q.Field("string", lambda o: o.id),
        "companyId": q.Field("string", lambda o: o.company_id),
        "connectionId": q.Field("string", lambda o: o.connection_id),
        "dataType": q.Field("string", lambda o: o.data_type),
        "status": q.Field("string", lambda o: o.status_at(now)),
        "requested": q.Field("date", lambda o: o.requested),
        "completed": q.Field("date", lambda o: o.completed_at() if o.is_finished(now) else None),
        "progress": q.Field("number", lambda o: o.progress_at(now)),
    }


def _extra(params: Mapping[str, str], names: tuple[str, ...]) -> dict[str, str]:
    spelled = {"query": "query", "orderby": "orderBy", "tags": "tags"}
    return {spelled[n]: params[n] for n in names if params.get(n)}


def _companies(sim: Simulator, _: Mapping[str, str], params: Mapping[str, str], now: datetime) -> Reply:
    page, size = page_params(params.get("page"), params.get("pagesize"))
    predicate = q.build_filter(params.get("query"), _COMPANY_FIELDS, "Company")
    tag_predicate = q.build_filter(params.get("tags"), _tag_field, "Company")
    companies = [c for c in sim.state.iter_companies() if predicate(c) and tag_predicate(c)]
    companies = q.order_by(companies, params.get("orderby"), _COMPANY_FIELDS, "Company")
    results = [company_json(c) for c in page_window(companies, page, size)]
    extra = _extra(params, ("query", "tags", "orderby"))
    return _json(200, paged("/companies", results, len(companies), page, size, extra))


def _company(sim: Simulator, path: Mapping[str, str], _: Mapping[str, str], now: datetime) -> Reply:
    return _json(200, company_json(sim.state.company(path["company"])))


def _data_status(sim: Simulator, path: Mapping[str, str], _: Mapping[str, str], now: datetime) -> Reply:
    return _json(200, data_statuses_json(sim.state.company(path["company"]), now))


def _history(sim: Simulator, path: Mapping[str, str], params: Mapping[str, str], now: datetime) -> Reply:
    company: CompanyState = sim.state.company(path["company"])
    page, size = page_params(params.get("page"), params.get("pagesize"))
    resolve = q.fields_resolver(operation_fields(now))
    predicate = q.build_filter(params.get("query"), resolve, "Dataset")
    ops: list[Operation] = [o for o in sim.state.operations(company) if predicate(o)]
    ops = q.order_by(ops, params.get("orderby"), resolve, "Dataset")
    results = [operation_json(o, now) for o in page_window(ops, page, size)]
    extra = _extra(params, ("query", "orderby"))
    return _json(200, paged(f"/companies/{company.id}/data/history", results, len(ops), page, size, extra))


def _pull_operation(sim: Simulator, path: Mapping[str, str], _: Mapping[str, str], now: datetime) -> Reply:
    company = sim.state.company(path["company"])
    op = sim.state.find_operation(company, path["dataset"])
    if op is None:
        return _error(404, "PullApi", f"No dataset found with ID {path['dataset']}")
    return _json(200, operation_json(op, now))


def _refusal(sim: Simulator, company_id: str) -> Reply | None:
    status = sim.refresh_refusals.get(company_id, sim.refresh_refusals.get(None))
    if status is None:
        return None
    return _error(status, "PullApi", f"The sync could not be queued: {reason_text(status)}")


def _refresh_data_type(
    sim: Simulator, path: Mapping[str, str], params: Mapping[str, str], now: datetime
) -> Reply:
    sim.state.company(path["company"])
    refused = _refusal(sim, path["company"])
    if refused is not None:
        return refused
    op = sim.state.queue(
        path["company"], path["data_type"], now, connection_id=params.get("connectionid") or None
    )
    return _json(200, operation_json(op, now))


def _refresh_all(sim: Simulator, path: Mapping[str, str], _: Mapping[str, str], now: datetime) -> Reply:
    sim.state.company(path["company"])
    refused = _refusal(sim, path["company"])
    if refused is not None:
        return refused
    sim.state.queue_all(path["company"], now)
    return Reply(204)


def _company_sync_settings(
    sim: Simulator, path: Mapping[str, str], _: Mapping[str, str], now: datetime
) -> Reply:
    company = sim.state.company(path["company"])
    return _json(200, company_sync_settings_json(company, sim.scenario.default_sync_schedule_hours))


def _profile_sync_settings(
    sim: Simulator, _: Mapping[str, str], __: Mapping[str, str], now: datetime
) -> Reply:
    body = profile_sync_settings_json(
        CLIENT_ID, sim.scenario.data_types, sim.scenario.default_sync_schedule_hours
    )
    return _json(200, body)


def connection_fields() -> dict[str, q.Field]:
    """Queryable properties of a data connection."""
    return {
        "id": q.Field("string", lambda c: c.id),
        "status": q.Field("string", lambda c: c.status),
        "platformName": q.Field("string", lambda c: c.platform_name),
        "integrationKey": q.Field("string", lambda c: c.integration_key),
        "sourceType": q.Field("string", lambda c: c.source_type),
        "created": q.Field("date", lambda c: c.created),
        "lastSync": q.Field("date", lambda c: c.last_sync),
    }


_CONNECTION_FIELDS = q.fields_resolver(connection_fields())


def _connections(sim: Simulator, path: Mapping[str, str], params: Mapping[str, str], now: datetime) -> Reply:
    """``GET /companies/{id}/connections`` (list-connections): a page of Connection objects."""
    company: CompanyState = sim.state.company(path["company"])
    page, size = page_params(params.get("page"), params.get("pagesize"))
    predicate = q.build_filter(params.get("query"), _CONNECTION_FIELDS, "Connection")
    connections = [c for c in company.connections if predicate(c)]
    connections = q.order_by(connections, params.get("orderby"), _CONNECTION_FIELDS, "Connection")
    results = [connection_json(company, c) for c in page_window(connections, page, size)]
    extra = _extra(params, ("query", "orderby"))
    return _json(
        200, paged(f"/companies/{company.id}/connections", results, len(connections), page, size, extra)
    )


_Handler = Callable[["Simulator", Mapping[str, str], Mapping[str, str], datetime], Reply]
_HANDLERS: dict[str, _Handler] = {
    "companies": _companies,
    "company": _company,
    "dataStatus": _data_status,
    "history": _history,
    "pullOperation": _pull_operation,
    "refreshDataType": _refresh_data_type,
    "refreshAll": _refresh_all,
    "companySyncSettings": _company_sync_settings,
    "profileSyncSettings": _profile_sync_settings,
    "connections": _connections,
}
