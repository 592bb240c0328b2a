"""The text exposition passes ``promtool check metrics`` (Prometheus's own parser and linter)."""

from __future__ import annotations

import subprocess

import pytest

from exporter.exposition import STATUS_MODES, ExpositionCache
from exporter.exposition.selfmetrics import Telemetry
from tests.support.snapshots import T0, rich_snapshot
from tests.support.tools import require_tool


@pytest.mark.parametrize("mode", STATUS_MODES)
def test_promtool_check_metrics_reports_nothing(mode: str) -> None:
    promtool = require_tool("promtool")
    telemetry = Telemetry()
    telemetry.on_request("dataStatus", "200", 0.2)
    telemetry.count_poll_error("server_error")
    cache = ExpositionCache(mode, telemetry.registry)
    cache.update(rich_snapshot())
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=cache.body(False, False, T0.timestamp() + 60),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")
