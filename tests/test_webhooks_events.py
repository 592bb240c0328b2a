"""Parsing Codat webhook bodies: the spec's examples, tolerance of the unknown, and clear errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.exposition.selfspecs import WEBHOOK_EVENT_TYPES
from exporter.webhooks.events import (
    CONNECTION_EVENT_TYPES,
    LABELLED_EVENT_TYPES,
    OTHER_EVENT_TYPE,
    CompanyEvent,
    ConnectionEvent,
    OtherEvent,
    PayloadError,
    RateLimitReached,
    RateLimitReset,
    ReadCompleted,
    event_type_label,
    parse_event,
    parse_lenient_datetime,
)

READ_COMPLETED_EXAMPLE: dict[str, Any] = {
    "id": "743ec94a-8aa4-44bb-8bd4-e1855ee0e74b",
    "eventType": "read.completed",
    "generatedDate": "2022-10-23T00:00:00.000Z",
    "payload": {
        "referenceCompany": {
            "id": "0498e921-9b53-4396-a412-4f2f5983b0a2",
            "name": "Toft stores",
            "links": {"portal": "https://app.codat.io/companies/0498e921/summary"},
        },
        "modifiedFromDate": "2022-10-23T00:00:00.000Z",
        "dataTypes": [
            {
                "connectionId": "2e9d2c44-f675-40ba-8049-353bfcb5e171",
                "dataType": "invoices",
                "recordsModified": False,
                "status": "Complete",
                "issues": [{"type": "warning.validation", "message": "Something doesn't look right"}],
            },
            {"dataType": "bills", "recordsModified": True, "status": "FetchError"},
        ],
    },
}


def encode(document: object) -> bytes:
    return json.dumps(document).encode()


def test_read_completed_example_from_the_spec_parses() -> None:
    event = parse_event(encode(READ_COMPLETED_EXAMPLE))
    assert isinstance(event, ReadCompleted)
    assert event.company_id == "0498e921-9b53-4396-a412-4f2f5983b0a2"
    assert event.company_name == "Toft stores"
    assert event.generated_date == datetime(2022, 10, 23, tzinfo=UTC)
    assert [(d.data_type, d.status, d.records_modified) for d in event.data_types] == [
        ("invoices", "Complete", False),
        ("bills", "FetchError", True),
    ]
    assert event.data_types[0].connection_id == "2e9d2c44-f675-40ba-8049-353bfcb5e171"


def test_initial_read_completed_parses_the_same_way() -> None:
    event = parse_event(encode({**READ_COMPLETED_EXAMPLE, "eventType": "read.completed.initial"}))
    assert isinstance(event, ReadCompleted)
    assert event.event_type == "read.completed.initial"


def test_every_data_type_entry_is_read_and_junk_entries_are_skipped() -> None:
    many = [{"dataType": f"type{i}", "status": "Complete"} for i in range(50)]
    payload = {**READ_COMPLETED_EXAMPLE["payload"], "dataTypes": [*many[:25], "junk", 7, None, *many[25:]]}
    event = parse_event(encode({**READ_COMPLETED_EXAMPLE, "payload": payload}))
    assert isinstance(event, ReadCompleted)
    assert [d.data_type for d in event.data_types] == [f"type{i}" for i in range(50)]


def test_unknown_fields_and_unknown_statuses_pass_through() -> None:
    payload = {
        "referenceCompany": {"id": "c1", "brandNewField": {"x": 1}},
        "dataTypes": [{"dataType": "invoices", "status": "SomethingNew", "recordsModified": "yes"}],
        "futureField": [1, 2, 3],
    }
    event = parse_event(encode({"eventType": "read.completed", "payload": payload}))
    assert isinstance(event, ReadCompleted)
    assert event.data_types[0].status == "SomethingNew"
    assert event.data_types[0].records_modified is None
    assert event.event_id is None


def test_unknown_event_type_parses_to_other_event() -> None:
    event = parse_event(encode({"eventType": "invoices.write.successful", "payload": "anything"}))
    assert event == OtherEvent("invoices.write.successful", None)
    assert event_type_label(event.event_type) == "other"


@pytest.mark.parametrize("event_type", LABELLED_EVENT_TYPES)
def test_codats_fixed_event_names_are_their_own_label(event_type: str) -> None:
    assert event_type_label(event_type) == event_type


def test_a_bounded_but_unused_event_type_is_counted_by_name() -> None:
    event = parse_event(encode({"eventType": "company.product.added", "payload": {}}))
    assert isinstance(event, OtherEvent)
    assert event_type_label(event.event_type) == "company.product.added"


def test_the_webhook_counter_is_created_for_every_labelled_event_type() -> None:
    assert set(WEBHOOK_EVENT_TYPES) == {*LABELLED_EVENT_TYPES, OTHER_EVENT_TYPE}


CONNECTION_EXAMPLE: dict[str, Any] = {
    "id": "ba29118f-5406-4e59-b05c-ba307ca38d01",
    "eventType": "connection.connected",
    "generatedDate": "2024-08-08T17:10:34.015Z",
    "payload": {
        "referenceCompany": {"id": "0498e921-9b53-4396-a412-4f2f5983b0a2", "name": "Bank of Dave"},
        "connection": {"id": "ee2eb431-c0fa-4dc9-93fa-d29781c12bcd", "status": "Linked"},
    },
}


@pytest.mark.parametrize("event_type", CONNECTION_EVENT_TYPES)
def test_connection_events_name_the_company_and_connection(event_type: str) -> None:
    event = parse_event(encode({**CONNECTION_EXAMPLE, "eventType": event_type}))
    assert event == ConnectionEvent(
        event_type,
        "ba29118f-5406-4e59-b05c-ba307ca38d01",
        datetime(2024, 8, 8, 17, 10, 34, 15000, tzinfo=UTC),
        "0498e921-9b53-4396-a412-4f2f5983b0a2",
        "ee2eb431-c0fa-4dc9-93fa-d29781c12bcd",
        "Linked",
    )


def test_connection_event_without_a_company_is_refused() -> None:
    with pytest.raises(PayloadError, match=r"referenceCompany\.id"):
        parse_event(encode({"eventType": "connection.failed", "payload": {"connection": {"id": "k"}}}))


@pytest.mark.parametrize("event_type", ["company.created", "company.deleted"])
def test_company_events_name_the_company(event_type: str) -> None:
    body = {"eventType": event_type, "payload": {"id": "c-1", "name": "Codat Ltd."}}
    event = parse_event(encode(body))
    assert event == CompanyEvent(event_type, None, None, "c-1", "Codat Ltd.")
    with pytest.raises(PayloadError, match=r"payload\.id"):
        parse_event(encode({"eventType": event_type, "payload": {"name": "x"}}))


def test_validation_issues_are_counted_per_data_type() -> None:
    document = json.loads(json.dumps(READ_COMPLETED_EXAMPLE))
    document["payload"]["dataTypes"].append(
        {
            "dataType": "invoices",
            "status": "Complete",
            "issues": [
                {"type": "warning.validation"},
                {"type": "warning.something-else"},
                "not an object",
                {"type": "warning.validation"},
            ],
        }
    )
    event = parse_event(encode(document))
    assert isinstance(event, ReadCompleted)
    assert event.validation_issues() == {"invoices": 3}
    assert event.data_type_names == ("invoices", "bills")


def test_rate_limit_reached_example_parses() -> None:
    body = {
        "id": "743ec94a",
        "eventType": "client.rateLimit.reached",
        "generatedDate": "2024-09-01T00:00:00Z",
        "payload": {"dailyQuota": 12000, "quotaRemaining": 0, "expiryDate": "2024-09-01T12:14:14Z"},
    }
    event = parse_event(encode(body))
    assert isinstance(event, RateLimitReached)
    assert event.expiry == datetime(2024, 9, 1, 12, 14, 14, tzinfo=UTC)
    assert (event.daily_quota, event.quota_remaining) == (12000, 0)


def test_rate_limit_reset_with_the_spec_invalid_expiry_still_parses() -> None:
    body = {
        "eventType": "client.rateLimit.reset",
        "payload": {"dailyQuota": 12000, "quotaRemaining": 11993, "expiryDate": "2024-09-01T23:59:99Z"},
    }
    event = parse_event(encode(body))
    assert isinstance(event, RateLimitReset)
    assert event.quota_remaining == 11993


def test_rate_limit_reached_with_out_of_range_seconds_rolls_over() -> None:
    body = {"eventType": "client.rateLimit.reached", "payload": {"expiryDate": "2024-09-01T23:59:99Z"}}
    event = parse_event(encode(body))
    assert isinstance(event, RateLimitReached)
    assert event.expiry == datetime(2024, 9, 2, 0, 0, 39, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2019-06-11T13:26:54.6884704Z", datetime(2019, 6, 11, 13, 26, 54, 688470, tzinfo=UTC)),
        ("2024-08-06T12:00:00.00Z", datetime(2024, 8, 6, 12, tzinfo=UTC)),
        ("2021-11-15T01:00:00", datetime(2021, 11, 15, 1, tzinfo=UTC)),
        ("2021-11-15T01:00:00-05:00", datetime(2021, 11, 15, 6, tzinfo=UTC)),
        ("2021-11-15T01:00:00+0530", datetime(2021, 11, 14, 19, 30, tzinfo=UTC)),
        ("2024-02-31T00:00:00Z", datetime(2024, 2, 29, tzinfo=UTC)),
        ("2024-12-31T24:00:00Z", datetime(2025, 1, 1, tzinfo=UTC)),
        ("2024-09-01", datetime(2024, 9, 1, tzinfo=UTC)),
    ],
)
def test_lenient_datetime_reads_codat_formats_and_rolls_over(text: str, expected: datetime) -> None:
    assert parse_lenient_datetime(text) == expected


@pytest.mark.parametrize("value", ["", "tomorrow", "2024-13-01T00:00:00Z", "0000-01-01", 1725148800, None])
def test_lenient_datetime_gives_none_for_non_dates(value: object) -> None:
    assert parse_lenient_datetime(value) is None


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b"{}", "eventType is missing"),
        (b'{"eventType": 5}', "eventType is missing"),
        (b'{"eventType": "read.completed"}', "payload is missing"),
        (b'{"eventType": "read.completed", "payload": {"dataTypes": []}}', "referenceCompany.id"),
        (
            b'{"eventType": "read.completed", "payload": {"referenceCompany": {"id": 7}}}',
            "referenceCompany.id",
        ),
        (b'{"eventType": "client.rateLimit.reached", "payload": {}}', "expiryDate"),
        (b'{"eventType": "client.rateLimit.reached", "payload": {"expiryDate": "soon"}}', "expiryDate"),
    ],
)
def test_unusable_bodies_raise_payload_error_naming_the_problem(body: bytes, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        parse_event(body)


def test_deeply_nested_json_is_a_payload_error_not_a_crash() -> None:
    with pytest.raises(PayloadError):
        parse_event(b"[" * 100_000 + b"]" * 100_000)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(
    event_type=st.sampled_from(
        [
            "read.completed",
            "read.completed.initial",
            "client.rateLimit.reached",
            "client.rateLimit.reset",
            "x",
        ]
    ),
    payload=json_values,
)
def test_any_json_payload_parses_or_raises_payload_error(event_type: str, payload: object) -> None:
    try:
        event = parse_event(encode({"eventType": event_type, "payload": payload}))
    except PayloadError:
        return
    assert event_type_label(event.event_type) in {event_type, "other"}
