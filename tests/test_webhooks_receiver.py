"""The webhook receiver over real HTTP: answers, state changes (or none), self-metrics, and its own port."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from exporter.collector.companies import RELIST_REASON
from exporter.collector.snapshot import Snapshot
from exporter.config.schema import WebhookSettings
from exporter.exposition import ExpositionCache
from exporter.exposition.selfmetrics import Telemetry
from exporter.exposition.selfspecs import WEBHOOK_LATENCY, WEBHOOKS_RECEIVED
from exporter.http.exporter import ExporterServer
from exporter.http.landing import LandingData
from exporter.http.messages import Request, Response
from exporter.webhooks import build_webhook_receiver, webhooks_enabled
from exporter.webhooks.receiver import WebhookReceiver
from exporter.webhooks.verify import SecretError, SigningSecret
from tests.support.snapshots import company
from tests.support.tools import free_port
from tests.support.webhooks import (
    SECRET,
    SECRET_TEXT,
    RecordingScheduler,
    forged,
    post,
    rate_limit,
    read_completed,
    signed,
)

MAX_BODY = 4096
SERVER_MAX_BODY = 8192
OTHER_SHARD = "company-of-another-shard"


@dataclass
class Harness:
    receiver: WebhookReceiver
    scheduler: RecordingScheduler
    telemetry: Telemetry
    url: str

    def count(self, event_type: str, result: str) -> float:
        value = self.telemetry.registry.get_sample_value(
            WEBHOOKS_RECEIVED.name, {"event_type": event_type, "result": result}
        )
        return value or 0.0

    def settle(self) -> None:
        assert self.receiver.wait_idle(timeout=10), "the dispatch worker did not drain its queue"


def make_receiver(scheduler: RecordingScheduler, telemetry: Telemetry, **kwargs: object) -> WebhookReceiver:
    return WebhookReceiver(
        SECRET,
        scheduler,
        telemetry,
        owns=lambda company_id: company_id != OTHER_SHARD,
        max_body_bytes=MAX_BODY,
        **kwargs,  # type: ignore[arg-type]
    )


@dataclass
class _Mount:
    """Lets one server (module-scoped: stopping one costs half a second) carry each test's receiver."""

    receiver: WebhookReceiver | None = None

    def handle(self, request: Request) -> Response:
        assert self.receiver is not None
        return self.receiver.handle(request)

    def count_too_large(self, path: str) -> None:
        assert self.receiver is not None
        self.receiver.count_too_large(path)


@pytest.fixture(scope="module")
def mounted_server() -> Iterator[tuple[ExporterServer, _Mount]]:
    mount = _Mount()
    server = ExporterServer(
        "127.0.0.1:0",
        ExpositionCache(),
        None,
        ready=lambda: True,
        landing=lambda: LandingData(Snapshot()),
        routes={("POST", "/webhooks/codat"): mount.handle},
        max_body_bytes=SERVER_MAX_BODY,
        on_body_too_large=mount.count_too_large,
    )
    server.start()
    try:
        yield server, mount
    finally:
        server.stop()


@pytest.fixture
def harness(mounted_server: tuple[ExporterServer, _Mount]) -> Iterator[Harness]:
    server, mount = mounted_server
    scheduler = RecordingScheduler()
    telemetry = Telemetry()
    receiver = make_receiver(scheduler, telemetry)
    assert list(receiver.route) == [("POST", "/webhooks/codat")]
    mount.receiver = receiver
    receiver.start()
    try:
        yield Harness(receiver, scheduler, telemetry, server.url + "/webhooks/codat")
    finally:
        receiver.stop()
        mount.receiver = None


@pytest.mark.parametrize("event_type", ["read.completed", "read.completed.initial"])
def test_read_completed_polls_the_company_now(harness: Harness, event_type: str) -> None:
    body = read_completed("c1", event_type=event_type)
    response = post(harness.url, body, signed(body, "msg_1"))
    assert response.status_code == 200
    harness.settle()
    assert harness.scheduler.polls == [("c1", "webhook")]
    assert harness.count(event_type, "processed") == 1


