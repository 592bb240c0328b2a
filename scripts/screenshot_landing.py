"""Serve the landing page over demo data and save a headless-Chromium screenshot of it (for the README)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from exporter.exposition import ExpositionCache
from exporter.http.exporter import ExporterServer
from exporter.http.landing import LandingData
from tests.support.browser import screenshot
from tests.support.snapshots import T0, demo_snapshot


def main(out: Path) -> None:
    """Write the screenshot to ``out``."""
    snap = demo_snapshot(companies=24)
    cache = ExpositionCache("default")
    cache.update(snap)
    server = ExporterServer(
        "127.0.0.1:0",
        cache,
        None,
        ready=lambda: True,
        landing=lambda: LandingData(snap, ready=True, shard=0, total_shards=2),
        clock=lambda: T0.timestamp(),
    )
    server.start()
    try:
        with tempfile.TemporaryDirectory() as work:
            screenshot(server.url + "/", Path(work), out.resolve(), width=1200, height=960)
    finally:
        server.stop()
    print(f"wrote {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/landing-page.png"))
