"""The run-time control API: inject and clear incidents in a running simulator over HTTP JSON.

Off by default (``Simulator.serve(control=True)``, ``simulate --control``) and
answered only to loopback clients, because anyone who reaches it can break the
simulated account. Control requests need no API key, are not rate limited, are
not subject to faults and are not counted as API requests.

Every incident is ``POST /_control/<incident>`` with an optional JSON object,
and ``POST /_control/<incident>/clear`` lifts it; ``POST /_control/clear`` lifts
everything and ``GET /_control`` shows what is injected. The table ``INCIDENTS``
is the reference (the README's Simulator section lists the same).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from exporter.codat.statuses import CONNECTION_STATUSES
from exporter.simulator.scenario import OUTCOME_STATUSES
from exporter.simulator.state import SimulatorError

if TYPE_CHECKING:
    from exporter.simulator.sim import Simulator

PREFIX: Final = "/_control"


class ControlError(ValueError):
    """A control request the simulator cannot carry out; ``status`` is the HTTP answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        """Carry the message and HTTP status."""
        super().__init__(message)
        self.status = status


def is_loopback(host: str) -> bool:
    """True when the peer address is a loopback address (IPv4-mapped IPv6 included)."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def _text(body: Mapping[str, Any], name: str, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise ControlError(f"{name} is required")
        return None
    if not isinstance(value, str) or not value:
        raise ControlError(f"{name} must be a non-empty string")
    return value


def _number(body: Mapping[str, Any], name: str, default: float) -> float:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ControlError(f"{name} must be a number")
    return float(value)


def _status_code(body: Mapping[str, Any], default: int) -> int:
    code = int(_number(body, "status", default))
    if not 400 <= code <= 599:
        raise ControlError("status must be an HTTP error status (400-599)")
    return code


def _schedule(sim: Simulator, body: Mapping[str, Any], clear: bool) -> None:
    company = _text(body, "company_id", required=True)
    assert company is not None
    sim.stop_schedule(company, _text(body, "data_type"), stopped=not clear)


def _outcome(sim: Simulator, body: Mapping[str, Any], clear: bool) -> None:
    company = _text(body, "company_id", required=True)
    assert company is not None
    status = None if clear else _text(body, "status", required=True)
    if status is not None and status not in OUTCOME_STATUSES - {"Complete"}:
        raise ControlError(f"status must be a terminal error status, not {status!r}")
    sim.force_outcome(company, status, _text(body, "data_type"))


def _connection(sim: Simulator, body: Mapping[str, Any], clear: bool) -> None:
    company = _text(body, "company_id", required=True)
    assert company is not None
    status = "Linked" if clear else _text(body, "status") or "Deauthorized"
    if status not in CONNECTION_STATUSES:
        raise ControlError(f"status must be one of {', '.join(CONNECTION_STATUSES)}")
    sim.set_connection_status(company, status, _text(body, "connection_id"))


def _company(sim: Simulator, body: Mapping[str, Any], clear: bool) -> None:
    company = _text(body, "company_id", required=True)
    assert company is not None
    if clear:
        sim.restore_company(company)
    else:
        sim.delete_company(company)


def _forbid(sim: Simulator, body: Mapping[str, Any], clear: bool) -> None:
    company = _text(body, "company_id", required=True)
    assert company is not None
    sim.forbid_company(company, None if clear else _status_code(body, 403))


def _revoke_key(sim: Simulator, body: Mapping[str, Any], clear: bool) -> None:
    sim.revoke_key(not clear)


def _quota(sim: Simulator, body: Mapping[str, Any], clear: bool) -> None:
    fraction = _number(body, "fraction", 0.95)
    if not 0 <= fraction <= 1:
        raise ControlError("fraction must be between 0 and 1")
    sim.spend_quota(None if clear else fraction)


def _storm(sim: Simulator, body: Mapping[str, Any], clear: bool) -> None:
    requests = int(_number(body, "requests", 1_000_000))
    retry_after = _number(body, "retry_after", 1.0)
    if requests < 1 or retry_after < 0:
        raise ControlError("requests must be at least 1 and retry_after not negative")
    sim.rate_limit_storm(None if clear else requests, retry_after)


def _refuse_refresh(sim: Simulator, body: Mapping[str, Any], clear: bool) -> None:
    company = _text(body, "company_id")
    sim.refuse_refreshes(company, None if clear else _status_code(body, 503))


Action = Callable[["Simulator", Mapping[str, Any], bool], None]
INCIDENTS: Final[dict[str, tuple[Action, str]]] = {
    "schedule": (_schedule, "stop a data type's schedule: {company_id, data_type?}"),
    "outcome": (_outcome, "new syncs end in an error: {company_id, status, data_type?}"),
    "connection": (
        _connection,
        "deauthorize/unlink a connection: {company_id, status?=Deauthorized, connection_id?}; clear re-links",
    ),
    "company": (_company, "delete a company: {company_id}; clear restores it"),
    "forbid": (_forbid, "answer 403 for one company: {company_id, status?=403}"),
    "revoke-key": (_revoke_key, "answer 401 to every API request"),
    "quota": (_quota, "spend a share of today's quota: {fraction?=0.95}; clear refills it"),
    "rate-limit-storm": (_storm, "answer 429 to the next requests: {requests?, retry_after?=1}"),
    "refuse-refresh": (_refuse_refresh, "refuse refreshes: {company_id?, status?=503}"),
}


def handle_control(sim: Simulator, method: str, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
    """Carry out one control request; returns the HTTP status and the JSON answer."""
    action = path[len(PREFIX) :].strip("/")
    try:
        if method == "GET" and action == "":
            return 200, {"incidents": sim.incidents(), "actions": {k: v[1] for k, v in INCIDENTS.items()}}
        if method != "POST":
            raise ControlError("use POST to inject or clear an incident, GET /_control to list them", 405)
        document = _body(body)
        if action == "clear":
            sim.clear_incidents()
        else:
            name, _, suffix = action.partition("/")
            if name not in INCIDENTS or suffix not in ("", "clear"):
                raise ControlError(f"unknown control action {action!r}; GET {PREFIX} lists them", 404)
            INCIDENTS[name][0](sim, document, suffix == "clear")
    except ControlError as exc:
        return exc.status, {"error": str(exc)}
    except SimulatorError as exc:
        return exc.status, {"error": exc.message}
    except (KeyError, ValueError) as exc:
        return 400, {"error": str(exc)}
    return 200, {"ok": True, "incidents": sim.incidents()}


def _body(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        document = json.loads(body)
    except ValueError:
        raise ControlError("the body must be a JSON object") from None
    if not isinstance(document, dict):
        raise ControlError("the body must be a JSON object")
    return document
