"""The ``Simulator``: one simulated Codat account behind a lock, with helpers tests drive it by."""

from __future__ import annotations

import threading
from collections import Counter, deque
from datetime import datetime
from typing import Any, Literal, NamedTuple

from exporter.simulator.clock import Clock, FakeClock, SystemClock
from exporter.simulator.faults import Faults
from exporter.simulator.http import SimulatorServer
from exporter.simulator.incidents import IncidentControls
from exporter.simulator.ratelimit import RateDecision, RateLimiter, next_midnight
from exporter.simulator.scenario import CompanySpec, ConnectionSpec, Scenario
from exporter.simulator.state import (
    CompanyState,
    ConnectionState,
    FetchGroup,
    SimState,
)
from exporter.simulator.views import (
    company_json,
    company_reference,
    connection_json,
    data_statuses_json,
    operation_json,
    read_completed_payload,
)
from exporter.simulator.webhooks import WebhookSender
from exporter.simulator.wire import codat_timestamp


class RequestRecord(NamedTuple):
    """One request the simulator received (faulted ones included)."""

    method: str
    path: str
    company_id: str | None


class Simulator(IncidentControls):
    """A fake Codat Platform API account whose syncs move on ``clock``.

    Thread-safe: HTTP handler threads, the webhook sender and tests all go
    through ``lock``. With a ``FakeClock`` nothing moves until the test advances
    it; with a ``SystemClock`` a background ticker (started by ``serve``) keeps
    the lifecycle and webhooks moving in real time.
    """

    def __init__(
        self,
        scenario: Scenario | None = None,
        *,
        api_key: str = "demo",
        clock: Clock | None = None,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        webhook_timestamps: Literal["wall", "clock"] = "wall",
        request_log_limit: int = 100_000,
    ) -> None:
        """Build the account described by ``scenario`` (default: the demo) as it stands now."""
        self.scenario = scenario or Scenario.demo()
        self.clock: Clock = clock or SystemClock()
        self.api_key = api_key
        self.lock = threading.RLock()
        self.state = SimState(self.scenario, self.clock.now())
        self.faults = Faults(seed=self.scenario.seed)
        self.rate_limiter = RateLimiter(
            self.scenario.rate_limit.daily_quota, self.scenario.rate_limit.per_minute
        )
        # Bounded: `run --demo` serves for days.
        self.request_log: deque[RequestRecord] = deque(maxlen=request_log_limit)
        self.request_counts: Counter[tuple[str, str | None]] = Counter()
        self.webhooks = WebhookSender(self.clock, webhook_url, webhook_secret, timestamps=webhook_timestamps)
        self._quota_reached_until: datetime | None = None
        # Run-time incidents (see ``control.py``): a revoked key answers 401 to everything;
        # refused refreshes answer the status given, per company or for all (key None).
        self.key_revoked = False
        self.refresh_refusals: dict[str | None, int] = {}
        self._deleted: dict[str, CompanyState] = {}
        self.state.group_listeners.append(self._on_group_finished)
        self.state.event_listeners.append(self._on_event)
        if isinstance(self.clock, FakeClock):
            self.clock.subscribe(self._on_clock)

    def __repr__(self) -> str:
        """Never shows the API key or webhook secret."""
        return f"Simulator(scenario={self.scenario.name!r}, companies={len(self.state.companies)})"

    # ----- time -----------------------------------------------------------------------------

    def tick(self) -> datetime:
        """Apply everything due up to the clock's current time; returns that time."""
        with self.lock:
            now = self.clock.now()
            self.state.catch_up(now)
            if self._quota_reached_until is not None and now >= self._quota_reached_until:
                self._send_quota_reset(self._quota_reached_until)
            return now

    def _on_clock(self, _: datetime) -> None:
        self.tick()
        self.webhooks.wake()

    # ----- serving --------------------------------------------------------------------------

    def serve(self, host: str = "127.0.0.1", port: int = 0, *, control: bool = False) -> SimulatorServer:
        """Serve the API over HTTP on a background thread; ``port=0`` picks a free port.

        ``control`` adds the run-time control API for loopback clients (off by default).
        """
        server = SimulatorServer(self, host, port, control=control)
        server.start()
        return server

    def close(self) -> None:
        """Stop the webhook sender."""
        self.webhooks.close()
        if isinstance(self.clock, FakeClock):
            self.clock.unsubscribe(self._on_clock)

    def configure_webhooks(self, url: str | None, secret: str | None) -> None:
        """Send ``read.completed`` and rate-limit events to ``url`` (None stops sending)."""
        self.webhooks.configure(url, secret)

    # ----- request accounting ---------------------------------------------------------------

    def record_request(self, method: str, path: str, company_id: str | None, endpoint: str) -> None:
        """Log one incoming request (called by the HTTP layer before anything else)."""
        with self.lock:
            self.request_log.append(RequestRecord(method, path, company_id))
            self.request_counts[(endpoint, company_id)] += 1

    def count_requests(self, endpoint: str | None = None, company_id: str | None = None) -> int:
        """Requests received, optionally only for one endpoint name and/or one company."""
        with self.lock:
            return sum(
                n
                for (ep, cid), n in self.request_counts.items()
                if (endpoint is None or ep == endpoint) and (company_id is None or cid == company_id)
            )

    def reset_request_log(self) -> None:
        """Forget the requests seen so far."""
        with self.lock:
            self.request_log.clear()
            self.request_counts.clear()

    def set_rate_limit(self, *, daily_quota: int | None = None, per_minute: int | None = None) -> None:
        """Change the daily quota and/or per-minute limit."""
        with self.lock:
            self.rate_limiter.configure(daily_quota=daily_quota, per_minute=per_minute)

    # ----- test helpers ---------------------------------------------------------------------

    @property
    def company_ids(self) -> list[str]:
        """Every company id, in creation order."""
        with self.lock:
            return list(self.state.order)

    def company_id_by_name(self, name: str) -> str:
        """The id of the (first) company called ``name``."""
        with self.lock:
            for company in self.state.iter_companies():
                if company.name == name:
                    return company.id
        raise KeyError(name)

    def companies_with_tag(self, key: str, value: str) -> list[str]:
        """Ids of companies whose tag ``key`` equals ``value``."""
        with self.lock:
            return [c.id for c in self.state.iter_companies() if c.tags.get(key) == value]

    def queue_sync(
        self,
        company_id: str,
        data_type: str,
        *,
        connection_id: str | None = None,
        outcome: str | None = None,
    ) -> str:
        """Queue a sync as the refresh endpoint does (``outcome`` forces its final status); returns its id."""
        with self.lock:
            now = self.tick()
            return self.state.queue(
                company_id, data_type, now, connection_id=connection_id, outcome=outcome
            ).id

    def complete_syncs_now(self, company_id: str | None = None, status: str | None = None) -> int:
        """Finish every running sync at the current time (their planned outcome unless ``status``)."""
        with self.lock:
            now = self.tick()
            return self.state.finish_running(now, company_id=company_id, status=status)

    def set_status(self, company_id: str, data_type: str, status: str) -> str:
        """Make a data type show ``status`` now (see ``SimState.set_status``); returns the operation id."""
        with self.lock:
            now = self.tick()
            return self.state.set_status(company_id, data_type, status, now).id

    def set_connection_status(self, company_id: str, status: str, connection_id: str | None = None) -> None:
        """Change a connection status, e.g. to ``Deauthorized`` so later syncs end in AuthError
        (announced with the matching ``connection.*`` webhook)."""
        with self.lock:
            now = self.tick()
            self.state.set_connection_status(company_id, status, connection_id, now)

    def add_company(
        self,
        name: str,
        *,
        profile: str = "healthy",
        company_id: str | None = None,
        tags: dict[str, str] | None = None,
        data_types: list[str] | None = None,
        platform: str = "Xero",
        connection_status: str = "Linked",
        **overrides: Any,
    ) -> str:
        """Add a company now (profile fields may be overridden by keyword); returns its id."""
        spec = CompanySpec(
            name=name,
            id=company_id,
            profile=profile,
            tags=tags or {},
            data_types=tuple(data_types) if data_types else None,
            connections=(ConnectionSpec(platform=platform, status=connection_status),),
            overrides=overrides,
        )
        with self.lock:
            now = self.tick()
            return self.state.add_company(spec, now).id

    def remove_company(self, company_id: str) -> None:
        """Delete a company (later requests for it answer 404; ``company.deleted`` is sent)."""
        with self.lock:
            now = self.tick()
            self.state.remove_company(company_id, now)

    def completed_operations(
        self, company_id: str | None = None, data_type: str | None = None, status: str | None = None
    ) -> int:
        """Operations that reached a terminal status since the simulation started, filtered."""
        with self.lock:
            return sum(
                n
                for (cid, dt, st), n in self.state.terminal_counts.items()
                if (company_id is None or cid == company_id)
                and (data_type is None or dt == data_type)
                and (status is None or st == status)
            )

    def terminal_counts(self) -> Counter[tuple[str, str, str]]:
        """A copy of (company id, data type, status) → operations that reached that terminal status."""
        with self.lock:
            return Counter(self.state.terminal_counts)

    def data_status(self, company_id: str) -> dict[str, Any]:
        """The company's dataStatus body as the API would answer now."""
        with self.lock:
            now = self.tick()
            return data_statuses_json(self.state.company(company_id), now)

    def company(self, company_id: str) -> dict[str, Any]:
        """The company as ``GET /companies`` would list it now."""
        with self.lock:
            self.tick()
            return company_json(self.state.company(company_id))

    def operations(self, company_id: str) -> list[dict[str, Any]]:
        """Every pull operation of the company, oldest first, as the API would show it now."""
        with self.lock:
            now = self.tick()
            company = self.state.company(company_id)
            return [operation_json(op, now) for op in self.state.operations(company)]

    def running_operations(self, company_id: str | None = None) -> int:
        """How many syncs are in progress now."""
        with self.lock:
            self.tick()
            companies = [self.state.company(company_id)] if company_id else list(self.state.iter_companies())
            return sum(1 for c in companies for s in c.types.values() if s.running is not None)

    # ----- webhooks -------------------------------------------------------------------------

    def _on_group_finished(self, company: CompanyState, group: FetchGroup, at: datetime) -> None:
        """One ``read.completed`` (``.initial`` for a company's first fetch) per fetch group."""
        if not self.webhooks.enabled:
            return
        event_type = "read.completed.initial" if group.initial else "read.completed"
        self.webhooks.enqueue(event_type, read_completed_payload(company, group), at)

    def _on_event(
        self, event_type: str, company: CompanyState, conn: ConnectionState | None, at: datetime
    ) -> None:
        """``connection.*`` carry the company reference and the connection; ``company.*`` the
        company's details (spec ConnectionWebhook, CompanyWebhook)."""
        if not self.webhooks.enabled:
            return
        if conn is not None:
            payload: dict[str, Any] = {
                "referenceCompany": company_reference(company),
                "connection": connection_json(company, conn),
            }
        else:
            payload = company_json(company)
            payload.pop("dataConnections", None)
        self.webhooks.enqueue(event_type, payload, at)

    def on_quota_exhausted(self, now: datetime, decision: RateDecision) -> None:
        """The daily quota has run out: announce it once per quota day with ``client.rateLimit.reached``."""
        if self._quota_reached_until is not None:
            return
        self._quota_reached_until = decision.reset
        payload = {
            "dailyQuota": decision.limit,
            "quotaRemaining": 0,
            "expiryDate": codat_timestamp(decision.reset),
        }
        self.webhooks.enqueue("client.rateLimit.reached", payload, now)

    def _send_quota_reset(self, at: datetime) -> None:
        self._quota_reached_until = None
        payload = {
            "dailyQuota": self.rate_limiter.daily_quota,
            "quotaRemaining": self.rate_limiter.daily_quota,
            "expiryDate": codat_timestamp(next_midnight(at)),
        }
        self.webhooks.enqueue("client.rateLimit.reset", payload, at)
