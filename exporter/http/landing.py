"""The landing page at ``/``: what this exporter serves and which data is stalest, as plain HTML.

The page is one self-contained HTML document (inline CSS, no scripts, no external
assets). Company names are customer data, so every value is HTML-escaped.
"""

from __future__ import annotations

import html
import platform
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from string import Template
from typing import Final

from exporter import __version__
from exporter.collector.snapshot import Snapshot

DOCS_URL: Final = "https://github.com/codat-exporter/codat-exporter#readme"
STALEST_LIMIT: Final = 20


@dataclass(frozen=True, slots=True)
class LandingData:
    """What the landing page shows; the app builds one per request from its live state."""

    snapshot: Snapshot
    ready: bool = False
    shard: int = 0
    total_shards: int = 1
    status_mode: str = "default"
    companies_listed: int = 0
    """Companies of this shard in the last listing (``codat_exporter_companies_listed``)."""
    companies_polled: int = 0
    """Of those, how many were read since start (``codat_exporter_companies_polled``)."""
    version: str = __version__
    python_version: str = field(default_factory=platform.python_version)
    docs_url: str = DOCS_URL


@dataclass(frozen=True, slots=True)
class StalePair:
    """One company/data type pair of the stalest table."""

    company_id: str
    company_name: str
    data_type: str
    status: str | None
    last_successful_sync: datetime | None
    age_seconds: float | None
    """Seconds since the last successful sync; ``None`` if it never synced."""


def stalest_pairs(snapshot: Snapshot, now: float, limit: int = STALEST_LIMIT) -> list[StalePair]:
    """The ``limit`` pairs whose data is oldest: never-synced pairs first, then by last sync.

    Pairs that never synced because their platform does not support the data type
    (``NotSupported``) are left out: they are not stale, there is nothing to sync.
    """
    pairs: list[StalePair] = []
    for cid, cs in snapshot.companies.items():
        for data_type, entry in cs.statuses.items():
            synced = entry.last_successful_sync
            if synced is None and entry.current_status == "NotSupported":
                continue
            age = now - synced.timestamp() if synced is not None else None
            pairs.append(StalePair(cid, cs.company.name, data_type, entry.current_status, synced, age))
    pairs.sort(
        key=lambda p: (
            p.last_successful_sync is not None,
            p.last_successful_sync.timestamp() if p.last_successful_sync is not None else 0.0,
            p.company_name,
            p.data_type,
        )
    )
    return pairs[:limit]


def format_age(seconds: float | None) -> str:
    """A short human age: ``never``, ``42s``, ``17m``, ``5h 12m``, ``3d 4h``."""
    if seconds is None:
        return "never"
    s = int(max(seconds, 0))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def _when(dt: datetime | None) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if dt is not None else "never"


@cache
def _template() -> Template:
    return Template(resources.files("exporter.http").joinpath("landing.html").read_text(encoding="utf-8"))


def _status_class(status: str | None) -> str:
    if status == "Complete":
        return "ok"
    if status is None:
        return "warn"
    return "bad" if status.endswith("Error") or status == "PrerequisiteNotMet" else ""


def sweep_progress(data: LandingData) -> str:
    """The first sweep's progress: ``done``, ``listing…`` before the first listing, else ``polled of listed``.

    Ready means /metrics serves every listed company (after the first full sweep); until then
    this says how far the sweep has come.
    """
    if data.ready:
        return "done"
    if data.companies_listed <= 0:
        return "listing companies"
    polled = min(data.companies_polled, data.companies_listed)
    share = 100.0 * polled / data.companies_listed
    return f"{polled:,} of {data.companies_listed:,} ({share:.0f}%)"


def render_landing(data: LandingData, now: float) -> str:
    """The landing page HTML for ``data`` at Unix time ``now``; pure."""
    e = html.escape
    companies = data.snapshot.companies
    up = sum(1 for cs in companies.values() if cs.up)
    rows = [
        "<tr>"
        f'<td title="{e(p.company_id)}">{e(p.company_name)}</td>'
        f"<td>{e(p.data_type)}</td>"
        f'<td class="{_status_class(p.status)}">{e(p.status or "never synced")}</td>'
        f"<td>{e(_when(p.last_successful_sync))}</td>"
        f'<td class="num">{e(format_age(p.age_seconds))}</td>'
        "</tr>"
        for p in stalest_pairs(data.snapshot, now)
    ]
    if not rows:
        rows = ['<tr><td colspan="5">No data yet: the first poll has not finished.</td></tr>']
    generated = data.snapshot.generated_at
    return _template().substitute(
        docs_url=e(data.docs_url),
        ready_text="ready" if data.ready else "not ready",
        progress=e(sweep_progress(data)),
        ready_class="ok" if data.ready else "warn",
        companies=len(companies),
        up=up,
        down=len(companies) - up,
        down_class="bad" if len(companies) - up else "ok",
        shard=f"{data.shard} of {data.total_shards}",
        last_poll=e(format_age(now - generated.timestamp()) + " ago") if generated else "never",
        last_poll_iso=e(_when(generated)),
        rows="\n".join(rows),
        version=e(data.version),
        python_version=e(data.python_version),
        status_mode=e(data.status_mode),
        now_iso=e(_when(datetime.fromtimestamp(now, UTC))),
    )
