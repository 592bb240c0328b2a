"""What one poll cycle did: for the ``once`` command, logs and tests."""

from __future__ import annotations

from dataclasses import dataclass, field

from exporter.collector.poll import PollResult


@dataclass(slots=True)
class CycleReport:
    """What one cycle did (for ``once``, logs and tests)."""

    listed: int = 0
    polled: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    deferred: int = 0
    removed: list[str] = field(default_factory=list)
    requests: int = 0
    rate_limited: bool = False
    change_detection: bool = False
    error: str | None = None
    still_running: int = 0
    """Polls the cycle stopped waiting for; they are published when they finish."""

    def add(self, company_id: str, result: PollResult, *, rate_limited: bool) -> None:
        """Count one finished poll of ``company_id``."""
        self.requests += result.requests
        if rate_limited:
            self.rate_limited = True
        elif result.ok:
            self.polled.append(company_id)
        else:
            self.failed.append(company_id)
