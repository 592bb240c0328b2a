"""Fault knobs tests turn to make the simulated Codat misbehave, globally or for one company."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, replace
from typing import Literal

FaultKind = Literal["none", "reset", "status", "rate_limit", "malformed"]


@dataclass(frozen=True, slots=True)
class FaultSettings:
    """The knobs of one scope (global or one company).

    Counted knobs (``status_burst``, ``rate_limit_storm``, an int for
    ``connection_reset``/``malformed_json``) affect the next N requests of the
    scope; ``True`` means every request.
    """

    error_rate: float = 0.0
    error_status: int = 500
    latency: float = 0.0
    status_burst: tuple[int, int] | None = None  # (status, remaining requests)
    malformed_json: bool | int = False
    connection_reset: bool | int = False
    rate_limit_storm: tuple[int, float] | None = None  # (remaining requests, Retry-After seconds)


@dataclass(frozen=True, slots=True)
class FaultDecision:
    """What the server should do with one request."""

    kind: FaultKind = "none"
    status: int = 0
    retry_after: float | None = None
    latency: float = 0.0


_UNSET: object = object()


class Faults:
    """Thread-safe fault settings; ``set`` merges into a scope, ``clear`` resets."""

    def __init__(self, seed: int = 1) -> None:
        """Start with no faults; ``seed`` makes ``error_rate`` draws repeatable."""
        self._lock = threading.Lock()
        self._scopes: dict[str | None, FaultSettings] = {}
        self._rng = random.Random(seed)

    def set(
        self,
        company_id: str | None = None,
        *,
        error_rate: float | None = None,
        error_status: int | None = None,
        latency: float | None = None,
        status_burst: tuple[int, int] | None = None,
        malformed_json: bool | int | None = None,
        connection_reset: bool | int | None = None,
        rate_limit_storm: int | tuple[int, float] | None = None,
    ) -> None:
        """Change knobs for one company (``company_id``) or all requests (``None``)."""
        if error_rate is not None and not 0 <= error_rate <= 1:
            raise ValueError("error_rate must be between 0 and 1")
        if latency is not None and latency < 0:
            raise ValueError("latency must not be negative")
        storm = (rate_limit_storm, 1.0) if isinstance(rate_limit_storm, int) else rate_limit_storm
        with self._lock:
            current = self._scopes.get(company_id, FaultSettings())
            changes: dict[str, object] = {}
            for name, value in (
                ("error_rate", error_rate),
                ("error_status", error_status),
                ("latency", latency),
                ("status_burst", status_burst),
                ("malformed_json", malformed_json),
                ("connection_reset", connection_reset),
                ("rate_limit_storm", storm),
            ):
                if value is not None:
                    changes[name] = value
            self._scopes[company_id] = replace(current, **changes)  # type: ignore[arg-type]

    def clear(self, company_id: str | None = None, *, everything: bool = True) -> None:
        """Remove all faults (or, with ``everything=False``, only those of ``company_id``'s scope)."""
        with self._lock:
            if everything and company_id is None:
                self._scopes.clear()
            else:
                self._scopes.pop(company_id, None)

    def unset(self, company_id: str | None, *names: str) -> None:
        """Return the named knobs of one scope to their defaults, leaving the others as they are."""
        defaults = FaultSettings()
        with self._lock:
            current = self._scopes.get(company_id)
            if current is None:
                return
            changes = {name: getattr(defaults, name) for name in names}
            self._scopes[company_id] = replace(current, **changes)

    def scopes(self) -> dict[str | None, FaultSettings]:
        """Every scope with its knobs (a copy)."""
        with self._lock:
            return dict(self._scopes)

    def settings(self, company_id: str | None = None) -> FaultSettings:
        """The knobs of one scope."""
        with self._lock:
            return self._scopes.get(company_id, FaultSettings())

    def decide(self, company_id: str | None) -> FaultDecision:
        """Consume counted faults and roll the dice for one request (company scope first)."""
        with self._lock:
            latency = 0.0
            for scope in (company_id, None) if company_id is not None else (None,):
                settings = self._scopes.get(scope)
                if settings is None:
                    continue
                latency = max(latency, settings.latency)
                decision, updated = self._decide_scope(settings)
                if updated is not settings:
                    self._scopes[scope] = updated
                if decision is not None:
                    return replace(decision, latency=latency)
            return FaultDecision(latency=latency)

    def _decide_scope(self, s: FaultSettings) -> tuple[FaultDecision | None, FaultSettings]:
        if s.connection_reset is True:
            return FaultDecision("reset"), s
        if not isinstance(s.connection_reset, bool) and s.connection_reset > 0:
            return FaultDecision("reset"), replace(s, connection_reset=s.connection_reset - 1)
        if s.rate_limit_storm is not None and s.rate_limit_storm[0] > 0:
            left, wait = s.rate_limit_storm
            return FaultDecision("rate_limit", 429, retry_after=wait), replace(
                s, rate_limit_storm=(left - 1, wait) if left > 1 else None
            )
        if s.status_burst is not None and s.status_burst[1] > 0:
            code, left = s.status_burst
            return FaultDecision("status", code), replace(
                s, status_burst=(code, left - 1) if left > 1 else None
            )
        if s.error_rate > 0 and self._rng.random() < s.error_rate:
            return FaultDecision("status", s.error_status), s
        if s.malformed_json is True:
            return FaultDecision("malformed"), s
        if not isinstance(s.malformed_json, bool) and s.malformed_json > 0:
            return FaultDecision("malformed"), replace(s, malformed_json=s.malformed_json - 1)
        return None, s
