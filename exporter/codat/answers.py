"""From a read HTTP answer (or the lack of one) to a decoded body or a typed, redacted error: pure functions.

Codat may echo the request, the API key included, in any field of an error
body, and a hostile or broken answer may hold anything: every field copied out
of an answer is redacted first, then folded to one bounded line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final

from exporter.codat import limits
from exporter.codat.auth import redact, redact_json
from exporter.codat.errors import (
    CodatConnectionError,
    CodatError,
    MalformedResponseError,
    ResponseTooLargeError,
    clean_text,
    error_from_response,
)
from exporter.codat.headers import parse_retry_after
from exporter.codat.models import RecordFailure
from exporter.codat.retry import Failure

_FAILURE_TEXT: Final[Mapping[Failure | None, str]] = {
    Failure.CONNECT: "could not connect",
    Failure.READ_TIMEOUT: "no answer within the read timeout",
    Failure.DEADLINE: "no complete answer within the request deadline",
    Failure.CONNECTION_LOST: "connection lost before a complete response",
    None: "request failed",
}


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP response, read: status, headers and body up to its limit (``truncated``: there was more)."""

    status: int
    headers: Mapping[str, str]
    content: bytes
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class Call:
    """What a request was for, as every error about it names it."""

    endpoint: str
    company_id: str | None
    secrets: tuple[str, ...]


def no_answer_error(
    failure: Failure | None, exception: str, base_url: str, request_timeout: float, call: Call
) -> CodatConnectionError:
    """The error for an attempt that got no complete answer (``exception``: the exception's type name)."""
    text = f"{_FAILURE_TEXT[failure]} ({base_url}, {exception})"
    if failure is Failure.DEADLINE:
        text = f"{_FAILURE_TEXT[failure]} of {request_timeout:g}s ({base_url})"
    return CodatConnectionError(text, endpoint=call.endpoint, company_id=call.company_id)


def too_large_error(answer: Answer, limit: int, call: Call) -> ResponseTooLargeError:
    """The error for a 2xx body that went past ``limit`` bytes."""
    return ResponseTooLargeError(
        f"response larger than {limits.describe_size(limit)}, more than Codat sends for this call;"
        " not read further",
        status_code=answer.status,
        endpoint=call.endpoint,
        company_id=call.company_id,
    )


def error_from_answer(answer: Answer, call: Call, now: datetime) -> CodatError:
    """The typed error for a non-2xx answer, every field redacted (Codat may echo the key anywhere)."""
    text = answer.content.decode("utf-8", "replace")
    if answer.truncated:
        # The cut may have split a secret; drop the tail where a fragment could survive redaction.
        text = text[: max(0, len(text) - max(map(len, call.secrets), default=0))]
    body: object
    try:
        # Decoded before redacting: a secret spelled with JSON escapes only shows once decoded.
        body = redact_json(json.loads(answer.content), call.secrets)
    except (ValueError, RecursionError):
        body = None
    if 300 <= answer.status < 400 and body is None:
        location = answer.headers.get("Location", "")
        text = f"redirect to {location} not followed" if location else "redirect not followed"
    return error_from_response(
        answer.status,
        body,
        raw_text=redact(text, call.secrets),
        endpoint=call.endpoint,
        company_id=call.company_id,
        retry_after=parse_retry_after(answer.headers.get("Retry-After"), now),
    )


def decode_json(answer: Answer, call: Call) -> object:
    """The JSON body of a 2xx answer; ``MalformedResponseError`` if it is not JSON or nested too deeply."""
    try:
        return json.loads(answer.content)
    except RecursionError:
        raise MalformedResponseError(
            f"response JSON is nested too deeply to read ({len(answer.content)} bytes)",
            status_code=answer.status,
            endpoint=call.endpoint,
            company_id=call.company_id,
        ) from None
    except ValueError:
        content_type = clean_text(answer.headers.get("Content-Type", "no content type"), 100)
        raise MalformedResponseError(
            f"response is not JSON ({content_type}, {len(answer.content)} bytes)",
            status_code=answer.status,
            endpoint=call.endpoint,
            company_id=call.company_id,
        ) from None


def clean_failure(failure: RecordFailure, secrets: Iterable[str]) -> RecordFailure:
    """A record failure safe to log and show: redacted, one line, bounded."""
    record_id = None if failure.id is None else clean_text(redact(failure.id, secrets), 100)
    return replace(failure, id=record_id or None, reason=clean_text(redact(failure.reason, secrets)))
