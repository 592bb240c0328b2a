"""The TLS option of the Kubernetes manifests renders, validates, and wires the web config Secret in."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped, unused-ignore]
import kubernetes_validate
import pytest
import yaml

from exporter.cli import build_parser
from exporter.http.webconfig import load_web_config
from tests.support.tls import make_pki
from tests.support.tools import REPO_ROOT
from tests.test_kubernetes_manifests import (
    KUBERNETES_DIR,
    KUBERNETES_VERSIONS,
    OPERATOR_SCHEMAS,
    exporter_container,
    one,
    render,
    workload,
)

WEB_FILE = "/etc/codat-exporter/web/web.yml"


@pytest.fixture(scope="module")
def resources() -> list[dict[str, Any]]:
    return render("tls")


def test_the_tls_overlay_validates_strictly(resources: list[dict[str, Any]]) -> None:
    for resource in resources:
        if resource["kind"] not in OPERATOR_SCHEMAS:
            kubernetes_validate.validate(resource, KUBERNETES_VERSIONS[-1], strict=True)


def test_the_web_config_secret_is_mounted_where_the_flag_points(resources: list[dict[str, Any]]) -> None:
    container = exporter_container(resources)
    args = container["args"]
    assert args[args.index("--web.config.file") + 1] == WEB_FILE
    parsed = build_parser().parse_args(args)
    assert parsed.web_config_file == WEB_FILE
    mount = next(m for m in container["volumeMounts"] if m["name"] == "web")
    assert WEB_FILE.startswith(mount["mountPath"] + "/")
    volumes = workload(resources)["spec"]["template"]["spec"]["volumes"]
    assert next(v for v in volumes if v["name"] == "web")["secret"]["secretName"] == "codat-exporter-web"
    assert container["livenessProbe"]["httpGet"]["scheme"] == "HTTPS"
    assert container["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"


def test_prometheus_scrapes_the_overlay_over_https(resources: list[dict[str, Any]]) -> None:
    monitor = one(resources, "ServiceMonitor")
    endpoint = monitor["spec"]["endpoints"][0]
    assert endpoint["scheme"] == "https"
    assert endpoint["tlsConfig"]["ca"]["secret"] == {"name": "codat-exporter-web", "key": "ca.crt"}
    schema = OPERATOR_SCHEMAS["ServiceMonitor"]
    properties = schema["properties"]["spec"]["properties"]["endpoints"]["items"]["properties"]
    extended = {**properties, "scheme": {"enum": ["http", "https"]}, "tlsConfig": {"type": "object"}}
    with_tls = yaml.safe_load(yaml.safe_dump(schema))
    with_tls["properties"]["spec"]["properties"]["endpoints"]["items"]["properties"] = extended
    jsonschema.validate(monitor, with_tls)


def test_the_example_secret_holds_a_web_config_the_exporter_accepts(tmp_path: Path) -> None:
    secret = yaml.safe_load((KUBERNETES_DIR / "tls" / "web-secret.example.yaml").read_text(encoding="utf-8"))
    kubernetes_validate.validate(secret, KUBERNETES_VERSIONS[-1], strict=True)
    pki = make_pki(tmp_path / "pki")
    shutil.copy(pki.path("server.crt"), tmp_path / "tls.crt")
    shutil.copy(pki.path("server.key"), tmp_path / "tls.key")
    (tmp_path / "web.yml").write_text(secret["stringData"]["web.yml"])
    assert load_web_config(tmp_path / "web.yml").tls is not None


def test_the_shipped_example_web_config_is_valid(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    shutil.copy(REPO_ROOT / "web-config.example.yml", tmp_path / "web.yml")
    shutil.copy(pki.path("server.crt"), tmp_path / "tls.crt")
    shutil.copy(pki.path("server.key"), tmp_path / "tls.key")
    web = load_web_config(tmp_path / "web.yml")
    assert web.tls is not None
    assert web.headers["X-Frame-Options"] == "deny"
