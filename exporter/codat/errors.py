"""Typed errors of the Codat client, and the pure mapping from an HTTP error response to one.

Every error carries what Codat's ``ErrorMessage`` body said (status code,
service, error text, correlation id) plus the endpoint label and company the
call was for, so one log line is enough to open a support ticket. ``str()`` is
one readable line; the API key never appears in it (the client redacts it from
every field it copies out of a response), and every field taken from a response
is folded to one line of bounded length, so a hostile body cannot forge log
lines or flood them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

_ALREADY_IN_PROGRESS: Final = "DatasetAlreadyInProgressException"
_RUNNING_DATASET_RE: Final = re.compile(r"previous sync ([0-9a-fA-F-]{36})")
_DATA_TYPE_RE: Final = re.compile(r"Cannot queue (\S+) sync")
_MAX_ERROR_TEXT: Final = 300
_MAX_FIELD_TEXT: Final = 100
# Control characters (C0, DEL, C1, Unicode line/paragraph separators) could start a forged log line.
_CONTROL_RE: Final = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
# A lone surrogate cannot be encoded as UTF-8: it would break whichever output writes it.
_SURROGATE_RE: Final = re.compile("[\ud800-\udfff]")


class CodatError(Exception):
    """Base class of every error the Codat client raises."""

    def __init__(
        self,
        error: str,
        *,
        status_code: int | None = None,
        service: str | None = None,
        correlation_id: str | None = None,
        endpoint: str | None = None,
        company_id: str | None = None,
        can_be_retried: str | None = None,
        detailed_error_code: int | None = None,
        validation: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(error)
        self.error = error
        self.status_code = status_code
        self.service = service
        self.correlation_id = correlation_id
        self.endpoint = endpoint
        self.company_id = company_id
        self.can_be_retried = can_be_retried
        self.detailed_error_code = detailed_error_code
        self.validation = validation

    def lead(self) -> str:
        """The start of ``str()``: what happened, before where and Codat's own words."""
        return f"Codat HTTP {self.status_code}" if self.status_code is not None else "Codat"

    def __str__(self) -> str:
        where = self.endpoint or "request"
        if self.company_id:
            where += f" for company {self.company_id}"
        extras = []
        if self.service:
            extras.append(f"service {self.service}")
        if self.correlation_id:
            extras.append(f"correlation id {self.correlation_id}")
        tail = f" ({', '.join(extras)})" if extras else ""
        return f"{self.lead()} on {where}: {self.error}{tail}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class BadRequestError(CodatError):
    """400: Codat rejected the request (often a malformed ``query``)."""


class UnauthorizedError(CodatError):
    """401: the API key is wrong."""

    def lead(self) -> str:
        """Say plainly that the key was refused: the one thing an operator must fix."""
        return "Codat rejected the API key (401 Unauthorized)"


class PaymentRequiredError(CodatError):
    """402: the Codat account's plan does not allow this (or has expired)."""


class ForbiddenError(CodatError):
    """403: the key is outdated or not allowed to see this resource."""

    def lead(self) -> str:
        """Say plainly that the key may not see this resource."""
        return "Codat refused the API key access (403 Forbidden)"


class NotFoundError(CodatError):
    """404: no such company, dataset or data type."""


class RateLimitedError(CodatError):
    """429 after retries (or a ``Retry-After`` longer than the retry budget)."""

    def __init__(self, error: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(error, **kwargs)
        self.retry_after = retry_after

    def __str__(self) -> str:
        base = super().__str__()
        if self.retry_after is not None:
            return f"{base}; retry after {self.retry_after:g}s"
        return base


class ServerError(CodatError):
    """5xx after retries: Codat failed."""


class DatasetAlreadyInProgressError(CodatError):
    """A refresh was refused because a sync of that data type is still running (400 or 409)."""

    def __init__(
        self, error: str, *, dataset_id: str | None = None, data_type: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(error, **kwargs)
        self.dataset_id = dataset_id
        self.data_type = data_type


class MalformedResponseError(CodatError):
    """The response was not JSON, or not the shape the endpoint documents."""


class ResponseTooLargeError(MalformedResponseError):
    """The response body exceeded the size Codat can legitimately send for that endpoint."""


class PagingError(MalformedResponseError):
    """A paged walk was stopped: a page repeated, or more pages than ``totalResults`` justifies."""


class CodatConnectionError(CodatError):
    """No response at all after retries: timeout, connection refused or reset."""


_BY_STATUS: Final[Mapping[int, type[CodatError]]] = {
    400: BadRequestError,
    401: UnauthorizedError,
    402: PaymentRequiredError,
    403: ForbiddenError,
    404: NotFoundError,
    429: RateLimitedError,
}


def clean_text(text: str, limit: int = _MAX_ERROR_TEXT) -> str:
    """``text`` as one printable line of at most ``limit`` characters (for text taken from a response).

    Control characters and runs of whitespace fold to one space, lone
    surrogates become U+FFFD, and a longer text is cut with an ellipsis.
    """
    flat = " ".join(_CONTROL_RE.sub(" ", _SURROGATE_RE.sub("\ufffd", text)).split())
    if len(flat) > limit:
        return flat[: limit - 1] + "…"
    return flat


def _text(value: object, limit: int = _MAX_FIELD_TEXT) -> str | None:
    if not isinstance(value, str):
        return None
    return clean_text(value, limit) or None


def already_in_progress_details(error_text: str) -> tuple[str | None, str | None] | None:
    """(running dataset id, data type) if the text is a DatasetAlreadyInProgressException, else None."""
    if not error_text.startswith(_ALREADY_IN_PROGRESS):
        return None
    dataset = _RUNNING_DATASET_RE.search(error_text)
    data_type = _DATA_TYPE_RE.search(error_text)
    return (dataset.group(1) if dataset else None, data_type.group(1) if data_type else None)


def error_from_response(
    status_code: int,
    body: object,
    *,
    raw_text: str = "",
    endpoint: str,
    company_id: str | None = None,
    retry_after: float | None = None,
) -> CodatError:
    """Build the typed error for an HTTP error response.

    ``body`` is the decoded JSON (or None when it was not JSON); ``raw_text``
    is used as the error text when there is no ``ErrorMessage`` body (a
    gateway's HTML page, say).
    """
    fields: Mapping[str, Any] = body if isinstance(body, Mapping) else {}
    error_text = _text(fields.get("error"), _MAX_ERROR_TEXT) or clean_text(raw_text) or f"HTTP {status_code}"
    detailed = fields.get("detailedErrorCode")
    if isinstance(detailed, bool) or not isinstance(detailed, int):
        detailed = None
    validation = fields.get("validation")
    common: dict[str, Any] = {
        "status_code": status_code,
        "service": _text(fields.get("service")),
        "correlation_id": _text(fields.get("correlationId")),
        "endpoint": endpoint,
        "company_id": company_id,
        "can_be_retried": _text(fields.get("canBeRetried")),
        "detailed_error_code": detailed,
        "validation": validation if isinstance(validation, Mapping) else None,
    }
    if 400 <= status_code < 500:
        in_progress = already_in_progress_details(error_text)
        if in_progress is not None:
            running, kind = in_progress
            return DatasetAlreadyInProgressError(error_text, dataset_id=running, data_type=kind, **common)
    if status_code == 429:
        return RateLimitedError(error_text, retry_after=retry_after, **common)
    if status_code >= 500:
        return ServerError(error_text, **common)
    return _BY_STATUS.get(status_code, CodatError)(error_text, **common)