def test_svix_header_names_are_accepted_over_http(harness: Harness) -> None:
    body = read_completed("c1")
    assert post(harness.url, body, signed(body, "msg_1", prefix="svix")).status_code == 200
    harness.settle()
    assert harness.scheduler.polls == [("c1", "webhook")]


def test_duplicate_delivery_is_acknowledged_but_processed_once(harness: Harness) -> None:
    body = read_completed("c1")
    headers = signed(body, "msg_same")
    first = post(harness.url, body, headers)
    second = post(harness.url, body, signed(body, "msg_same"))  # a retry: same id, new timestamp
    assert (first.status_code, second.status_code) == (200, 200)
    harness.settle()
    assert harness.scheduler.polls == [("c1", "webhook")]
    assert harness.count("read.completed", "processed") == 1
    assert harness.count("read.completed", "duplicate") == 1


def test_unsigned_request_gets_401_and_changes_nothing(harness: Harness) -> None:
    response = post(harness.url, read_completed("c1"), {"Content-Type": "application/json"})
    assert response.status_code == 401
    harness.settle()
    assert not harness.scheduler.touched
    assert harness.count("other", "invalid_signature") == 1


def test_wrong_secret_gets_401_and_changes_nothing(harness: Harness) -> None:
    body = read_completed("c1")
    other = SigningSecret.parse("whsec_" + "QW5vdGhlciBrZXkgZm9yIGFub3RoZXIgZW5kcG9pbnQ=")
    assert post(harness.url, body, signed(body, "msg_1", secret=other)).status_code == 401
    harness.settle()
    assert not harness.scheduler.touched


