"""The simulator's webhook sender: read.completed events, Standard Webhooks signatures, Codat's retries."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from exporter.simulator import FakeClock, Scenario, Simulator
from exporter.simulator.scenario import CompanySpec, Profile, StageSpec, SyncSettings
from exporter.simulator.webhooks import RETRY_SCHEDULE
from tests.support.waiting import wait_until
from tests.support.webhook_capture import Receiver, webhook_receiver

SECRET = "whsec_" + base64.b64encode(b"simulator-test-secret-0123456789").decode()
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as state:
        yield state


def scenario() -> Scenario:
    return Scenario(
        name="hooks",
        data_types=("invoices",),
        sync=SyncSettings(stages=(StageSpec(status="Queued", seconds=5),), jitter=0),
        profiles={"p": Profile(sync_schedule_hours=None, history=1, records_modified_probability=1.0)},
        companies=(CompanySpec(name="Hooked Ltd", profile="p", tags={"team": "a"}),),
    )


@pytest.fixture
def hooked(receiver: Receiver) -> Iterator[tuple[Simulator, FakeClock, Receiver]]:
    clock = FakeClock(START)
    sim = Simulator(scenario(), clock=clock, webhook_url=receiver.url, webhook_secret=SECRET)
    yield sim, clock, receiver
    sim.close()


def test_completed_sync_sends_a_signed_read_completed_event(
    hooked: tuple[Simulator, FakeClock, Receiver],
) -> None:
    sim, clock, receiver = hooked
    company = sim.company_ids[0]
    op_id = sim.queue_sync(company, "invoices")
    clock.advance(5)
    headers, body = receiver.wait_for(1)[0]
    event = Webhook(SECRET).verify(body, headers)
    assert event["eventType"] == "read.completed"
    assert event["generatedDate"] == "2026-01-05T09:00:05.0000000Z"
    payload = event["payload"]
    assert payload["referenceCompany"]["id"] == company
    assert payload["referenceCompany"]["name"] == "Hooked Ltd"
    assert payload["referenceCompany"]["tags"] == {"team": "a"}
    assert payload["referenceCompany"]["links"]["portal"].endswith(f"/companies/{company}/summary")
    assert payload["modifiedFromDate"] == "2026-01-05T09:00:05.0000000Z"
    [entry] = payload["dataTypes"]
    assert entry == {
        "connectionId": sim.company(company)["dataConnections"][0]["id"],
        "dataType": "invoices",
        "recordsModified": True,
        "status": "Complete",
    }
    assert headers["webhook-id"].startswith("msg_")
    assert op_id not in body.decode()  # Codat's payload carries no dataset id


def test_signature_does_not_verify_with_another_secret(hooked: tuple[Simulator, FakeClock, Receiver]) -> None:
    sim, clock, receiver = hooked
    sim.queue_sync(sim.company_ids[0], "invoices", outcome="FetchError")
    clock.advance(5)
    headers, body = receiver.wait_for(1)[0]
    other = "whsec_" + base64.b64encode(b"another-secret-entirely-00000000").decode()
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(body, headers)
    assert Webhook(SECRET).verify(body, headers)["payload"]["dataTypes"][0]["status"] == "FetchError"


def test_failed_delivery_is_retried_on_codats_schedule_with_the_same_id(
    hooked: tuple[Simulator, FakeClock, Receiver],
) -> None:
    sim, clock, receiver = hooked
    receiver.codes = [500, 503, 500]
    sim.queue_sync(sim.company_ids[0], "invoices")
    clock.advance(5)
    receiver.wait_for(1)
    wait_until(lambda: sim.webhooks.next_attempt_due() is not None)
    first_failure = START + timedelta(seconds=5)
    assert sim.webhooks.next_attempt_due() == first_failure + timedelta(seconds=RETRY_SCHEDULE[1])
    clock.advance(4)
    assert sim.webhooks.wait_until_idle()
    assert len(receiver.received) == 1
    clock.advance(1)
    receiver.wait_for(2)
    wait_until(lambda: sim.webhooks.next_attempt_due() is not None)
    assert sim.webhooks.next_attempt_due() == first_failure + timedelta(seconds=5 + 300)
    clock.advance(300)
    receiver.wait_for(3)
    wait_until(lambda: sim.webhooks.next_attempt_due() is not None)
    assert sim.webhooks.next_attempt_due() == first_failure + timedelta(seconds=5 + 300 + 1800)
    clock.advance(1800)
    deliveries = receiver.wait_for(4)
    wait_until(lambda: sim.webhooks.pending() == 0)
    assert len({headers["webhook-id"] for headers, _ in deliveries}) == 1
    assert len({body for _, body in deliveries}) == 1
    assert [a.status for a in sim.webhooks.attempts] == [500, 503, 500, 200]
    assert [a.attempt for a in sim.webhooks.attempts] == [1, 2, 3, 4]


def test_retry_schedule_is_codats() -> None:
    assert RETRY_SCHEDULE == (0, 5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600)


def test_delivery_gives_up_after_eight_attempts(receiver: Receiver) -> None:
    receiver.codes = [500] * 20
    clock = FakeClock(START)
    sim = Simulator(scenario(), clock=clock, webhook_url=receiver.url, webhook_secret=SECRET)
    try:
        sim.queue_sync(sim.company_ids[0], "invoices")
        clock.advance(5)
        for _ in range(10):
            assert sim.webhooks.wait_until_idle()
            clock.advance(10 * 3600)
        assert sim.webhooks.wait_until_idle()
        assert sim.webhooks.pending() == 0
        assert len(receiver.received) == 8
        assert [a.attempt for a in sim.webhooks.attempts] == list(range(1, 9))
    finally:
        sim.close()


def test_quota_exhaustion_sends_rate_limit_reached_then_reset(
    hooked: tuple[Simulator, FakeClock, Receiver],
) -> None:
    import requests

    sim, clock, receiver = hooked
    sim.set_rate_limit(daily_quota=2)
    server = sim.serve()
    try:
        auth = {"Authorization": "Basic " + base64.b64encode(b"demo").decode()}
        for _ in range(3):
            requests.get(server.url + "/companies", headers=auth, timeout=10)
        headers, body = receiver.wait_for(1)[0]
        reached = Webhook(SECRET).verify(body, headers)
        assert reached["eventType"] == "client.rateLimit.reached"
        assert reached["payload"] == {
            "dailyQuota": 2,
            "quotaRemaining": 0,
            "expiryDate": "2026-01-06T00:00:00.0000000Z",
        }
        clock.set(datetime(2026, 1, 6, tzinfo=UTC))
        headers, body = receiver.wait_for(2)[1]
        reset = Webhook(SECRET).verify(body, headers)
        assert reset["eventType"] == "client.rateLimit.reset"
        assert reset["payload"]["quotaRemaining"] == 2
        assert reset["payload"]["expiryDate"] == "2026-01-07T00:00:00.0000000Z"
    finally:
        server.close()


def test_no_url_means_no_events(receiver: Receiver) -> None:
    clock = FakeClock(START)
    sim = Simulator(scenario(), clock=clock)
    sim.queue_sync(sim.company_ids[0], "invoices")
    clock.advance(5)
    assert sim.webhooks.pending() == 0
    sim.configure_webhooks(receiver.url, SECRET)
    sim.queue_sync(sim.company_ids[0], "invoices")
    clock.advance(5)
    assert len(receiver.wait_for(1)) == 1
    assert "simulator-test-secret" not in repr(sim.webhooks) + repr(sim)
    sim.close()
