"""The container image: built from our Dockerfile, run as a user would, scraped from the host, stopped.

The image is built on a Debian base made locally (no registry access needed) and run the way the
Kubernetes manifests run it: read-only root filesystem, no capabilities, non-root.

Nothing is left behind: containers run on the host's network or on none, so podman never creates
its bridge (``cni-podman0``) or the iptables chains that come with it; every container and image
the tests make is removed. Only the base image stays, as a cache (see the README's Development).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter import __version__
from exporter.exposition.families import DATA_STATUS
from exporter.exposition.selfspecs import BUILD_INFO
from tests.support.containers import (
    BASE_IMAGE,
    CONTAINERS_CONF,
    Podman,
    debian_mirror,
    ensure_base_image,
    host_ca_bundle,
    host_debian_mirror,
    parse_apt_sources,
)
from tests.support.tools import REPO_ROOT, free_port, in_ci, require_tool

EXPORTER_PORT = 8329
UID_GID = "10001:10001"
CONFIG_PATH = "/etc/codat-exporter/config.yaml"
NO_NETWORK = "--network=none"
"""For containers that need no network: the default one would create podman's bridge."""


@dataclass(frozen=True)
class RunningContainer:
    """A started exporter container and where the host reaches it."""

    name: str
    url: str
    started_at: float
    ready_after: float


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podman]:
    """podman configured for this kind of host (runc, fitting ulimits); checks nothing is left behind."""
    executable = require_tool("podman")
    require_tool("runc")
    conf = tmp_path_factory.mktemp("podman") / "containers.conf"
    conf.write_text(CONTAINERS_CONF, encoding="utf-8")
    podman = Podman(executable, conf)
    before = podman.footprint()
    yield podman
    # Torn down after every fixture that uses it: the containers and images are gone by now.
    left = podman.footprint() - before
    assert not left, f"the container tests left behind: {sorted(left)}"


