"""The exporter-toolkit web configuration for real: TLS handshakes, client certificates, auth, headers."""

from __future__ import annotations

import base64
import io
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import requests
import yaml
from pydantic import SecretStr

from exporter.config.check import check_config_command
from exporter.config.schema import WebhookSettings
from exporter.exposition import ExpositionCache
from exporter.exposition.selfmetrics import Telemetry
from exporter.http.auth import BasicAuth
from exporter.http.exporter import ExporterServer
from exporter.http.landing import LandingData
from exporter.http.webconfig import WebConfig, WebConfigError, load_web_config
from exporter.webhooks import build_webhook_receiver
from tests.support.snapshots import rich_snapshot
from tests.support.tls import Pki, make_pki
from tests.support.tools import free_port
from tests.support.webhooks import SECRET_TEXT, RecordingScheduler

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def password_hash() -> str:
    return bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()


def web_file(directory: Path, content: dict[str, Any]) -> Path:
    path = directory / "web.yml"
    path.write_text(yaml.safe_dump(content))
    return path


def tls_section(**extra: str) -> dict[str, str]:
    # Relative file names: resolved against the web config file's directory, as exporter-toolkit does.
    return {"cert_file": "server.crt", "key_file": "server.key", **extra}


@contextmanager
def serving(web: WebConfig) -> Iterator[ExporterServer]:
    cache = ExpositionCache()
    cache.update(rich_snapshot())
    server = ExporterServer(
        "127.0.0.1:0",
        cache,
        Telemetry(),
        ready=lambda: True,
        landing=lambda: LandingData(rich_snapshot()),
        web=web,
    )
    with server:
        yield server


def test_tls_serves_metrics_to_a_client_that_trusts_the_ca(pki: Pki) -> None:
    web = load_web_config(web_file(pki.directory, {"tls_server_config": tls_section()}))
    with serving(web) as server:
        assert server.url.startswith("https://127.0.0.1:")
        response = requests.get(server.url + "/metrics", verify=str(pki.path("ca.crt")), timeout=10)
        assert response.status_code == 200
        assert "codat_exporter_build_info" in response.text
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(server.url + "/healthz", timeout=10)  # the system CAs do not know this one
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(server.url.replace("https", "http") + "/healthz", timeout=10)  # plain HTTP refused
        # The failed handshakes left the server serving.
        assert (
            requests.get(server.url + "/healthz", verify=str(pki.path("ca.crt")), timeout=10).text == "ok\n"
        )


def test_min_version_refuses_older_clients(pki: Pki) -> None:
    web = load_web_config(web_file(pki.directory, {"tls_server_config": tls_section(min_version="TLS13")}))
    with serving(web) as server:
        old = ssl.create_default_context(cafile=pki.path("ca.crt"))
        old.maximum_version = ssl.TLSVersion.TLSv1_2
        with pytest.raises(ssl.SSLError), _tls_connect(server.port, old):
            pass
        new = ssl.create_default_context(cafile=pki.path("ca.crt"))
        with _tls_connect(server.port, new) as sock:
            assert sock.version() == "TLSv1.3"


@contextmanager
def _tls_connect(port: int, context: ssl.SSLContext) -> Iterator[ssl.SSLSocket]:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as sock,
    ):
        yield sock


@pytest.mark.parametrize("path", ["/metrics", "/healthz", "/", "/nope"])
def test_basic_auth_guards_every_path_as_the_file_says(pki: Pki, password_hash: str, path: str) -> None:
    web = load_web_config(web_file(pki.directory, {"basic_auth_users": {"prometheus": password_hash}}))
    with serving(web) as server:
        missing = requests.get(server.url + path, timeout=10)
        assert missing.status_code == 401
        assert missing.headers["WWW-Authenticate"] == "Basic"
        wrong = requests.get(server.url + path, auth=("prometheus", "wrong"), timeout=10)
        assert wrong.status_code == 401
        unknown = requests.get(server.url + path, auth=("nobody", PASSWORD), timeout=10)
        assert unknown.status_code == 401
        right = requests.get(server.url + path, auth=("prometheus", PASSWORD), timeout=10)
        assert right.status_code == (404 if path == "/nope" else 200)
        again = requests.get(server.url + path, auth=("prometheus", PASSWORD), timeout=10)  # cached
        assert again.status_code == right.status_code


