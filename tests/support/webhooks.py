"""Webhook test support: signing deliveries as Codat does, and a recording scheduler stand-in."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import requests

from exporter.collector.snapshot import Snapshot
from exporter.webhooks.verify import SigningSecret, sign

SECRET_TEXT = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SECRET = SigningSecret.parse(SECRET_TEXT)


def read_completed(company_id: str, *, event_type: str = "read.completed", status: str = "Complete") -> bytes:
    """A ``read.completed`` body for one company with one data type."""
    document: dict[str, Any] = {
        "id": f"event-{company_id}",
        "eventType": event_type,
        "generatedDate": "2026-01-05T09:00:00.00Z",
        "payload": {
            "referenceCompany": {"id": company_id, "name": "Toft stores"},
            "modifiedFromDate": "2026-01-05T08:59:00Z",
            "dataTypes": [{"dataType": "invoices", "status": status, "recordsModified": True}],
        },
    }
    return json.dumps(document).encode()


def rate_limit(event_type: str, expiry: str = "2026-01-05T23:59:99Z") -> bytes:
    """A ``client.rateLimit.*`` body."""
    payload = {"dailyQuota": 12000, "quotaRemaining": 0, "expiryDate": expiry}
    return json.dumps({"id": "rl", "eventType": event_type, "payload": payload}).encode()


def signed(
    body: bytes,
    message_id: str,
    *,
    timestamp: int | None = None,
    secret: SigningSecret = SECRET,
    prefix: str = "webhook",
) -> dict[str, str]:
    """Headers Codat would send with ``body`` (signed now unless ``timestamp`` is given)."""
    when = int(time.time()) if timestamp is None else timestamp
    return {
        f"{prefix}-id": message_id,
        f"{prefix}-timestamp": str(when),
        f"{prefix}-signature": sign(secret, message_id, when, body),
        "Content-Type": "application/json",
    }


def forged(message_id: str, *, timestamp: int | None = None) -> dict[str, str]:
    """Webhook headers whose signature cannot verify (what an attacker without the secret sends)."""
    when = int(time.time()) if timestamp is None else timestamp
    return {"webhook-id": message_id, "webhook-timestamp": str(when), "webhook-signature": "v1,AAAA"}


def post(url: str, body: bytes, headers: dict[str, str]) -> requests.Response:
    """POST raw bytes (never re-encoded) to ``url``."""
    return requests.post(url, data=body, headers=headers, timeout=10)


@dataclass
class RecordingScheduler:
    """Records what the receiver asked the scheduler to do (a stand-in for receiver unit tests)."""

    snapshot: Snapshot = field(default_factory=Snapshot)
    polls: list[tuple[str, str]] = field(default_factory=list)
    named: list[tuple[str, ...] | None] = field(default_factory=list)
    """The data types each poll request named (None: the whole company), in order."""
    pauses: list[datetime] = field(default_factory=list)
    resumes: int = 0
    fail_on: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def request_poll(self, company_id: str, reason: str, data_types: Iterable[str] | None = None) -> None:
        if company_id == self.fail_on:
            raise RuntimeError("scheduler exploded")
        with self._lock:
            self.polls.append((company_id, reason))
            self.named.append(tuple(data_types) if data_types is not None else None)

    def pause_until(self, until: datetime) -> None:
        with self._lock:
            self.pauses.append(until)

    def resume(self) -> None:
        with self._lock:
            self.resumes += 1

    @property
    def touched(self) -> bool:
        """True if any scheduler method was called."""
        return bool(self.polls or self.pauses or self.resumes)
