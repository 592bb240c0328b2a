"""The landing page in a real browser (headless Chromium): the table renders, nothing executes."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from exporter.collector.snapshot import Snapshot
from exporter.exposition import ExpositionCache
from exporter.exposition.selfmetrics import Telemetry
from exporter.http.exporter import ExporterServer
from exporter.http.landing import LandingData
from tests.support.browser import dump_dom, screenshot
from tests.support.snapshots import T0, company, demo_snapshot, snapshot

NOW = T0.timestamp()
HOSTILE = "<script>document.title='pwned'</script><img src=x onerror=alert(1)> \"Q\" & Co"


class TableRows(HTMLParser):
    """Collects the text of each ``<tr>`` of the ``#stalest`` table body, cell by cell."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.title = ""
        self.scripts = 0
        self._in_body = False
        self._cell: list[str] | None = None
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self.rows.append([])
        elif tag == "td" and self._in_body:
            self._cell = []
        elif tag == "title":
            self._in_title = True
        elif tag in ("script", "img"):
            self.scripts += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "tbody":
            self._in_body = False
        elif tag == "td" and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._in_title:
            self.title += data


def browser_snapshot() -> Snapshot:
    demo = demo_snapshot(companies=24)
    hostile = company("c-hostile", {"invoices": ("FetchError", T0 - timedelta(days=400))}, name=HOSTILE)
    return snapshot(*demo.companies.values(), hostile, generated_at=demo.generated_at)


@pytest.fixture
def landing_url() -> Iterator[str]:
    snap = browser_snapshot()
    cache = ExpositionCache("default")
    cache.update(snap)
    server = ExporterServer(
        "127.0.0.1:0",
        cache,
        Telemetry(),
        ready=lambda: True,
        landing=lambda: LandingData(snap, ready=True),
        clock=lambda: NOW,
    )
    server.start()
    try:
        yield server.url + "/"
    finally:
        server.stop()


def test_browser_shows_the_stalest_pairs_in_order(landing_url: str, tmp_path: Path) -> None:
    dom = TableRows()
    dom.feed(dump_dom(landing_url, tmp_path))
    assert dom.title == "codat-exporter"
    assert dom.scripts == 0, "a company name became markup"
    assert len(dom.rows) == 20
    assert all(len(row) == 5 for row in dom.rows)
    never = [row for row in dom.rows if row[4] == "never"]
    assert never
    assert dom.rows[: len(never)] == never, "never-synced pairs come first"
    assert all(row[2] == "never synced" and row[3] == "never" for row in never)
    after = dom.rows[len(never)]
    assert after[0] == HOSTILE, "the oldest synced pair (400 days) follows, its name shown as text"
    assert after[1:] == ["invoices", "FetchError", "2024-12-01 09:00:00 UTC", "400d 0h"]


def test_browser_screenshot_is_a_png_of_the_requested_size(landing_url: str, tmp_path: Path) -> None:
    png = screenshot(landing_url, tmp_path, tmp_path / "landing.png", width=1000, height=700)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1000, 700)
    assert len(data) > 20_000, "a blank page compresses to almost nothing"