def test_a_wrong_password_after_a_right_one_is_still_refused(pki: Pki, password_hash: str) -> None:
    web = load_web_config(web_file(pki.directory, {"basic_auth_users": {"prometheus": password_hash}}))
    with serving(web) as server:
        assert (
            requests.get(server.url + "/healthz", auth=("prometheus", PASSWORD), timeout=10).status_code
            == 200
        )
        assert (
            requests.get(server.url + "/healthz", auth=("prometheus", PASSWORD + "x"), timeout=10).status_code
            == 401
        )


@pytest.mark.parametrize(
    ("client", "auth_type", "accepted"),
    [
        ("client", "RequireAndVerifyClientCert", True),
        (None, "RequireAndVerifyClientCert", False),
        ("stranger", "RequireAndVerifyClientCert", False),  # signed by another CA
        ("expired", "RequireAndVerifyClientCert", False),
        (None, "VerifyClientCertIfGiven", True),
        ("stranger", "VerifyClientCertIfGiven", False),
    ],
)
def test_client_certificates_are_verified_against_the_client_ca(
    pki: Pki, client: str | None, auth_type: str, accepted: bool
) -> None:
    section = tls_section(client_auth_type=auth_type, client_ca_file="ca.crt")
    web = load_web_config(web_file(pki.directory, {"tls_server_config": section}))
    with serving(web) as server:
        cert = pki.pair(client) if client else None
        if accepted:
            response = requests.get(
                server.url + "/healthz", verify=str(pki.path("ca.crt")), cert=cert, timeout=10
            )
            assert response.status_code == 200
        else:
            with pytest.raises(requests.exceptions.RequestException):
                requests.get(server.url + "/healthz", verify=str(pki.path("ca.crt")), cert=cert, timeout=10)
        # Whatever happened to that client, a trusted one is still served.
        trusted = requests.get(
            server.url + "/healthz", verify=str(pki.path("ca.crt")), cert=pki.pair("client"), timeout=10
        )
        assert trusted.status_code == 200


def test_extra_headers_are_added_and_the_landing_page_keeps_its_own_policy(pki: Pki) -> None:
    headers = {"X-Frame-Options": "deny", "Content-Security-Policy": "default-src 'self'"}
    web = load_web_config(web_file(pki.directory, {"http_server_config": {"headers": headers}}))
    with serving(web) as server:
        metrics = requests.get(server.url + "/metrics", timeout=10)
        assert metrics.headers["X-Frame-Options"] == "deny"
        assert metrics.headers["Content-Security-Policy"] == "default-src 'self'"
        page = requests.get(server.url + "/", timeout=10)
        assert page.headers["Content-Security-Policy"].startswith("default-src 'none'")


def test_the_webhook_port_takes_the_same_file(pki: Pki, password_hash: str) -> None:
    content = {"tls_server_config": tls_section(), "basic_auth_users": {"codat": password_hash}}
    web = load_web_config(web_file(pki.directory, content))
    settings = WebhookSettings(
        enabled=True, secret=SecretStr(SECRET_TEXT), listen_address=f"127.0.0.1:{free_port()}"
    )
    receiver = build_webhook_receiver(
        settings, RecordingScheduler(), Telemetry(), owns=lambda _: True, web=web
    )
    receiver.start()
    try:
        assert receiver.url is not None
        assert receiver.url.startswith("https://")
        ca = str(pki.path("ca.crt"))
        assert requests.get(receiver.url + "/healthz", verify=ca, timeout=10).status_code == 401
        assert (
            requests.get(receiver.url + "/healthz", verify=ca, auth=("codat", PASSWORD), timeout=10).text
            == "ok\n"
        )
        unsigned = requests.post(
            receiver.url + "/webhooks/codat", data=b"{}", verify=ca, auth=("codat", PASSWORD), timeout=10
        )
        assert unsigned.status_code == 401  # past basic auth, the webhook signature is still checked
    finally:
        receiver.stop()


def test_no_file_means_plain_http_without_auth() -> None:
    web = load_web_config(None)
    assert (web.tls, web.auth, dict(web.headers)) == (None, None, {})
    assert web.describe() == "no TLS, no basic auth"


