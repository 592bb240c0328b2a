"""Queue one refresh and say what happened: the single code path of the CLI and of auto-refresh.

Every way the exporter asks Codat for a sync goes through ``perform_refresh``,
so the CLI ``refresh`` command and the auto-refresher report results the same
way and count them under the same names. Codat errors become outcomes, not
exceptions: "a sync is already running" is a normal answer, not a failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, Protocol

from exporter.codat.errors import CodatError, DatasetAlreadyInProgressError, RateLimitedError
from exporter.codat.models import PullOperation

ALL_DATA_TYPES: Final = "all"
"""The ``data_type`` of an outcome (and of attempt records) for a refresh of every data type."""

RefreshResult = Literal["queued", "already_in_progress", "rate_limited", "error"]


class RefreshClient(Protocol):
    """The two Codat client calls a refresh needs (``exporter.codat.client.CodatClient`` has them)."""

    def refresh_data_type(
        self, company_id: str, data_type: str, *, connection_id: str | None = None
    ) -> PullOperation:
        """Queue a sync of one data type; return the new pull operation."""
        ...

    def refresh_all(self, company_id: str) -> None:
        """Queue a sync of every data type set to fetch on first link."""
        ...


@dataclass(frozen=True, slots=True)
class RefreshOutcome:
    """What one refresh request did."""

    result: RefreshResult
    company_id: str
    data_type: str
    """The data type refreshed, or ``"all"``."""
    dataset_id: str | None = None
    """The new dataset (pull operation) id when queued; Codat gives none for a refresh of all."""
    running_dataset_id: str | None = None
    """When already in progress: the dataset that is running."""
    message: str = ""
    """One readable line for logs and the CLI."""
    retry_after: float | None = None
    """When rate limited: seconds Codat asked us to wait, if it said."""
    status_code: int | None = None
    """The HTTP status of a failed request (``None`` when there was no response or no failure)."""


def perform_refresh(
    client: RefreshClient, company_id: str, data_type: str | None, *, connection_id: str | None = None
) -> RefreshOutcome:
    """Queue a sync of ``data_type`` (``None`` = every data type) for a company; never raises CodatError."""
    if data_type is None and connection_id is not None:
        raise ValueError("connection_id applies to a single data type, not to a refresh of all")
    label = data_type if data_type is not None else ALL_DATA_TYPES
    try:
        if data_type is None:
            client.refresh_all(company_id)
            return RefreshOutcome(
                "queued",
                company_id,
                label,
                message=f"queued a sync of all data types for company {company_id}",
            )
        operation = client.refresh_data_type(company_id, data_type, connection_id=connection_id)
    except DatasetAlreadyInProgressError as exc:
        running = f" (dataset {exc.dataset_id})" if exc.dataset_id else ""
        return RefreshOutcome(
            "already_in_progress",
            company_id,
            label,
            running_dataset_id=exc.dataset_id,
            status_code=exc.status_code,
            message=f"a sync of {label} for company {company_id} is already in progress{running}",
        )
    except RateLimitedError as exc:
        return RefreshOutcome(
            "rate_limited", company_id, label, message=str(exc), retry_after=exc.retry_after, status_code=429
        )
    except CodatError as exc:
        return RefreshOutcome("error", company_id, label, message=str(exc), status_code=exc.status_code)
    return RefreshOutcome(
        "queued",
        company_id,
        label,
        dataset_id=operation.id,
        message=f"queued a sync of {label} for company {company_id} (dataset {operation.id})",
    )