def test_stale_and_future_timestamps_get_the_same_generic_401(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    body = read_completed("c1")
    now = int(time.time())
    caplog.set_level(logging.INFO, logger="exporter.webhooks")
    old = post(harness.url, body, signed(body, "msg_old", timestamp=now - 3600))
    new = post(harness.url, body, signed(body, "msg_new", timestamp=now + 3600))
    tampered = post(harness.url, body + b" ", signed(body, "msg_tampered"))
    assert old.status_code == new.status_code == tampered.status_code == 401
    # The caller learns nothing about why; the operator's log does.
    assert old.content == new.content == tampered.content
    assert "timestamp_too_old" in caplog.text
    assert "timestamp_too_new" in caplog.text
    assert "no_matching_signature" in caplog.text
    harness.settle()
    assert not harness.scheduler.touched
    assert harness.count("other", "invalid_signature") == 3


def test_rejected_delivery_does_not_use_up_its_id(harness: Harness) -> None:
    body = read_completed("c1")
    assert post(harness.url, body + b"tampered", signed(body, "msg_1")).status_code == 401
    assert post(harness.url, body, signed(body, "msg_1")).status_code == 200
    harness.settle()
    assert harness.scheduler.polls == [("c1", "webhook")]


@pytest.mark.parametrize(
    ("body", "status", "result"),
    [
        pytest.param(b"{not json", 400, "bad_request", id="not-json"),
        pytest.param(b"[]", 400, "bad_request", id="not-an-object"),
        pytest.param(
            b'{"eventType": "read.completed", "payload": {"dataTypes": []}}',
            400,
            "bad_request",
            id="no-company",
        ),
        # Over the receiver's limit: refused before the signature is verified.
        pytest.param(read_completed("c1") + b" " * MAX_BODY, 413, "too_large", id="over-receiver-limit"),
        # Over the server's limit: refused unread.
        pytest.param(b" " * (SERVER_MAX_BODY + 1), 413, "too_large", id="over-server-limit"),
    ],
)
def test_refused_signed_body_gets_an_error_changes_nothing_and_is_counted(
    harness: Harness, body: bytes, status: int, result: str
) -> None:
    response = post(harness.url, body, signed(body, "msg_refused"))
    assert response.status_code == status
    harness.settle()
    assert not harness.scheduler.touched
    assert harness.count("other", result) == 1


def test_company_of_another_shard_is_ignored(harness: Harness) -> None:
    body = read_completed(OTHER_SHARD)
    assert post(harness.url, body, signed(body, "msg_1")).status_code == 200
    harness.settle()
    assert harness.scheduler.polls == []
    assert harness.count("read.completed", "ignored") == 1


def test_rate_limit_reached_pauses_until_expiry_even_with_invalid_seconds(harness: Harness) -> None:
    body = rate_limit("client.rateLimit.reached", expiry="2026-01-05T23:59:99Z")
    assert post(harness.url, body, signed(body, "msg_rl")).status_code == 200
    harness.settle()
    assert harness.scheduler.pauses == [datetime(2026, 1, 6, 0, 0, 39, tzinfo=UTC)]
    assert harness.count("client.rateLimit.reached", "processed") == 1


def test_rate_limit_reset_resumes_polling(harness: Harness) -> None:
    body = rate_limit("client.rateLimit.reset")
    assert post(harness.url, body, signed(body, "msg_reset")).status_code == 200
    harness.settle()
    assert harness.scheduler.resumes == 1
    assert harness.count("client.rateLimit.reset", "processed") == 1


def test_unknown_event_type_is_acknowledged_and_counted_as_other(harness: Harness) -> None:
    body = b'{"id": "x", "eventType": "invoices.write.successful", "payload": {"connectionId": "k"}}'
    assert post(harness.url, body, signed(body, "msg_other")).status_code == 200
    harness.settle()
    assert not harness.scheduler.touched
    assert harness.count("other", "ignored") == 1


def test_connection_event_relists_that_company(harness: Harness) -> None:
    body = (
        b'{"id": "x", "eventType": "connection.disconnected", "payload": {"referenceCompany": '
        b'{"id": "c-9"}, "connection": {"id": "k", "status": "Deauthorized"}}}'
    )
    assert post(harness.url, body, signed(body, "msg_conn")).status_code == 200
    harness.settle()
    assert harness.scheduler.polls == [("c-9", RELIST_REASON)]
    assert harness.count("connection.disconnected", "processed") == 1


def test_company_deleted_relists_that_company(harness: Harness) -> None:
    body = b'{"id": "x", "eventType": "company.deleted", "payload": {"id": "c-7", "name": "Gone"}}'
    assert post(harness.url, body, signed(body, "msg_company")).status_code == 200
    harness.settle()
    assert harness.scheduler.polls == [("c-7", RELIST_REASON)]
    assert harness.count("company.deleted", "processed") == 1


def test_validation_issues_of_a_read_are_counted_per_pair(harness: Harness) -> None:
    document = {
        "id": "x",
        "eventType": "read.completed",
        "payload": {
            "referenceCompany": {"id": "c-5"},
            "dataTypes": [
                {
                    "dataType": "invoices",
                    "status": "Complete",
                    "issues": [{"type": "warning.validation"}] * 2,
                },
                {"dataType": "bills", "status": "Complete", "recordsModified": False},
            ],
        },
    }
    body = json.dumps(document).encode()
    assert post(harness.url, body, signed(body, "msg_issues")).status_code == 200
    harness.settle()
    registry = harness.telemetry.registry
    issues = "codat_read_validation_issues_total"
    assert registry.get_sample_value(issues, {"company_id": "c-5", "data_type": "invoices"}) == 2
    assert registry.get_sample_value(issues, {"company_id": "c-5", "data_type": "bills"}) is None
    # One poll, its history read narrowed to the two types the batch names.
    assert harness.scheduler.polls == [("c-5", "webhook")]
    assert harness.scheduler.named == [("invoices", "bills")]


def test_a_read_naming_no_data_type_polls_the_whole_company(harness: Harness) -> None:
    document = {"id": "y", "eventType": "read.completed", "payload": {"referenceCompany": {"id": "c-6"}}}
    body = json.dumps(document).encode()
    assert post(harness.url, body, signed(body, "msg_no_types")).status_code == 200
    harness.settle()
    assert harness.scheduler.polls == [("c-6", "webhook")]
    assert harness.scheduler.named == [None]


def test_get_on_the_webhook_path_is_not_allowed(harness: Harness) -> None:
    response = requests.get(harness.url, timeout=10)
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"


def test_a_failing_dispatch_does_not_stop_the_worker(harness: Harness) -> None:
    harness.scheduler.fail_on = "c-bad"
    bad, good = read_completed("c-bad"), read_completed("c-good")
    assert post(harness.url, bad, signed(bad, "msg_bad")).status_code == 200
    assert post(harness.url, good, signed(good, "msg_good")).status_code == 200
    harness.settle()
    assert harness.scheduler.polls == [("c-good", "webhook")]


def test_secret_never_appears_in_logs_or_repr(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    body = read_completed("c1")
    post(harness.url, body, signed(body, "msg_1"))
    post(harness.url, body, forged("x", timestamp=1))
    harness.settle()
    secret_body = SECRET_TEXT.removeprefix("whsec_")
    assert secret_body not in caplog.text
    assert secret_body not in repr(harness.receiver)


def test_full_queue_answers_503_and_the_retry_is_accepted_later() -> None:
    scheduler = RecordingScheduler()
    receiver = make_receiver(scheduler, Telemetry(), queue_size=1)  # worker not started yet
    first, second = read_completed("c1"), read_completed("c2")
    assert receiver.receive(signed(first, "msg_1"), first).status == 200
    busy = receiver.receive(signed(second, "msg_2"), second)
    assert busy.status == 503
    assert busy.headers["Retry-After"] == "5"
    receiver.start()
    try:
        assert receiver.wait_idle(timeout=10)
        assert receiver.receive(signed(second, "msg_2"), second).status == 200  # not marked seen
        assert receiver.wait_idle(timeout=10)
    finally:
        receiver.stop()
    assert scheduler.polls == [("c1", "webhook"), ("c2", "webhook")]


def test_latency_is_observed_when_a_snapshot_shows_the_company_polled_again() -> None:
    t0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    scheduler = RecordingScheduler(snapshot=Snapshot({"c1": company("c1", {}, last_poll_success=t0)}))
    telemetry = Telemetry()
    clock = [100.0]
    receiver = make_receiver(scheduler, telemetry, monotonic=lambda: clock[0])
    body = read_completed("c1")
    receiver.start()
    try:
        assert receiver.receive(signed(body, "msg_1"), body).status == 200
        assert receiver.wait_idle(timeout=10)
    finally:
        receiver.stop()
    count = WEBHOOK_LATENCY.name + "_count"
    clock[0] = 101.5
    receiver.on_snapshot(scheduler.snapshot)  # same poll as before: not yet reflected
    assert telemetry.registry.get_sample_value(count) == 0
    later = t0 + timedelta(minutes=1)
    receiver.on_snapshot(Snapshot({"c1": company("c1", {}, last_poll_success=later)}))
    assert telemetry.registry.get_sample_value(count) == 1
    assert telemetry.registry.get_sample_value(WEBHOOK_LATENCY.name + "_sum") == pytest.approx(1.5)
    receiver.on_snapshot(Snapshot({"c1": company("c1", {}, last_poll_success=later)}))
    assert telemetry.registry.get_sample_value(count) == 1  # observed once per delivery


def test_own_listen_address_serves_only_the_webhook() -> None:
    scheduler = RecordingScheduler()
    settings = WebhookSettings(
        enabled=True,
        secret=SecretStr(SECRET_TEXT),
        listen_address=f"127.0.0.1:{free_port()}",
        max_body_bytes=2048,
    )
    telemetry = Telemetry()
    receiver = build_webhook_receiver(settings, scheduler, telemetry, owns=lambda _: True)
    assert receiver.route == {}
    receiver.start()
    try:
        assert receiver.url is not None
        body = read_completed("c1")
        assert post(receiver.url + "/webhooks/codat", body, signed(body, "msg_1")).status_code == 200
        assert requests.get(receiver.url + "/metrics", timeout=10).status_code == 404
        assert requests.get(receiver.url + "/", timeout=10).status_code == 404
        assert requests.get(receiver.url + "/healthz", timeout=10).status_code == 200
        big = b" " * 4096
        assert post(receiver.url + "/webhooks/codat", big, signed(big, "msg_big")).status_code == 413
        assert receiver.wait_idle(timeout=10)
    finally:
        receiver.stop()
    assert scheduler.polls == [("c1", "webhook")]
    too_large = {"event_type": "other", "result": "too_large"}
    assert telemetry.registry.get_sample_value(WEBHOOKS_RECEIVED.name, too_large) == 1


def test_taken_listen_address_fails_when_the_receiver_is_built() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        settings = WebhookSettings(enabled=True, secret=SecretStr(SECRET_TEXT), listen_address=address)
        with pytest.raises(OSError, match="in use"):
            build_webhook_receiver(settings, RecordingScheduler(), Telemetry(), owns=lambda _: True)


def test_builder_uses_the_configured_path_and_tolerance() -> None:
    settings = WebhookSettings(enabled=True, secret=SecretStr(SECRET_TEXT), path="/hooks/codat", tolerance=30)
    scheduler = RecordingScheduler()
    receiver = build_webhook_receiver(settings, scheduler, Telemetry(), owns=lambda _: True)
    assert list(receiver.route) == [("POST", "/hooks/codat")]
    body = read_completed("c1")
    assert receiver.receive(signed(body, "m1", timestamp=int(time.time()) - 60), body).status == 401
    assert receiver.receive(signed(body, "m2"), body).status == 200


def test_webhooks_are_off_by_default_and_need_a_secret() -> None:
    assert not webhooks_enabled(WebhookSettings())
    assert webhooks_enabled(WebhookSettings(enabled=True, secret=SecretStr(SECRET_TEXT)))
    with pytest.raises(SecretError):
        build_webhook_receiver(WebhookSettings(), RecordingScheduler(), Telemetry(), owns=lambda _: True)


header_names = st.sampled_from(
    ["webhook-id", "webhook-timestamp", "webhook-signature", "svix-id", "svix-signature", "content-length"]
)


@settings(max_examples=200, deadline=None)
@given(
    headers=st.dictionaries(header_names, st.text(alphabet=st.characters(codec="latin-1"), max_size=60)),
    body=st.binary(max_size=300),
    signed_for_real=st.booleans(),
)
def test_any_request_gets_a_4xx_or_2xx_answer_never_an_exception(
    headers: dict[str, str], body: bytes, signed_for_real: bool
) -> None:
    scheduler = RecordingScheduler()
    receiver = make_receiver(scheduler, Telemetry())
    if signed_for_real:  # a genuine signature over an arbitrary body: exercises the JSON side
        headers = {**headers, **signed(body, "msg_prop")}
        headers.pop("content-length", None)
    response = receiver.receive(headers, body)
    assert response.status in {200, 400, 401, 413}
    assert not scheduler.touched  # the worker is not running: nothing is acted on inline


http_header_values = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=60)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    headers=st.dictionaries(
        st.sampled_from(
            ["webhook-id", "webhook-timestamp", "webhook-signature", "svix-id", "svix-timestamp"]
        ),
        http_header_values,
    ),
    body=st.binary(max_size=200),
)
def test_malformed_headers_over_http_never_get_a_server_error(
    harness: Harness, headers: dict[str, str], body: bytes
) -> None:
    response = post(harness.url, body, headers)
    assert response.status_code == 401
    assert not harness.scheduler.touched
