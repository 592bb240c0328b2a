"""The docker-compose demo stack: each config it mounts is checked by its own tool, and the wiring agrees.

There is no container engine in CI, so the stack is not started; instead every file a service mounts
is laid out as the container would see it and validated by promtool / amtool, and the addresses the
services use to reach each other are checked against the compose file.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from exporter import __version__
from tests.support.tools import REPO_ROOT, require_tool

COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]


def mounts(service: str) -> list[tuple[Path, str]]:
    """(host path, container path) of each bind mount of ``service``."""
    found = []
    for volume in SERVICES[service].get("volumes", []):
        host, container, *_mode = volume.split(":")
        assert host.startswith("./"), f"{service}: {volume} is not a path in the repository"
        found.append((REPO_ROOT / host, container))
    return found


def container_path(service: str, path: str) -> Path:
    """The repository file mounted at ``path`` in ``service`` (a file, or inside a mounted directory)."""
    for host, container in mounts(service):
        if path == container:
            return host
        if path.startswith(container.rstrip("/") + "/"):
            return host / path[len(container.rstrip("/")) + 1 :]
    raise AssertionError(f"{path} is not mounted into {service}")


def layout(service: str, root: Path) -> Path:
    """Copy everything mounted into ``service`` under ``root`` at its container path; return root."""
    for host, container in mounts(service):
        target = root / container.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if host.is_dir():
            shutil.copytree(host, target)
        else:
            shutil.copyfile(host, target)
    return root


def flag(service: str, name: str) -> str:
    """The value of ``--name=value`` in a service's command."""
    for arg in SERVICES[service]["command"]:
        if arg.startswith(f"--{name}="):
            return str(arg.split("=", 1)[1])
    raise AssertionError(f"{service} has no --{name}")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def test_the_stack_has_the_four_services() -> None:
    assert set(SERVICES) == {"exporter", "prometheus", "alertmanager", "grafana"}


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_mounted_path_exists(service: str) -> None:
    for host, container in mounts(service):
        assert host.exists(), f"{service}: {host.relative_to(REPO_ROOT)} (mounted at {container}) is missing"


def test_the_exporter_is_built_from_the_repository_in_demo_mode() -> None:
    exporter = SERVICES["exporter"]
    assert (REPO_ROOT / exporter["build"]["context"] / "Dockerfile").is_file()
    assert exporter["build"]["args"]["VERSION"] == __version__, "the Dockerfile rejects another version"
    command = exporter["command"]
    assert command[:2] == ["run", "--demo"]
    # The demo listens on loopback by default; in a container it must listen on every interface.
    assert command[command.index("--web.listen-address") + 1] == "0.0.0.0:8329"


def test_prometheus_config_with_its_mounted_rules_passes_promtool(tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    root = layout("prometheus", tmp_path)
    config = root / flag("prometheus", "config.file").lstrip("/")
    result = _run(promtool, "check", "config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rules.yml" in result.stdout
    assert "alerts.yml" in result.stdout


def test_prometheus_scrapes_the_exporter_and_alerts_alertmanager() -> None:
    config = yaml.safe_load(container_path("prometheus", flag("prometheus", "config.file")).read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["codat-exporter"]["static_configs"][0]["targets"] == ["exporter:8329"]
    alertmanagers = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert alertmanagers == ["alertmanager:9093"]


def test_alertmanager_config_passes_amtool_and_routes_like_the_example() -> None:
    amtool = require_tool("amtool")
    path = container_path("alertmanager", flag("alertmanager", "config.file"))
    result = _run(amtool, "check-config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    demo = yaml.safe_load(path.read_text())
    example = yaml.safe_load((REPO_ROOT / "prometheus" / "alertmanager.example.yml").read_text())
    assert demo["inhibit_rules"] == example["inhibit_rules"]
    for key in ("receiver", "group_by"):
        assert demo["route"][key] == example["route"][key]
    strip = [{k: v for k, v in route.items() if k != "repeat_interval"} for route in demo["route"]["routes"]]
    assert strip == [
        {k: v for k, v in r.items() if k != "repeat_interval"} for r in example["route"]["routes"]
    ]


def test_grafana_provisioning_finds_prometheus_and_the_dashboards() -> None:
    datasources = yaml.safe_load(
        container_path("grafana", "/etc/grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    url = urlsplit(datasources["datasources"][0]["url"])
    assert (url.hostname, url.port) == ("prometheus", 9090)
    assert "prometheus" in SERVICES

    providers = yaml.safe_load(
        container_path("grafana", "/etc/grafana/provisioning/dashboards/codat.yml").read_text()
    )
    dashboards_dir = container_path("grafana", providers["providers"][0]["options"]["path"])
    assert sorted(p.name for p in dashboards_dir.glob("*.json")) == [
        "codat-company.json",
        "codat-overview.json",
    ]
    home = SERVICES["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert container_path("grafana", home).is_file()
