"""Webhook signature verification: Codat's Svix / Standard Webhooks scheme, checked as a pure function."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from standardwebhooks import Webhook

from exporter.webhooks.verify import (
    Failure,
    SecretError,
    SigningSecret,
    VerificationError,
    sign,
    verify,
)

SECRET_TEXT = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OTHER_SECRET_TEXT = "whsec_" + base64.b64encode(b"another endpoint's key").decode()
SECRET = SigningSecret.parse(SECRET_TEXT)
NOW = 1_767_603_600  # 2026-01-05T09:00:00Z
BODY = b'{"id":"e1","eventType":"read.completed","payload":{"referenceCompany":{"id":"c1"},"dataTypes":[]}}'


def signed_headers(
    body: bytes = BODY, *, message_id: str = "msg_1", timestamp: int = NOW, secret: SigningSecret = SECRET
) -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, message_id, timestamp, body),
    }


def failure_of(
    headers: dict[str, str], body: bytes = BODY, now: float = NOW, tolerance: float = 300
) -> Failure:
    with pytest.raises(VerificationError) as caught:
        verify(SECRET, headers, body, now=now, tolerance=tolerance)
    return caught.value.reason


def test_valid_delivery_returns_its_message_id() -> None:
    signed = verify(SECRET, signed_headers(), BODY, now=NOW)
    assert signed.message_id == "msg_1"


def test_signature_made_by_the_standardwebhooks_library_is_accepted() -> None:
    moment = datetime.fromtimestamp(NOW, tz=UTC)
    header = Webhook(SECRET_TEXT).sign("msg_lib", moment, BODY.decode())
    headers = {"webhook-id": "msg_lib", "webhook-timestamp": str(NOW), "webhook-signature": header}
    assert verify(SECRET, headers, BODY, now=NOW).message_id == "msg_lib"


def test_our_signature_passes_the_standardwebhooks_library() -> None:
    # The library checks the timestamp against the wall clock, so sign "now".
    headers = signed_headers(timestamp=int(time.time()))
    Webhook(SECRET_TEXT).verify(BODY, headers)  # raises if it disagrees


def test_wrong_secret_is_rejected() -> None:
    headers = signed_headers(secret=SigningSecret.parse(OTHER_SECRET_TEXT))
    assert failure_of(headers) is Failure.NO_MATCHING_SIGNATURE


def test_tampered_body_is_rejected() -> None:
    tampered = BODY.replace(b"c1", b"c2")
    assert failure_of(signed_headers(), body=tampered) is Failure.NO_MATCHING_SIGNATURE


def test_reserialised_json_is_not_the_signed_body() -> None:
    # Verification is over the raw bytes: the same JSON with other whitespace fails.
    assert failure_of(signed_headers(), body=BODY.replace(b",", b", ")) is Failure.NO_MATCHING_SIGNATURE


def test_changed_message_id_or_timestamp_breaks_the_signature() -> None:
    headers = signed_headers()
    assert failure_of({**headers, "webhook-id": "msg_2"}) is Failure.NO_MATCHING_SIGNATURE
    assert failure_of({**headers, "webhook-timestamp": str(NOW + 1)}) is Failure.NO_MATCHING_SIGNATURE


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_header_is_rejected(missing: str) -> None:
    headers = signed_headers()
    del headers[missing]
    assert failure_of(headers) is Failure.MISSING_HEADERS


def test_unsigned_request_is_rejected() -> None:
    assert failure_of({"content-type": "application/json"}) is Failure.MISSING_HEADERS


def test_timestamp_older_than_tolerance_is_rejected() -> None:
    headers = signed_headers(timestamp=NOW - 301)
    assert failure_of(headers) is Failure.TIMESTAMP_TOO_OLD


def test_timestamp_newer_than_tolerance_is_rejected() -> None:
    headers = signed_headers(timestamp=NOW + 301)
    assert failure_of(headers) is Failure.TIMESTAMP_TOO_NEW


def test_timestamp_at_the_edge_of_tolerance_is_accepted() -> None:
    verify(SECRET, signed_headers(timestamp=NOW - 300), BODY, now=NOW)
    verify(SECRET, signed_headers(timestamp=NOW + 300), BODY, now=NOW)


def test_tolerance_is_configurable() -> None:
    headers = signed_headers(timestamp=NOW - 60)
    assert failure_of(headers, tolerance=30) is Failure.TIMESTAMP_TOO_OLD
    verify(SECRET, headers, BODY, now=NOW, tolerance=90)


def test_one_valid_signature_among_invalid_ones_passes() -> None:
    good = signed_headers()["webhook-signature"]
    bad = sign(SigningSecret.parse(OTHER_SECRET_TEXT), "msg_1", NOW, BODY)
    headers = {**signed_headers(), "webhook-signature": f"{bad} v1,bm90LWEtc2ln {good} v1,@@@"}
    assert verify(SECRET, headers, BODY, now=NOW).message_id == "msg_1"


def test_signatures_of_other_versions_are_ignored() -> None:
    good = signed_headers()["webhook-signature"].removeprefix("v1,")
    headers = {**signed_headers(), "webhook-signature": f"v2,{good} v1a,{good}"}
    assert failure_of(headers) is Failure.NO_MATCHING_SIGNATURE


def test_svix_header_names_are_accepted() -> None:
    headers = {name.replace("webhook-", "svix-"): value for name, value in signed_headers().items()}
    assert verify(SECRET, headers, BODY, now=NOW).message_id == "msg_1"


def test_header_names_are_case_insensitive() -> None:
    headers = {name.title(): value for name, value in signed_headers().items()}
    assert verify(SECRET, headers, BODY, now=NOW).message_id == "msg_1"


def test_header_sets_are_not_mixed() -> None:
    headers = signed_headers()
    mixed = {"webhook-id": headers["webhook-id"], "svix-timestamp": headers["webhook-timestamp"]}
    mixed["svix-signature"] = headers["webhook-signature"]
    assert failure_of(mixed) is Failure.MISSING_HEADERS


def test_fractional_or_signed_timestamps_are_malformed() -> None:
    for value in (f"{NOW}.0", f"+{NOW}", f"{NOW}e0", "-1", "nan"):
        assert failure_of({**signed_headers(), "webhook-timestamp": value}) is Failure.MALFORMED_HEADERS


def test_overlong_message_id_is_malformed() -> None:
    long_id = "m" * 257
    assert failure_of(signed_headers(message_id=long_id)) is Failure.MALFORMED_HEADERS


def test_secret_without_prefix_or_padding_is_read() -> None:
    raw = SECRET_TEXT.removeprefix("whsec_")
    assert SigningSecret.parse(raw) == SECRET
    padded = "whsec_" + base64.b64encode(b"sixteen byte key").decode()
    assert SigningSecret.parse(padded.rstrip("=")).key == b"sixteen byte key"


@pytest.mark.parametrize("text", ["whsec_not base64!", "whsec_@@@@secret@@@@"])
def test_unusable_secret_is_a_clear_error_that_does_not_echo_it(text: str) -> None:
    with pytest.raises(SecretError, match="whsec_") as caught:
        SigningSecret.parse(text)
    assert text.removeprefix("whsec_") not in str(caught.value)


def test_empty_secret_is_a_clear_error() -> None:
    with pytest.raises(SecretError, match="empty"):
        SigningSecret.parse("whsec_")


def test_secret_repr_hides_the_key() -> None:
    assert "MfKQ" not in repr(SECRET)
    assert SECRET.key.hex() not in repr(SECRET)


header_text = st.text(alphabet=st.characters(codec="latin-1"), max_size=80)
header_names = st.sampled_from(
    ["webhook-id", "webhook-timestamp", "webhook-signature", "svix-id", "svix-timestamp", "svix-signature"]
)


@settings(max_examples=300, deadline=None)
@given(
    overrides=st.dictionaries(header_names, header_text, max_size=6),
    body=st.binary(max_size=200),
)
def test_malformed_headers_only_ever_fail_verification(overrides: dict[str, str], body: bytes) -> None:
    headers = {**signed_headers(), **overrides}
    try:
        verify(SECRET, headers, body, now=NOW)
    except VerificationError:
        return  # the only acceptable way to fail
    # Passing is only possible if the id, timestamp and body are exactly the signed ones.
    assert body == BODY
    assert headers["webhook-timestamp"].strip() == str(NOW)


@settings(max_examples=200, deadline=None)
@given(signature=st.text(max_size=200), timestamp=st.text(max_size=20), message_id=st.text(max_size=40))
def test_arbitrary_unicode_header_values_never_raise_anything_else(
    signature: str, timestamp: str, message_id: str
) -> None:
    headers = {"webhook-id": message_id, "webhook-timestamp": timestamp, "webhook-signature": signature}
    with pytest.raises(VerificationError):
        verify(SECRET, headers, BODY, now=NOW)


@settings(max_examples=100, deadline=None)
@given(body=st.binary(max_size=300), message_id=st.from_regex(r"msg_[A-Za-z0-9]{1,30}", fullmatch=True))
def test_agrees_with_the_standardwebhooks_library_on_well_formed_deliveries(
    body: bytes, message_id: str
) -> None:
    # The library decodes the body as text, so compare on UTF-8 bodies only.
    text = body.decode("utf-8", errors="replace").encode()
    moment = datetime.fromtimestamp(NOW, tz=UTC)
    header = Webhook(SECRET_TEXT).sign(message_id, moment, text.decode())
    headers = {"webhook-id": message_id, "webhook-timestamp": str(NOW), "webhook-signature": header}
    assert verify(SECRET, headers, text, now=NOW).message_id == message_id