@pytest.fixture(scope="module")
def base_image(podman: Podman, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A local Debian bookworm image with Python 3.11, standing in for python:3.11-slim-bookworm."""
    if not podman.image_exists(BASE_IMAGE):
        mmdebstrap = require_tool("mmdebstrap")
        mirror = host_debian_mirror()
        if mirror is None:
            message = "no Debian bookworm mirror in the apt sources to build the base image from"
            if in_ci():
                pytest.fail(message)
            pytest.skip(message)
        ensure_base_image(podman, mmdebstrap, mirror, tmp_path_factory.mktemp("base"))
    return BASE_IMAGE


def build_command(base_image: str, version: str, *extra: str) -> list[str]:
    """``podman build`` arguments for the repository's Dockerfile on ``base_image``."""
    args = [
        "build",
        "--format=docker",  # the OCI image format has no HEALTHCHECK
        "--network=host",
        f"--build-arg=PYTHON_IMAGE={base_image}",
        f"--build-arg=VERSION={version}",
        f"--file={REPO_ROOT / 'Dockerfile'}",
        *extra,
    ]
    ca_bundle = host_ca_bundle()
    if ca_bundle is not None:
        args.append(f"--secret=id=pip-ca,src={ca_bundle}")
    return [*args, str(REPO_ROOT)]


def dangling_images(podman: Podman) -> set[str]:
    """Ids of the untagged images in the local store (build-stage leftovers)."""
    result = podman.run("images", "--quiet", "--no-trunc", "--filter=dangling=true")
    return set(result.stdout.split())


@pytest.fixture(scope="module")
def image(podman: Podman, base_image: str) -> Iterator[str]:
    """The exporter image, built from the repository's Dockerfile on the local base image."""
    tag = f"localhost/codat-exporter:test-{os.getpid()}"
    dangling_before = dangling_images(podman)
    podman.run(*build_command(base_image, __version__, f"--tag={tag}"), timeout=600)
    yield tag
    podman.run("rmi", "--force", tag, check=False)
    # The build stages this run left behind; without this every code change adds one.
    leftovers = sorted(dangling_images(podman) - dangling_before)
    if leftovers:
        podman.run("rmi", "--force", *leftovers, check=False)


@pytest.fixture(scope="module")
def container(podman: Podman, image: str) -> Iterator[RunningContainer]:
    """The image running ``run --demo`` locked down like the Kubernetes pod, port on 127.0.0.1."""
    name = f"codat-exporter-test-{os.getpid()}"
    port = free_port()
    started_at = time.monotonic()
    podman.run(
        "run",
        "--detach",
        f"--name={name}",
        # The host's network with the port moved, rather than a published port: publishing needs
        # podman's bridge and NAT rules, which would outlive the test on the user's machine.
        "--network=host",
        f"--env=CODAT_EXPORTER_LISTEN_ADDRESS=127.0.0.1:{port}",
        "--read-only",
        "--read-only-tmpfs=false",
        "--cap-drop=ALL",
        "--security-opt=no-new-privileges",
        # No systemd timer on this host; the test runs the health check itself.
        "--health-interval=disable",
        image,
        "run",
        "--demo",
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_codat_series(podman, name, url, deadline=time.monotonic() + 90)
        yield RunningContainer(name, url, started_at, time.monotonic() - started_at)
    finally:
        podman.run("rm", "--force", "--time=0", name, check=False)


def scrape(url: str) -> str:
    """GET ``url``/metrics as text."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        body: bytes = response.read()
    return body.decode()


def wait_for_codat_series(podman: Podman, name: str, url: str, deadline: float) -> None:
    """Poll /metrics until it carries data series, failing with the container's logs on timeout."""
    last_error = ""
    while time.monotonic() < deadline:
        state = inspect(podman, name)["State"]
        if not state["Running"]:
            logs = podman.run("logs", name, check=False)
            pytest.fail(f"container exited with {state['ExitCode']}:\n{logs.stdout}{logs.stderr}")
        try:
            if f"\n{DATA_STATUS.name}{{" in scrape(url):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            last_error = str(exc)
        time.sleep(0.5)  # polling interval while waiting for a condition, not synchronisation
    logs = podman.run("logs", name, check=False)
    pytest.fail(
        f"no {DATA_STATUS.name} series before the deadline ({last_error}):\n{logs.stdout}{logs.stderr}"
    )


def inspect(podman: Podman, name: str, *, image: bool = False) -> dict[str, Any]:
    """``podman inspect`` of a container (or image) as a dict."""
    kind = "image" if image else "container"
    result = podman.run(kind, "inspect", name)
    data: list[dict[str, Any]] = json.loads(result.stdout)
    return data[0]


def test_apt_sources_give_the_bookworm_mirror_not_security() -> None:
    deb822 = """\
Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main

Types: deb
# a comment inside a stanza does not end it
URIs: http://mirror.example/debian/
Suites: bookworm bookworm-updates
Components: main
"""
    one_line = (
        "deb-src http://src.example/debian bookworm main\n"
        "deb [arch=amd64] http://one.example/debian bookworm main\n"
    )
    assert debian_mirror(parse_apt_sources(deb822)) == "http://mirror.example/debian"
    assert debian_mirror(parse_apt_sources(one_line)) == "http://one.example/debian"
    assert (
        debian_mirror(parse_apt_sources("Types: deb\nURIs: http://x\nSuites: bookworm\nEnabled: no\n"))
        is None
    )


def test_dockerfile_is_clean_under_hadolint() -> None:
    hadolint = require_tool("hadolint")
    result = subprocess.run(
        [hadolint, str(REPO_ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_image_is_labelled_with_the_package_version_and_runs_as_non_root(podman: Podman, image: str) -> None:
    details = inspect(podman, image, image=True)
    config = details["Config"]
    assert config["Labels"]["org.opencontainers.image.version"] == __version__
    assert config["User"] == UID_GID
    assert config["Entrypoint"] == ["codat-exporter"]
    assert config["Cmd"] == ["run"]
    assert f"{EXPORTER_PORT}/tcp" in config["ExposedPorts"]
    assert details["Healthcheck"]["Test"][:2] == ["CMD", "python3"]
    # Nothing secret is baked in.
    assert not [e for e in config.get("Env", []) if e.startswith(("CODAT_API_KEY", "CODAT_WEBHOOK_SECRET"))]
    listing = podman.run(
        "run",
        "--rm",
        NO_NETWORK,
        "--health-interval=disable",
        "--entrypoint=python3",
        image,
        "-c",
        "import os; print(sorted(os.listdir('/etc/codat-exporter')), os.path.exists('/src'))",
    )
    # The config directory is an empty mount point, and the build stage's sources stayed behind.
    assert listing.stdout.strip() == "[] False"


@pytest.mark.slow
def test_image_reports_the_package_version(podman: Podman, image: str) -> None:
    result = podman.run("run", "--rm", NO_NETWORK, "--health-interval=disable", image, "--version")
    assert result.stdout.strip() == f"codat-exporter {__version__}"


@pytest.mark.slow
def test_config_mounted_at_the_documented_path_is_read_by_the_image_user(podman: Podman, image: str) -> None:
    config = REPO_ROOT / "deploy" / "kubernetes" / "single" / "config.yaml"
    result = podman.run(
        "run",
        "--rm",
        NO_NETWORK,
        "--read-only",
        "--health-interval=disable",
        f"--volume={config}:{CONFIG_PATH}:ro",
        image,
        "check-config",
        CONFIG_PATH,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_build_refuses_a_version_argument_that_disagrees_with_the_package(
    podman: Podman, image: str, base_image: str
) -> None:
    # Only the first stage is built (cached up to the check), so this costs seconds.
    result = podman.run(*build_command(base_image, "0.0.0-wrong", "--target=build"), timeout=600, check=False)
    assert result.returncode != 0
    assert f"build with --build-arg VERSION={__version__}" in result.stdout + result.stderr


@pytest.mark.slow
def test_demo_container_serves_codat_metrics_to_the_host(container: RunningContainer) -> None:
    families = {f.name: f for f in text_string_to_metric_families(scrape(container.url))}
    assert any(s.value == 1 for s in families[DATA_STATUS.name].samples)
    build_info = families[BUILD_INFO.name].samples
    assert [s.labels["version"] for s in build_info] == [__version__]
    print(f"container: first codat series after {container.ready_after:.1f}s")


@pytest.mark.slow
def test_health_check_passes_and_the_process_runs_as_the_image_user(
    podman: Podman, container: RunningContainer
) -> None:
    result = podman.run("healthcheck", "run", container.name, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert inspect(podman, container.name)["State"]["Health"]["Status"] == "healthy"
    ids = podman.run("exec", container.name, "python3", "-c", "import os; print(os.getuid(), os.getgid())")
    assert ids.stdout.split() == UID_GID.split(":")


@pytest.mark.slow
def test_sigterm_stops_the_container_by_itself(podman: Podman, container: RunningContainer) -> None:
    started = time.monotonic()
    result = podman.run("stop", "--time=10", container.name, timeout=60)
    took = time.monotonic() - started
    state = inspect(podman, container.name)["State"]
    # 137 (SIGKILL) would mean podman gave up waiting after 10 s: the exporter ignored SIGTERM.
    assert state["ExitCode"] == 0, f"exit code {state['ExitCode']}: {result.stderr}"
    assert "SIGKILL" not in result.stderr
    print(f"container: podman stop took {took:.2f}s")
