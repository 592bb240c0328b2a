"""Parsing of Codat bodies and headers: tolerant where Codat is loose, strict where a value would lie."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.codat.headers import parse_rate_limit, parse_rate_limit_reset, parse_retry_after
from exporter.codat.parsing import (
    ShapeError,
    parse_company,
    parse_data_statuses,
    parse_page,
    parse_pull_operation,
)
from exporter.codat.timestamps import format_timestamp, parse_timestamp

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
UUID = "31632c48-23dc-4cb1-b3ff-0829343c8e85"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2019-06-11T13:26:54.6884704Z", datetime(2019, 6, 11, 13, 26, 54, 688470, tzinfo=UTC)),
        ("2019-10-10T00:31:04.497225Z", datetime(2019, 10, 10, 0, 31, 4, 497225, tzinfo=UTC)),
        ("2024-08-07T12:02:32.15033Z", datetime(2024, 8, 7, 12, 2, 32, 150330, tzinfo=UTC)),
        ("2024-08-06T12:00:00.00Z", datetime(2024, 8, 6, 12, 0, tzinfo=UTC)),
        ("2022-01-01T00:00:00.000Z", datetime(2022, 1, 1, tzinfo=UTC)),
        ("2022-01-01T00:00:00Z", datetime(2022, 1, 1, tzinfo=UTC)),
        ("2021-11-15T01:00:00", datetime(2021, 11, 15, 1, 0, tzinfo=UTC)),
        ("2021-11-15T01:00:00-05:00", datetime(2021, 11, 15, 6, 0, tzinfo=UTC)),
        ("2021-11-15T01:00:00+0130", datetime(2021, 11, 14, 23, 30, tzinfo=UTC)),
    ],
)
def test_timestamps_in_every_documented_form_parse_to_utc(text: str, expected: datetime) -> None:
    parsed = parse_timestamp(text)
    assert parsed == expected
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "text", ["2024-09-01T23:59:99Z", "2024-02-30T00:00:00Z", "yesterday", "", "2024-01-01T00:00:00.12345678Z"]
)
def test_invalid_timestamps_raise_a_value_error_quoting_the_value(text: str) -> None:
    with pytest.raises(ValueError, match="timestamp"):
        parse_timestamp(text)


@settings(deadline=None)  # a loaded CI machine must not turn slowness into failures
@given(
    moment=st.datetimes(
        min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    ),
    digits=st.integers(min_value=0, max_value=7),
    offset_minutes=st.one_of(st.none(), st.integers(min_value=-14 * 60, max_value=14 * 60)),
)
def test_any_timestamp_with_0_to_7_fraction_digits_round_trips_to_the_same_instant(
    moment: datetime, digits: int, offset_minutes: int | None
) -> None:
    # What survives formatting with `digits` fraction digits is the instant truncated to that precision.
    kept_micros = moment.microsecond - moment.microsecond % (10 ** (6 - min(digits, 6)))
    expected = moment.replace(microsecond=kept_micros)
    zone = UTC if offset_minutes is None else timezone(timedelta(minutes=offset_minutes))
    local = expected.astimezone(zone)
    fraction = f"{local.microsecond:06d}0"[:digits]
    text = local.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if digits else "")
    if offset_minutes is None:
        text += "Z"
    else:
        sign = "-" if offset_minutes < 0 else "+"
        text += f"{sign}{abs(offset_minutes) // 60:02d}:{abs(offset_minutes) % 60:02d}"
    assert parse_timestamp(text) == expected


def test_format_timestamp_writes_utc_with_z() -> None:
    assert format_timestamp(datetime(2026, 1, 5, 10, 0, tzinfo=timezone(timedelta(hours=1)))) == (
        "2026-01-05T09:00:00Z"
    )


def test_never_synced_data_type_has_no_current_status() -> None:
    statuses = parse_data_statuses({"suppliers": {"dataType": "suppliers"}})
    assert statuses["suppliers"].current_status is None
    assert statuses["suppliers"].last_successful_sync is None


def test_null_entries_in_data_status_are_skipped() -> None:
    statuses = parse_data_statuses(
        {"bills": None, "invoices": {"dataType": "invoices", "currentStatus": "Queued"}}
    )
    assert list(statuses) == ["invoices"]


def test_unknown_status_values_are_kept_as_strings() -> None:
    statuses = parse_data_statuses({"invoices": {"dataType": "invoices", "currentStatus": "Teleporting"}})
    assert statuses["invoices"].current_status == "Teleporting"


def test_data_status_entry_without_data_type_takes_its_key() -> None:
    statuses = parse_data_statuses({"invoices": {"currentStatus": "Complete"}})
    assert statuses["invoices"].data_type == "invoices"


def test_first_failed_sync_has_latest_id_but_no_success() -> None:
    body = {"suppliers": {"dataType": "suppliers", "currentStatus": "FetchError", "latestSyncId": UUID}}
    status = parse_data_statuses(body)["suppliers"]
    assert (status.current_status, status.latest_sync_id, status.latest_successful_sync_id) == (
        "FetchError",
        UUID,
        None,
    )


def test_unparsable_optional_timestamp_makes_the_response_malformed_naming_the_field() -> None:
    body = {
        "invoices": {
            "dataType": "invoices",
            "currentStatus": "Complete",
            "lastSuccessfulSync": "2024-09-01T23:59:99Z",
        }
    }
    with pytest.raises(ShapeError, match=r"dataStatus\.invoices\.lastSuccessfulSync"):
        parse_data_statuses(body)


@pytest.mark.parametrize("body", [[], "Complete", None, 42])
def test_data_status_that_is_not_an_object_is_a_shape_error(body: object) -> None:
    with pytest.raises(ShapeError, match="expected an object"):
        parse_data_statuses(body)


def _operation(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "id": UUID,
        "companyId": "c1",
        "connectionId": "conn-1",
        "dataType": "invoices",
        "status": "Complete",
        "requested": "2022-11-14T11:18:37.2798351Z",
        "completed": "2022-11-14T11:20:00Z",
        "progress": 100,
        "isCompleted": True,
        "isErrored": False,
    }
    base.update(overrides)
    return base


def test_pull_operation_parses_every_field() -> None:
    op = parse_pull_operation(_operation(statusDescription="done", errorMessage=None))
    assert op.id == UUID
    assert op.requested == datetime(2022, 11, 14, 11, 18, 37, 279835, tzinfo=UTC)
    assert op.completed == datetime(2022, 11, 14, 11, 20, tzinfo=UTC)
    assert (op.progress, op.is_completed, op.is_errored, op.status_description) == (100, True, False, "done")


def test_pull_operation_without_company_id_takes_the_requested_company() -> None:
    body = _operation()
    del body["companyId"]
    assert parse_pull_operation(body, company_id="c9").company_id == "c9"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"id": None}, "pullOperation.id"),
        ({"requested": None}, "pullOperation.requested"),
        ({"requested": "soon"}, "pullOperation.requested"),
        ({"progress": "half"}, "pullOperation.progress"),
        ({"progress": float("inf")}, "pullOperation.progress"),
        ({"progress": float("nan")}, "pullOperation.progress"),
        ({"isErrored": "no"}, "pullOperation.isErrored"),
    ],
)
def test_pull_operation_with_a_bad_field_names_that_field(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(ShapeError, match=field.replace(".", r"\.")):
        parse_pull_operation(_operation(**overrides))


def test_company_with_connections_and_tags() -> None:
    company = parse_company(
        {
            "id": "c1",
            "name": "Acme",
            "created": "2024-01-01T00:00:00Z",
            "lastSync": None,
            "tags": {"region": "uk"},
            "dataConnections": [
                {"id": "d1", "platformName": "Xero", "status": "Linked", "lastSync": "2024-02-01T00:00:00Z"},
                {"id": "d2", "platformName": "Plaid", "status": "Deauthorized"},
            ],
        }
    )
    assert company.name == "Acme"
    assert company.tags == {"region": "uk"}
    assert company.platform == "Plaid,Xero"
    assert company.connections[0].last_sync == datetime(2024, 2, 1, tzinfo=UTC)


def test_company_with_a_bad_connection_names_its_index() -> None:
    with pytest.raises(ShapeError, match=r"company\.dataConnections\[1\]\.id"):
        parse_company({"id": "c1", "name": "A", "dataConnections": [{"id": "d1"}, {"platformName": "x"}]})


def test_page_reads_paging_fields_and_next_link() -> None:
    page = parse_page(
        {
            "results": [{"id": "c1", "name": "A"}],
            "pageNumber": 1,
            "pageSize": 1,
            "totalResults": 3,
            "_links": {"self": {"href": "/companies"}, "next": {"href": "/companies?page=2&pageSize=1"}},
        },
        parse_company,
    )
    assert (page.page_number, page.page_size, page.total_results) == (1, 1, 3)
    assert page.next_href == "/companies?page=2&pageSize=1"
    assert page.results[0].id == "c1"


def test_page_whose_results_is_not_a_list_is_a_shape_error() -> None:
    with pytest.raises(ShapeError, match=r"page\.results"):
        parse_page({"results": {}, "pageNumber": 1, "pageSize": 1, "totalResults": 0}, parse_company)


def test_page_without_paging_fields_is_a_shape_error() -> None:
    with pytest.raises(ShapeError, match=r"page\.totalResults"):
        parse_page({"results": [], "pageNumber": 1, "pageSize": 1}, parse_company)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", 120.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("Mon, 05 Jan 2026 09:01:00 GMT", 60.0),
        ("Mon, 05 Jan 2026 08:00:00 GMT", 0.0),
        ("-3", None),
        ("soon", None),
        (None, None),
        ("inf", None),
        ("nan", None),
        ("1e20", 86400.0),
        ("Fri, 31 Dec 9999 23:59:59 GMT", 86400.0),
    ],
)
def test_retry_after_seconds_or_http_date(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, NOW) == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Tue, 06 Jan 2026 00:00:00 GMT", datetime(2026, 1, 6, tzinfo=UTC)),
        ("2026-01-06T00:00:00Z", datetime(2026, 1, 6, tzinfo=UTC)),
        ("2026-01-06T00:00:00.1234567Z", datetime(2026, 1, 6, 0, 0, 0, 123456, tzinfo=UTC)),
        ("1767657600", datetime(2026, 1, 6, tzinfo=UTC)),
        ("1767657600000", datetime(2026, 1, 6, tzinfo=UTC)),
        ("3600", NOW + timedelta(hours=1)),
        ("2024-09-01T23:59:99Z", None),
        ("garbage", None),
    ],
)
def test_rate_limit_reset_in_any_plausible_format(header: str, expected: datetime | None) -> None:
    assert parse_rate_limit_reset(header, NOW) == expected


def test_rate_limit_headers_are_read_case_insensitively() -> None:
    info = parse_rate_limit({"x-rate-limit-limit": "101000", "X-RATE-LIMIT-REMAINING": "99"}, NOW)
    assert info is not None
    assert (info.limit, info.remaining, info.reset, info.observed_at) == (101000, 99, None, NOW)


def test_infinite_rate_limit_header_is_ignored_rather_than_raised() -> None:
    info = parse_rate_limit({"X-Rate-Limit-Limit": "inf", "X-Rate-Limit-Remaining": "7"}, NOW)
    assert info is not None
    assert (info.limit, info.remaining) == (None, 7)


def test_no_rate_limit_headers_give_none() -> None:
    assert parse_rate_limit({"Content-Type": "application/json"}, NOW) is None


def test_a_local_time_past_year_9999_in_utc_is_an_error_not_an_overflow() -> None:
    with pytest.raises(ValueError, match="out of range"):
        parse_timestamp("9999-12-31T23:59:59-01:00")


@pytest.mark.parametrize(
    ("stamp", "ok"),
    [("2026-01-05T10:00:00Z", True), ("2026-01-06T08:59:00Z", True), ("2026-01-07T09:00:00Z", False)],
)
def test_a_timestamp_far_in_the_future_is_malformed_data(stamp: str, ok: bool) -> None:
    body = {"invoices": {"dataType": "invoices", "lastSuccessfulSync": stamp}}
    if ok:
        assert parse_data_statuses(body, NOW)["invoices"].last_successful_sync == parse_timestamp(stamp)
        return
    with pytest.raises(ShapeError, match=r"dataStatus\.invoices\.lastSuccessfulSync: .* days in the future"):
        parse_data_statuses(body, NOW)
    # Without a "now" the parser cannot know; the client always passes one.
    assert parse_data_statuses(body)["invoices"].last_successful_sync is not None


def test_a_company_page_keeps_good_records_and_names_the_bad_ones() -> None:
    body = {
        "results": [
            {"id": "c1", "name": "Good"},
            {"id": "c2", "name": "Bad", "lastSync": "not-a-date"},
            {"name": "No id"},
            "not an object",
            {"id": "c5", "name": "Also good", "lastSync": "2026-01-01T00:00:00Z"},
        ],
        "pageNumber": 1,
        "pageSize": 100,
        "totalResults": 5,
        "_links": {"self": {"href": "/companies?page=1"}},
    }
    page = parse_page(body, parse_company, "companies", per_record=True)
    assert [c.id for c in page.results] == ["c1", "c5"]
    assert [(f.index, f.id) for f in page.failures] == [(1, "c2"), (2, None), (3, None)]
    assert "companies.results[1].lastSync" in page.failures[0].reason
    assert page.self_href == "/companies?page=1"
    with pytest.raises(ShapeError, match=r"results\[1\]\.lastSync"):
        parse_page(body, parse_company, "companies")
