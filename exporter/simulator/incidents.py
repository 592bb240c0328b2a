"""Run-time incidents of the simulated account: what the control API injects and lifts.

Stopped schedules, forced outcomes, forbidden companies, a revoked key, a spent quota, a
429 storm, refused refreshes and deleted companies; ``incidents`` reports what is in force.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

from exporter.simulator.faults import Faults
from exporter.simulator.ratelimit import RateLimiter
from exporter.simulator.state import CompanyState, DataTypeState, SimState, SimulatorError


class IncidentControls:
    """The incident knobs of ``Simulator`` (the control API calls these; tests may too).

    Every method takes ``lock``; the attributes are set by ``Simulator.__init__``.
    """

    lock: threading.RLock
    state: SimState
    faults: Faults
    rate_limiter: RateLimiter
    key_revoked: bool
    refresh_refusals: dict[str | None, int]
    _deleted: dict[str, CompanyState]

    def tick(self) -> datetime:
        """Apply everything due up to now; ``Simulator`` provides it."""
        raise NotImplementedError

    def _types(self, company_id: str, data_type: str | None) -> list[DataTypeState]:
        company = self.state.company(company_id)
        if data_type is None:
            return list(company.types.values())
        state = company.types.get(data_type)
        if state is None:
            raise SimulatorError(404, "Control", f"company {company_id} has no data type {data_type}")
        return [state]

    def stop_schedule(self, company_id: str, data_type: str | None = None, *, stopped: bool = True) -> None:
        """Stop (or, with ``stopped=False``, resume) the automatic syncs of one or every data type."""
        with self.lock:
            now = self.tick()
            company = self.state.company(company_id)
            for state in self._types(company_id, data_type):
                state.schedule_stopped = stopped
                if not stopped and state.running is None and state.next_scheduled is None:
                    self.state.reschedule(company, state, now)

    def force_outcome(self, company_id: str, status: str | None, data_type: str | None = None) -> None:
        """Make every new sync of one or every data type end in ``status`` (None: back to chance)."""
        with self.lock:
            for state in self._types(company_id, data_type):
                state.forced_outcome = status

    def forbid_company(self, company_id: str, status: int | None = 403) -> None:
        """Answer every request about one company with ``status`` (None lifts it)."""
        if status is None:
            self.faults.unset(company_id, "error_rate", "error_status")
            return
        with self.lock:
            self.state.company(company_id)
        self.faults.set(company_id, error_rate=1.0, error_status=status)

    def revoke_key(self, revoked: bool = True) -> None:
        """Answer 401 to every API request as if the key had been revoked (False restores it)."""
        with self.lock:
            self.key_revoked = revoked

    def spend_quota(self, fraction: float | None) -> None:
        """Count ``fraction`` of today's daily quota as already used (None refills it)."""
        if fraction is not None and not 0 <= fraction <= 1:
            raise ValueError("fraction must be between 0 and 1")
        with self.lock:
            now = self.tick()
            if fraction is None:
                self.rate_limiter.refill(now)
            else:
                self.rate_limiter.spend(now, fraction)

    def rate_limit_storm(self, requests: int | None, retry_after: float = 1.0) -> None:
        """Answer the next ``requests`` API requests with 429 (None ends the storm)."""
        if requests is None:
            self.faults.unset(None, "rate_limit_storm")
        else:
            self.faults.set(None, rate_limit_storm=(requests, retry_after))

    def refuse_refreshes(self, company_id: str | None = None, status: int | None = 503) -> None:
        """Refuse ``POST /data/queue`` and ``/data/all`` with ``status`` for one company or all
        (None accepts them again)."""
        with self.lock:
            if status is None:
                self.refresh_refusals.pop(company_id, None)
            else:
                self.refresh_refusals[company_id] = status

    def delete_company(self, company_id: str) -> None:
        """Delete a company so that ``restore_company`` can bring it back."""
        with self.lock:
            now = self.tick()
            self._deleted[company_id] = self.state.company(company_id)
            self.state.remove_company(company_id, now)

    def restore_company(self, company_id: str) -> None:
        """Bring back a company deleted by ``delete_company``."""
        with self.lock:
            now = self.tick()
            company = self._deleted.pop(company_id, None)
            if company is None:
                raise SimulatorError(404, "Control", f"company {company_id} was not deleted here")
            self.state.restore_company(company, now)

    def clear_incidents(self) -> None:
        """Lift every incident: schedules, outcomes, 403s, key, quota, storm, refusals, deletions."""
        with self.lock:
            for company_id in list(self._deleted):
                self.restore_company(company_id)
            for company in self.state.iter_companies():
                for state in company.types.values():
                    state.forced_outcome = None
                self.stop_schedule(company.id, stopped=False)
            self.key_revoked = False
            self.refresh_refusals.clear()
            self.rate_limiter.refill(self.tick())
        self.faults.clear()

    def incidents(self) -> dict[str, Any]:
        """What is injected right now (the control API's ``GET /_control``)."""
        with self.lock:
            stopped: list[dict[str, str]] = []
            forced: list[dict[str, str]] = []
            for company in self.state.iter_companies():
                for state in company.types.values():
                    pair = {"company_id": company.id, "data_type": state.data_type}
                    if state.schedule_stopped:
                        stopped.append(pair)
                    if state.forced_outcome is not None:
                        forced.append({**pair, "status": state.forced_outcome})
            scopes = self.faults.scopes()
            storm = scopes.get(None)
            left = storm.rate_limit_storm[0] if storm is not None and storm.rate_limit_storm else 0
            return {
                "schedule_stopped": stopped,
                "forced_outcomes": forced,
                "forbidden": sorted(c for c, f in scopes.items() if c is not None and f.error_rate >= 1.0),
                "key_revoked": self.key_revoked,
                "quota": {
                    "daily_quota": self.rate_limiter.daily_quota,
                    "used_today": self.rate_limiter.used_today,
                },
                "rate_limit_storm": left,
                "refused_refreshes": {cid or "*": st for cid, st in self.refresh_refusals.items()},
                "deleted": sorted(self._deleted),
            }
