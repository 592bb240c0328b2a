"""A real Prometheus server as a test fixture, and polling helpers for its HTTP API."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support.processes import stop_process, wait_until_ready
from tests.support.tools import free_port, require_tool

Sample = dict[str, Any]


@dataclass
class PrometheusServer:
    """A running Prometheus; ``url`` is its base URL."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def api(self, path: str, **params: str) -> Any:
        """GET an API path with query parameters and return ``data`` (raises on API errors)."""
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=10) as resp:
            body = json.load(resp)
        if body.get("status") != "success":
            raise AssertionError(f"Prometheus API error for {path} {params}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[Sample]:
        """Evaluate an instant query and return its result vector."""
        data = self.api("/api/v1/query", query=expr)
        result: list[Sample] = data["result"]
        return result

    def wait_for(
        self,
        expr: str,
        predicate: Callable[[list[Sample]], bool] = bool,
        timeout: float = 30.0,
    ) -> list[Sample]:
        """Poll ``expr`` until ``predicate(result)`` holds; fail with the last result on timeout."""
        deadline = time.monotonic() + timeout
        result: list[Sample] = []
        while time.monotonic() < deadline:
            result = self.query(expr)
            if predicate(result):
                return result
            time.sleep(0.25)
        raise AssertionError(
            f"timed out after {timeout}s waiting on {expr!r}; last result: {result}\n"
            f"prometheus log tail:\n{self.log_path.read_text()[-2000:]}"
        )


def scrape_config(targets: Sequence[str], job: str = "codat-exporter") -> dict[str, Any]:
    """A scrape config block for ``targets`` (host:port strings)."""
    return {"job_name": job, "static_configs": [{"targets": list(targets)}]}


@contextmanager
def run_prometheus(
    workdir: Path,
    scrape_configs: Sequence[dict[str, Any]],
    rule_files: Sequence[Path] = (),
    interval: str = "1s",
    extra: dict[str, Any] | None = None,
) -> Iterator[PrometheusServer]:
    """Start Prometheus on a free port with the given scrape configs; stop it on exit."""
    binary = require_tool("prometheus")
    workdir.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": list(scrape_configs),
    }
    if rule_files:
        config["rule_files"] = [str(p) for p in rule_files]
    if extra:
        config.update(extra)
    config_path = workdir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))
    port = free_port()
    log_path = workdir / "prometheus.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = PrometheusServer(f"http://127.0.0.1:{port}", proc, log_path)
    try:
        wait_until_ready(
            proc, f"{server.url}/-/ready", name="prometheus", log_path=log_path, timeout=30, interval=0.1
        )
        # Service discovery pushes targets only every ~5 s: wait until every target was scraped.
        server.wait_for("up", lambda r: len(r) >= len(scrape_configs), timeout=30)
        yield server
    finally:
        stop_process(proc)
        log.close()
