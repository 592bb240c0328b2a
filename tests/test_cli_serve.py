"""The run, once and check-config commands, run as an operator would."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.app import config_secrets
from exporter.cli import main
from exporter.codat.auth import authorization_header
from exporter.common.logs import setup_logging
from exporter.config.schema import Config
from tests.conftest import RunningSimulator
from tests.support.tools import REPO_ROOT, free_port, require_tool

SECRET_KEY = "sk-live-do-not-print-me"


def exporter_env(**extra: str) -> dict[str, str]:
    """The environment minus any Codat settings of the machine running the tests."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODAT_")}
    env.update(extra)
    return env


def run_cli(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("CODAT_"):
            monkeypatch.delenv(key)


def test_run_with_a_bad_config_exits_2_naming_the_field(
    tmp_path: Path, clean_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("budget:\n  max_concurrency: 99\npolling:\n  interval: soon\n")
    assert main(["run", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "budget.max_concurrency" in err
    assert "polling.interval" in err


def test_run_without_an_api_key_exits_2_naming_the_setting(
    clean_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--web.listen-address", f"127.0.0.1:{free_port()}"]) == 2
    assert "codat.api_key" in capsys.readouterr().err


def test_flags_are_validated_like_the_file(
    clean_env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CODAT_API_KEY", SECRET_KEY)
    assert main(["run", "--shard", "3", "--total-shards", "2"]) == 2
    captured = capsys.readouterr()
    assert "sharding.shard" in captured.err
    assert SECRET_KEY not in captured.err + captured.out


@pytest.mark.parametrize(
    ("extra", "named"),
    [(["--config", "any.yaml"], "--config"), (["--shard", "1", "--total-shards", "2"], "--shard")],
)
def test_demo_refuses_flags_it_would_ignore(
    extra: list[str], named: str, clean_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--demo", *extra]) == 2
    assert named in capsys.readouterr().err


def test_config_path_comes_from_the_environment(
    tmp_path: Path, clean_env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "from-env.yaml"
    config.write_text("metrics:\n  status_mode: loud\n")
    monkeypatch.setenv("CODAT_EXPORTER_CONFIG", str(config))
    assert main(["once"]) == 2
    assert "metrics.status_mode" in capsys.readouterr().err


def test_check_config_accepts_a_good_file_and_rejects_a_bad_one(
    tmp_path: Path, clean_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("polling:\n  interval: 2m\n")
    assert main(["check-config", str(good)]) == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("polling:\n  intervall: 2m\n")
    assert main(["check-config", str(bad)]) == 2
    assert "polling.intervall" in capsys.readouterr().err


def test_once_prints_an_exposition_that_promtool_accepts(simulator: RunningSimulator) -> None:
    promtool = require_tool("promtool")
    result = run_cli("once", env=exporter_env(CODAT_API_KEY="demo", CODAT_BASE_URL=simulator.url))
    assert result.returncode == 0, result.stderr.decode()
    body = result.stdout
    for company_id in simulator.sim.company_ids:
        assert f'codat_exporter_company_up{{company_id="{company_id}"}} 1'.encode() in body
    assert b"codat_data_last_successful_sync_timestamp_seconds{" in body
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, timeout=60, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.strip() == b""
    assert checked.stderr.strip() == b""


def test_once_exits_1_when_every_company_failed(simulator: RunningSimulator, tmp_path: Path) -> None:
    for company_id in simulator.sim.company_ids:
        simulator.sim.faults.set(company_id, error_rate=1.0, error_status=503)
    config = tmp_path / "config.yaml"
    config.write_text("codat:\n  max_retries: 0\n")
    result = run_cli(
        "once",
        "--config",
        str(config),
        env=exporter_env(CODAT_API_KEY="demo", CODAT_BASE_URL=simulator.url),
    )
    assert result.returncode == 1
    assert b"every company failed" in result.stderr
    assert result.stdout.count(b"codat_exporter_company_up{") == len(simulator.sim.company_ids)
    assert b"} 1\n" not in b"\n".join(
        line for line in result.stdout.splitlines() if line.startswith(b"codat_exporter_company_up{")
    )


def test_once_says_why_the_listing_failed_once(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("codat:\n  max_retries: 0\n")
    result = run_cli(
        "once",
        "--config",
        str(config),
        env=exporter_env(CODAT_API_KEY="demo", CODAT_BASE_URL=f"http://127.0.0.1:{free_port()}"),
    )
    assert result.returncode == 1
    assert result.stderr.count(b"could not connect") == 1, result.stderr
    assert result.stdout == b""


def test_the_api_key_never_appears_in_output_or_logs(simulator: RunningSimulator) -> None:
    result = run_cli(
        "once",
        "--log-level",
        "debug",
        env=exporter_env(CODAT_API_KEY=SECRET_KEY, CODAT_BASE_URL=simulator.url),
    )
    assert result.returncode == 1, "the simulator refuses the wrong key"
    assert SECRET_KEY.encode() not in result.stdout + result.stderr


@pytest.fixture
def demo_process() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "exporter", "run", "--demo", "--web.listen-address", f"127.0.0.1:{port}"],
        env=exporter_env(),
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        yield proc, f"http://127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, b""
    except OSError:
        return 0, b""


def _sync_values(body: bytes) -> dict[str, str]:
    pattern = re.compile(
        rb"^(codat_(?:data_last_successful_sync_timestamp_seconds|pull_operations_total)\{[^}]*\}) (\S+)$"
    )
    return {
        m.group(1).decode(): m.group(2).decode()
        for line in body.splitlines()
        if (m := pattern.match(line)) is not None
    }


def test_run_demo_serves_changing_metrics_and_stops_cleanly_on_sigterm(
    demo_process: tuple[subprocess.Popen[bytes], str],
) -> None:
    proc, url = demo_process
    deadline = time.monotonic() + 30
    while _get(f"{url}/readyz")[0] != 200:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        assert time.monotonic() < deadline, "the demo never became ready"
        time.sleep(0.2)
    status, first_body = _get(f"{url}/metrics")
    assert status == 200
    first = _sync_values(first_body)
    assert first, "the demo serves sync timestamps and counters"
    deadline = time.monotonic() + 45
    while True:
        current = _sync_values(_get(f"{url}/metrics")[1])
        if any(current.get(key) not in (None, value) for key, value in first.items()):
            break
        assert time.monotonic() < deadline, "demo metrics did not change"
        time.sleep(0.5)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    assert time.monotonic() - started < 10
    assert _get(f"{url}/healthz")[0] == 0, "the port is closed after shutdown"


def test_json_logs_are_one_object_per_line_with_secrets_masked(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("info", "json", secrets=[SECRET_KEY])
    try:
        logging.getLogger("exporter.test").warning("echoed by a library: key=%s", SECRET_KEY)
    finally:
        setup_logging("warning", "text")
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    record = json.loads(lines[-1])
    assert record["level"] == "warning"
    assert record["logger"] == "exporter.test"
    assert record["message"] == "echoed by a library: key=[REDACTED]"


def test_the_api_key_is_masked_in_logs_also_in_its_authorization_header_form(
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = Config.model_validate({"codat": {"api_key": SECRET_KEY}})
    header = authorization_header(SECRET_KEY)
    setup_logging("info", "text", secrets=config_secrets(config))
    try:
        logging.getLogger("exporter.test").warning("a library logged its request headers: %s", header)
    finally:
        setup_logging("warning", "text")
    err = capsys.readouterr().err
    assert "headers: Basic [REDACTED]" in err
    assert header.removeprefix("Basic ") not in err


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_secret_in_a_logged_traceback_is_masked(fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("info", fmt, secrets=[SECRET_KEY])
    try:
        try:
            raise ValueError(f"a library echoed the header: Basic {SECRET_KEY}")
        except ValueError:
            logging.getLogger("exporter.test").exception("poll cycle failed unexpectedly")
    finally:
        setup_logging("warning", "text")
    err = capsys.readouterr().err
    assert "ValueError: a library echoed the header: Basic [REDACTED]" in err
    assert SECRET_KEY not in err


def test_sigterm_exits_within_seconds_even_while_a_codat_request_hangs(simulator: RunningSimulator) -> None:
    simulator.sim.faults.set(None, latency=25.0)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "exporter", "run", "--web.listen-address", f"127.0.0.1:{port}"],
        env=exporter_env(CODAT_API_KEY="demo", CODAT_BASE_URL=simulator.url),
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while simulator.sim.count_requests() == 0:
            assert time.monotonic() < deadline, "the exporter never called the simulator"
            time.sleep(0.1)
        assert _get(f"http://127.0.0.1:{port}/healthz")[0] == 200
        assert _get(f"http://127.0.0.1:{port}/readyz")[0] == 503
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        assert time.monotonic() - started < 10
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
