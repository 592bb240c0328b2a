"""``codat-exporter run`` as a real process: TLS and basic auth on both ports, and a taken port's message."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import bcrypt
import requests
import yaml

from tests.conftest import RunningSimulator
from tests.support.processes import stop_process
from tests.support.tls import make_pki
from tests.support.tools import REPO_ROOT, free_port
from tests.support.waiting import wait_until
from tests.support.webhooks import SECRET_TEXT
from tests.test_cli_serve import exporter_env


def answers(url: str, **kwargs: object) -> bool:
    try:
        return requests.get(url, timeout=2, **kwargs).status_code == 200  # type: ignore[arg-type]
    except requests.RequestException:
        return False


def test_run_serves_both_ports_over_tls_with_basic_auth(simulator: RunningSimulator, tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    hashed = bcrypt.hashpw(b"scrape-pass", bcrypt.gensalt(rounds=4)).decode()
    web = pki.path("web.yml")
    web.write_text(
        yaml.safe_dump(
            {
                "tls_server_config": {"cert_file": "server.crt", "key_file": "server.key"},
                "basic_auth_users": {"prometheus": hashed},
            }
        )
    )
    metrics_port, webhook_port = free_port(), free_port()
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "server": {"listen_address": f"127.0.0.1:{metrics_port}", "web_config_file": str(web)},
                "webhooks": {"enabled": True, "listen_address": f"127.0.0.1:{webhook_port}"},
            }
        )
    )
    log = tmp_path / "exporter.log"
    env = exporter_env(CODAT_API_KEY="demo", CODAT_BASE_URL=simulator.url, CODAT_WEBHOOK_SECRET=SECRET_TEXT)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "exporter", "run", "--config", str(config)],
            env=env,
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        started = "codat-exporter is up"
        wait_until(lambda: proc.poll() is not None or started in log.read_text(), "start-up", 30)
        assert proc.poll() is None, log.read_text()
        ca = str(pki.path("ca.crt"))
        auth = ("prometheus", "scrape-pass")
        metrics = f"https://127.0.0.1:{metrics_port}"
        hooks = f"https://127.0.0.1:{webhook_port}"
        wait_until(
            lambda: answers(metrics + "/healthz", verify=ca, auth=auth), "the metrics port over TLS", 30
        )
        wait_until(lambda: answers(hooks + "/healthz", verify=ca, auth=auth), "the webhook port over TLS", 30)
        assert requests.get(metrics + "/metrics", verify=ca, timeout=10).status_code == 401
        scrape = requests.get(metrics + "/metrics", verify=ca, auth=auth, timeout=10)
        assert "codat_exporter_build_info" in scrape.text
        assert requests.get(hooks + "/healthz", verify=ca, timeout=10).status_code == 401
        assert requests.get(hooks + "/metrics", verify=ca, auth=auth, timeout=10).status_code == 404
    finally:
        stop_process(proc)
    text = log.read_text()
    assert f"serving metrics on https://127.0.0.1:{metrics_port}/metrics (TLS, basic auth)" in text
    assert f"receiving Codat webhooks on https://127.0.0.1:{webhook_port}/webhooks/codat" in text
    assert text.count("serving metrics on") == 1  # the webhook-only port does not claim /metrics
    assert "Traceback" not in text


def test_run_on_a_taken_port_says_which_address_and_how_to_move(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        done = subprocess.run(
            [sys.executable, "-m", "exporter", "run", "--web.listen-address", address],
            env=exporter_env(CODAT_API_KEY="demo", CODAT_BASE_URL="http://127.0.0.1:9"),
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"cannot listen on {address}: the address is already in use (another process listens there); "
        "choose another with --web.listen-address or CODAT_EXPORTER_LISTEN_ADDRESS "
        "(server.listen_address in the config file)"
    ]
