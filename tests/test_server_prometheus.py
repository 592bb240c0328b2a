"""A real Prometheus scrapes the server: OpenMetrics negotiation, multi-member gzip, HTTPS with basic auth."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
import yaml
from prometheus_client import CollectorRegistry

from exporter.exposition import ExpositionCache
from exporter.exposition.selfmetrics import Telemetry
from exporter.http.exporter import ExporterServer
from exporter.http.landing import LandingData
from exporter.http.webconfig import load_web_config
from tests.support.prometheus import Sample, run_prometheus, scrape_config
from tests.support.snapshots import rich_snapshot
from tests.support.tls import make_pki
from tests.support.tools import require_tool


class RecordingCache(ExpositionCache):
    """The real cache, remembering which body variants were asked for."""

    def __init__(self) -> None:
        super().__init__("default")
        self.variants: set[tuple[bool, bool]] = set()
        self._lock = threading.Lock()

    def parts(
        self, openmetrics: bool, gzip: bool, now: float, registry: CollectorRegistry | None = None
    ) -> list[bytes]:
        with self._lock:
            self.variants.add((openmetrics, gzip))
        return super().parts(openmetrics, gzip, now, registry)


@pytest.fixture
def served() -> Iterator[tuple[ExporterServer, RecordingCache]]:
    cache = RecordingCache()
    cache.update(rich_snapshot())
    server = ExporterServer(
        "127.0.0.1:0", cache, Telemetry(), ready=lambda: True, landing=lambda: LandingData(rich_snapshot())
    )
    server.start()
    try:
        yield server, cache
    finally:
        server.stop()


def value(result: list[Sample]) -> float:
    assert len(result) == 1, result
    return float(result[0]["value"][1])


def test_prometheus_ingests_gzip_openmetrics_scrapes(
    served: tuple[ExporterServer, RecordingCache], tmp_path: Path
) -> None:
    require_tool("prometheus")
    server, cache = served
    with run_prometheus(tmp_path, [scrape_config([f"127.0.0.1:{server.port}"])]) as prom:
        assert value(prom.wait_for('up{job="codat-exporter"} == 1')) == 1
        status = prom.wait_for('codat_data_status{company_id="c-acme",data_type="bankAccounts"} == 1')
        assert [s["metric"]["status"] for s in status] == ["Other"]
        assert prom.query("sum by (company_id, data_type) (codat_data_status) != 1") == []
        counter = prom.query('codat_pull_operations_total{company_id="c-acme",data_type="invoices"}')
        assert value(counter) == 12
        ages = prom.query('codat_data_seconds_since_last_successful_sync{company_id="c-beta"}')
        assert len(ages) == 2
        info = prom.query('codat_company_info{company_id="c-acme"}')
        assert info[0]["metric"]["company_name"] == 'Acme "Widgets" \\ Ltd\nUK & <Co> 100%'
        assert value(prom.query("codat_exporter_build_info")) == 1
        assert value(prom.query('scrape_samples_scraped{job="codat-exporter"}')) > 100
    assert (True, True) in cache.variants, cache.variants


def test_prometheus_scrapes_over_https_with_basic_auth(tmp_path: Path) -> None:
    require_tool("prometheus")
    pki = make_pki(tmp_path / "pki")
    hashed = bcrypt.hashpw(b"scrape-secret", bcrypt.gensalt(rounds=4)).decode()
    web_file = pki.path("web.yml")
    web_file.write_text(
        yaml.safe_dump(
            {
                "tls_server_config": {"cert_file": "server.crt", "key_file": "server.key"},
                "basic_auth_users": {"prometheus": hashed},
            }
        )
    )
    cache = RecordingCache()
    cache.update(rich_snapshot())
    server = ExporterServer(
        "127.0.0.1:0",
        cache,
        Telemetry(),
        ready=lambda: True,
        landing=lambda: LandingData(rich_snapshot()),
        web=load_web_config(web_file),
    )
    secure = {
        **scrape_config([f"127.0.0.1:{server.port}"]),
        "scheme": "https",
        "tls_config": {"ca_file": str(pki.path("ca.crt"))},
        "basic_auth": {"username": "prometheus", "password": "scrape-secret"},
    }
    wrong = {
        **scrape_config([f"127.0.0.1:{server.port}"], job="wrong-password"),
        "scheme": "https",
        "tls_config": {"ca_file": str(pki.path("ca.crt"))},
        "basic_auth": {"username": "prometheus", "password": "guess"},
    }
    with server, run_prometheus(tmp_path / "prom", [secure, wrong]) as prom:
        assert value(prom.wait_for('up{job="codat-exporter"} == 1')) == 1
        counter = prom.query('codat_pull_operations_total{company_id="c-acme",data_type="invoices"}')
        assert value(counter) == 12
        assert value(prom.wait_for('up{job="wrong-password"} == 0')) == 0
    assert (True, True) in cache.variants, cache.variants
