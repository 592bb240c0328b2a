"""``codat-exporter simulate`` as a user runs it: a real process serving real HTTP."""

from __future__ import annotations

import base64
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.support.tools import free_port

AUTH = {"Authorization": "Basic " + base64.b64encode(b"s3cret-key").decode()}


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "exporter", "simulate", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``codat-exporter simulate`` with ``args`` to completion (for commands that exit at once)."""
    return subprocess.run(
        [sys.executable, "-m", "exporter", "simulate", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def wait_for_http(url: str, timeout: float = 20) -> requests.Response:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return requests.get(url, headers=AUTH, timeout=2)
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)  # polling for the port to open, with a deadline


def test_simulate_serves_until_sigterm_and_says_where() -> None:
    port = free_port()
    process = start("--listen-address", f"127.0.0.1:{port}", "--api-key", "s3cret-key", "--companies", "25")
    try:
        response = wait_for_http(f"http://127.0.0.1:{port}/companies?pageSize=10")
        assert response.status_code == 200
        assert response.json()["totalResults"] == 25
        unauthorized = requests.get(f"http://127.0.0.1:{port}/companies", timeout=5)
        assert unauthorized.status_code == 401
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=20)
    assert process.returncode == 0
    assert f"http://127.0.0.1:{port}" in output
    assert "CODAT_BASE_URL=" in output
    assert "s3cret-key" not in output


def test_simulate_rejects_a_bad_scenario_with_exit_2(tmp_path: Path) -> None:
    scenario = tmp_path / "bad.yaml"
    scenario.write_text("companies: [{name: A, profile: missing}]\n")
    result = run("--scenario", str(scenario))
    assert result.returncode == 2
    assert "companies.0.profile: unknown profile 'missing'" in result.stderr


def test_simulate_rejects_a_bad_listen_address() -> None:
    result = run("--listen-address", "localhost")
    assert result.returncode == 2
    assert "expected HOST:PORT" in result.stderr


def test_simulate_control_flag_serves_the_control_api_on_loopback() -> None:
    port = free_port()
    process = start("--listen-address", f"127.0.0.1:{port}", "--api-key", "s3cret-key", "--control")
    base = f"http://127.0.0.1:{port}"
    try:
        assert wait_for_http(f"{base}/companies").status_code == 200
        assert requests.post(f"{base}/_control/revoke-key", timeout=5).status_code == 200
        assert requests.get(f"{base}/companies", headers=AUTH, timeout=5).status_code == 401
        assert requests.post(f"{base}/_control/clear", timeout=5).status_code == 200
        assert requests.get(f"{base}/companies", headers=AUTH, timeout=5).status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=20)
    assert process.returncode == 0
    assert f"{base}/_control" in output


def test_simulate_without_the_flag_has_no_control_api() -> None:
    port = free_port()
    process = start("--listen-address", f"127.0.0.1:{port}", "--api-key", "s3cret-key", "--companies", "3")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}/companies")
        assert requests.post(f"{base}/_control/revoke-key", headers=AUTH, timeout=5).status_code == 404
        assert requests.get(f"{base}/companies", headers=AUTH, timeout=5).status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=20)
