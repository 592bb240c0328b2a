"""A real Alertmanager as a test fixture, running the shipped example routing with test receivers."""

from __future__ import annotations

import copy
import json
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.support.post_capture import serving_posts
from tests.support.processes import stop_process, wait_until_ready
from tests.support.rule_scaling import scale_duration
from tests.support.tools import REPO_ROOT, free_port, require_tool

EXAMPLE = REPO_ROOT / "prometheus" / "alertmanager.example.yml"
TIMERS = ("group_wait", "group_interval", "repeat_interval")


@dataclass
class AlertmanagerServer:
    """A running Alertmanager; ``url`` is its base URL."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts Alertmanager holds now (API v2), inhibited ones included."""
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts", timeout=10) as resp:
            alerts: list[dict[str, Any]] = json.load(resp)
        return alerts


@dataclass(frozen=True)
class Notification:
    """One webhook notification Alertmanager sent: when it arrived, to which receiver, its alerts."""

    received_at: float
    receiver: str
    alerts: tuple[dict[str, Any], ...]


@dataclass
class NotificationLog:
    """Every notification received so far (thread-safe); ``base_url`` takes ``/<receiver name>``."""

    base_url: str = ""
    notifications: list[Notification] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def alerts(self) -> list[tuple[Notification, dict[str, Any]]]:
        """Every (notification, alert) pair received so far, in arrival order."""
        with self.lock:
            return [(n, alert) for n in self.notifications for alert in n.alerts]


@contextmanager
def alert_receiver() -> Iterator[NotificationLog]:
    """A loopback webhook endpoint recording Alertmanager's notifications; stopped on exit."""
    log = NotificationLog()

    def record(path: str, headers: Mapping[str, str], body: bytes) -> int:
        alerts = tuple(json.loads(body).get("alerts", ()))
        with log.lock:
            log.notifications.append(Notification(time.time(), path.strip("/"), alerts))
        return 200

    with serving_posts(record) as base_url:
        log.base_url = base_url
        yield log


def example_config(receiver_base_url: str, factor: float = 1.0) -> dict[str, Any]:
    """The shipped example, every webhook sent to ``receiver_base_url`` and timers divided by ``factor``.

    Routing, grouping and inhibition stay as shipped; only the receivers' URLs (the part a user
    replaces) and the notification timers change, the timers so that a compressed replay sees
    notifications when production would.
    """
    config: dict[str, Any] = copy.deepcopy(yaml.safe_load(EXAMPLE.read_text(encoding="utf-8")))

    def scale(route: dict[str, Any]) -> None:
        for key in TIMERS:
            if key in route:
                route[key] = scale_duration(str(route[key]), factor)
        for child in route.get("routes", []):
            scale(child)

    scale(config["route"])
    for receiver in config["receivers"]:
        for webhook in receiver.get("webhook_configs", []):
            webhook["url"] = f"{receiver_base_url}/{receiver['name']}"
    return config


@contextmanager
def run_alertmanager(workdir: Path, config: dict[str, Any]) -> Iterator[AlertmanagerServer]:
    """Start Alertmanager on free loopback ports with ``config``; stop it on exit."""
    binary = require_tool("prometheus-alertmanager")
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "alertmanager.yml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    log_path = workdir / "alertmanager.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                # a single instance: no gossip port to bind or clash
                "--cluster.listen-address=",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        server = AlertmanagerServer(f"http://127.0.0.1:{port}", proc, log_path)
        try:
            ready = f"{server.url}/-/ready"
            wait_until_ready(proc, ready, name="alertmanager", log_path=log_path, timeout=30, interval=0.2)
            yield server
        finally:
            stop_process(proc)