BAD_FILES: list[tuple[object, str]] = [
    ({"tls_server_config": {"key_file": "server.key"}}, "tls_server_config.cert_file: missing"),
    ({"tls_server_config": {"cert_file": "server.crt"}}, "tls_server_config.key_file: missing"),
    ({"tls_server_config": tls_section(cert_file="nope.crt")}, "tls_server_config.cert_file: cannot load"),
    ({"tls_server_config": tls_section(key_file="other_ca.key")}, "tls_server_config.cert_file: cannot load"),
    (
        {"tls_server_config": tls_section(min_version="TLS14")},
        "tls_server_config.min_version: must be one of",
    ),
    (
        {"tls_server_config": tls_section(client_auth_type="RequireAndVerifyClientCert")},
        "client_ca_file: missing",
    ),
    ({"tls_server_config": tls_section(client_auth_type="Sometimes")}, "client_auth_type: must be one of"),
    ({"tls_server_config": tls_section(client_auth_type="RequireAnyClientCert")}, "is not supported"),
    ({"tls_server_config": tls_section(cipher_suites="x")}, "cipher_suites: not supported"),
    ({"basic_auth_users": {"prometheus": "plaintext"}}, "basic_auth_users.prometheus: must be a bcrypt hash"),
    ({"basic_auth_users": ["prometheus"]}, "basic_auth_users: must be a mapping"),
    ({"http_server_config": {"headers": {"Set-Cookie": "a=b"}}}, "headers.Set-Cookie: not an allowed header"),
    ({"http_server_config": {"headers": {"X-Frame-Options": "allow"}}}, "X-Frame-Options: must be one of"),
    ({"tls_server_cfg": {}}, "tls_server_cfg: unknown field"),
    ("just text", "must be a mapping"),
]


@pytest.mark.parametrize(("content", "expected"), BAD_FILES)
def test_an_invalid_file_is_one_line_naming_the_field(pki: Pki, content: object, expected: str) -> None:
    path = pki.directory / "bad.yml"
    path.write_text(yaml.safe_dump(content))
    with pytest.raises(WebConfigError) as raised:
        load_web_config(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: ")
    assert expected in message
    assert "\n" not in message


def test_unreadable_and_malformed_files_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(WebConfigError, match="cannot read the web config file"):
        load_web_config(tmp_path / "missing.yml")
    broken = tmp_path / "broken.yml"
    broken.write_text("tls_server_config: [unclosed\n")
    with pytest.raises(WebConfigError, match="invalid YAML at line"):
        load_web_config(broken)
    huge = tmp_path / "huge.yml"
    huge.write_text("#" * 100_000)
    with pytest.raises(WebConfigError, match="larger than"):
        load_web_config(huge)


def test_run_refuses_an_invalid_web_config_with_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "web.yml"
    bad.write_text("basic_auth_users:\n  prometheus: hunter2\n")
    env = {"CODAT_API_KEY": "test-key", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "exporter",
            "run",
            "--web.config.file",
            str(bad),
            "--web.listen-address",
            f"127.0.0.1:{free_port()}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines == [
        f"{bad}: basic_auth_users.prometheus: must be a bcrypt hash ($2b$...), never the password itself"
    ]
    assert "hunter2" not in done.stderr


def test_check_config_checks_the_web_config_file_too(tmp_path: Path, password_hash: str) -> None:
    web = tmp_path / "web.yml"
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"server": {"web_config_file": str(web)}}))
    env = {"CODAT_API_KEY": "test-key"}
    web.write_text("basic_auth_users:\n  prometheus: hunter2\n")
    out, err = io.StringIO(), io.StringIO()
    assert check_config_command(config, env, stdout=out, stderr=err) == 2
    assert err.getvalue().splitlines() == [
        f"{web}: basic_auth_users.prometheus: must be a bcrypt hash ($2b$...), never the password itself"
    ]
    web.write_text(yaml.safe_dump({"basic_auth_users": {"prometheus": password_hash}}))
    out = io.StringIO()
    assert check_config_command(config, env, stdout=out, stderr=io.StringIO()) == 0
    assert f"  web config: {web} (no TLS, basic auth)" in out.getvalue().splitlines()


def test_bcrypt_runs_once_per_user_and_password_right_or_wrong(
    password_hash: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[bytes] = []
    real = bcrypt.checkpw

    def counting(password: bytes, hashed: bytes) -> bool:
        calls.append(password)
        return real(password, hashed)

    monkeypatch.setattr("exporter.http.auth.bcrypt.checkpw", counting)
    auth = BasicAuth({"prometheus": password_hash})

    def header(user: str, password: str) -> dict[str, str]:
        return {"authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}

    for _ in range(3):
        assert auth.authorize(header("prometheus", "guess")) is not None
        assert auth.authorize(header("prometheus", PASSWORD)) is None
        assert auth.authorize(header("nobody", PASSWORD)) is not None
    assert calls == [b"guess", PASSWORD.encode(), PASSWORD.encode()]
    assert auth.authorize({"authorization": "Bearer x"}) is not None
    assert auth.authorize({"authorization": "Basic !!!"}) is not None
