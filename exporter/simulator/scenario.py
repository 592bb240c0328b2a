"""Scenarios: which companies, connections and data types the simulator serves, and how they behave.

A scenario is YAML (see ``scenarios/demo.yaml``) validated into frozen models;
a mistake is reported as ``ScenarioError`` naming the field path and reason.
``Scenario.generated`` builds large synthetic scenarios in code.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Self

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from exporter.codat.statuses import CONNECTION_STATUSES, ERROR_STATUSES, IN_PROGRESS_STATUSES

DATA_TYPES: tuple[str, ...] = (
    "invoices",
    "bills",
    "customers",
    "suppliers",
    "chartOfAccounts",
    "bankAccounts",
    "payments",
    "billPayments",
    "journalEntries",
    "balanceSheet",
    "profitAndLoss",
    "creditNotes",
    "items",
    "taxRates",
    "trackingCategories",
    "accountTransactions",
    "bankTransactions",
    "billCreditNotes",
    "cashFlowStatement",
    "company",
    "directCosts",
    "directIncomes",
    "itemReceipts",
    "journals",
    "paymentMethods",
    "purchaseOrders",
    "salesOrders",
    "transfers",
    "banking-accountBalances",
    "banking-accounts",
    "banking-transactionCategories",
    "banking-transactions",
    "commerce-companyInfo",
    "commerce-customers",
    "commerce-disputes",
    "commerce-locations",
    "commerce-orders",
    "commerce-paymentMethods",
    "commerce-payments",
    "commerce-productCategories",
    "commerce-products",
    "commerce-taxComponents",
    "commerce-transactions",
)
"""Codat's data type names, most commonly used first."""

OUTCOME_STATUSES = frozenset(ERROR_STATUSES | {"Complete", "NotSupported", "Cancelled"})
SOURCE_TYPES = ("Accounting", "Banking", "BankFeed", "Commerce", "Expense", "Other", "Unknown")


class ScenarioError(ValueError):
    """A scenario file is unreadable or invalid; the message names each field path and reason."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StageSpec(_Model):
    """One in-progress status a sync passes through and the mean seconds it stays there."""

    status: str
    seconds: float = Field(ge=0)

    @field_validator("status")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in IN_PROGRESS_STATUSES:
            raise ValueError(
                f"{value!r} is not an in-progress status ({', '.join(sorted(IN_PROGRESS_STATUSES))})"
            )
        return value


def _default_stages() -> tuple[StageSpec, ...]:
    return (
        StageSpec(status="Queued", seconds=2),
        StageSpec(status="Fetching", seconds=6),
        StageSpec(status="Mapping", seconds=3),
        StageSpec(status="Validating", seconds=2),
        StageSpec(status="Processing", seconds=3),
    )


class SyncSettings(_Model):
    """How a sync moves: its stages, random spread of their lengths, and how much history is kept."""

    stages: tuple[StageSpec, ...] = Field(default_factory=_default_stages, min_length=1)
    jitter: float = Field(default=0.5, ge=0, le=0.95)
    history_limit: int = Field(default=1000, ge=10)

    @field_validator("stages", mode="before")
    @classmethod
    def _pairs(cls, value: Any) -> Any:
        # Allow the compact YAML form `- [Fetching, 5]`.
        if isinstance(value, list):
            return [
                {"status": v[0], "seconds": v[1]} if isinstance(v, list | tuple) and len(v) == 2 else v
                for v in value
            ]
        return value


class RateLimitSettings(_Model):
    """The daily quota (resets 00:00 UTC on the simulator clock) and the per-minute limit."""

    daily_quota: int = Field(default=1_000_000, ge=1)
    per_minute: int = Field(default=1000, ge=1)


class Profile(_Model):
    """How a company's data types behave; companies name a profile and may override any field."""

    sync_schedule_hours: float | None = Field(default=24.0, gt=0)
    error_rates: dict[str, float] = Field(default_factory=dict)
    history: int = Field(default=3, ge=0, le=500)
    history_interval_hours: float | None = Field(default=None, gt=0)
    last_success_hours_ago: float | None = Field(default=None, ge=0)
    latest_status: str | None = None
    in_progress_probability: float = Field(default=0.0, ge=0, le=1)
    not_supported: tuple[str, ...] = ()
    never_synced: tuple[str, ...] = ()
    created_days_ago: float = Field(default=90, ge=0)
    # Per data type schedules (names or globs → hours, null = no automatic syncs) over
    # ``sync_schedule_hours``: Codat keeps a schedule per data type (SyncSetting.syncSchedule).
    sync_schedules: dict[str, float | None] = Field(default_factory=dict)
    # Data types not marked "fetch on first link": `POST /data/all` does not queue them.
    not_fetched_on_first_link: tuple[str, ...] = ()
    # Data types whose syncs never finish: held in ``stuck_status`` (the first one is already
    # open ``stuck_since_hours`` when the simulation starts), like a desktop integration whose
    # connector waits for the customer's machine.
    stuck: tuple[str, ...] = ()
    stuck_status: str = "Fetching"
    stuck_since_hours: float = Field(default=6.0, ge=0)
    # Probability that a Complete read created, updated or deleted records (read.completed's
    # recordsModified), and that it raised a warning.validation issue.
    records_modified_probability: float = Field(default=0.5, ge=0, le=1)
    validation_warning_probability: float = Field(default=0.0, ge=0, le=1)
    # Outcomes that leave an Active dataConnectionError on the connection; the next Complete
    # sync on that connection resolves it.
    connection_errors_on: tuple[str, ...] = ("FetchError", "RateLimitError")

    @field_validator("sync_schedules")
    @classmethod
    def _schedules(cls, value: dict[str, float | None]) -> dict[str, float | None]:
        for pattern, hours in value.items():
            if hours is not None and hours <= 0:
                raise ValueError(f"schedule for {pattern} must be positive hours or null")
        return value

    @field_validator("stuck_status")
    @classmethod
    def _open_status(cls, value: str) -> str:
        if value not in IN_PROGRESS_STATUSES:
            raise ValueError(f"{value!r} is not an in-progress status")
        return value

    @field_validator("error_rates")
    @classmethod
    def _rates(cls, value: dict[str, float]) -> dict[str, float]:
        for status, rate in value.items():
            if status not in OUTCOME_STATUSES - {"Complete"}:
                raise ValueError(f"{status!r} is not a terminal non-success status")
            if not 0 <= rate <= 1:
                raise ValueError(f"rate for {status} must be between 0 and 1")
        if sum(value.values()) > 1:
            raise ValueError("error rates add up to more than 1")
        return value

    @field_validator("latest_status")
    @classmethod
    def _terminal(cls, value: str | None) -> str | None:
        if value is not None and value not in OUTCOME_STATUSES:
            raise ValueError(f"{value!r} is not a terminal status")
        return value


class ConnectionSpec(_Model):
    """One data connection of a company."""

    platform: str = "Xero"
    integration_key: str | None = None
    source_type: str = "Accounting"
    status: str = "Linked"
    id: str | None = None
    # Codat's free-form, platform-specific connectionInfo object (null when absent).
    connection_info: dict[str, Any] | None = None

    @field_validator("status", "source_type")
    @classmethod
    def _known(cls, value: str, info: ValidationInfo) -> str:
        allowed = CONNECTION_STATUSES if info.field_name == "status" else SOURCE_TYPES
        if value not in allowed:
            raise ValueError(f"{value!r} is not one of {', '.join(allowed)}")
        return value


_PROFILE_FIELDS = tuple(Profile.model_fields)


class CompanySpec(_Model):
    """A company (or ``count`` numbered copies of it) and how its data behaves."""

    name: str = Field(min_length=1)
    id: str | None = None
    description: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    profile: str = "healthy"
    overrides: dict[str, Any] = Field(default_factory=dict)
    connections: tuple[ConnectionSpec, ...] = (ConnectionSpec(),)
    data_types: tuple[str, ...] | None = None
    count: int = Field(default=1, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _lift(cls, data: Any) -> Any:
        # Profile fields written directly on a company are overrides; `platform` and
        # `connection_status` are a shorthand for a single connection.
        if not isinstance(data, dict):
            return data
        data = dict(data)
        overrides = dict(data.pop("overrides", {}) or {})
        for key in _PROFILE_FIELDS:
            if key in data:
                overrides[key] = data.pop(key)
        if overrides:
            data["overrides"] = overrides
        if "platform" in data or "connection_status" in data:
            if "connections" in data:
                raise ValueError("give either `connections` or `platform`/`connection_status`, not both")
            data["connections"] = [
                {"platform": data.pop("platform", "Xero"), "status": data.pop("connection_status", "Linked")}
            ]
        return data


def _default_profiles() -> dict[str, Profile]:
    return {"healthy": Profile()}


class Scenario(_Model):
    """A whole simulated Codat account: settings, profiles and companies, plus the random seed."""

    name: str = "scenario"
    seed: int = 1
    rate_limit: RateLimitSettings = RateLimitSettings()
    sync: SyncSettings = SyncSettings()
    data_types: tuple[str, ...] = DATA_TYPES[:10]
    # The client-wide schedule `GET /profile/syncSettings` reports for every data type
    # (companies whose profile differs report `overridesDefaults: true`).
    default_sync_schedule_hours: int = Field(default=24, ge=0)
    profiles: dict[str, Profile] = Field(default_factory=_default_profiles)
    companies: tuple[CompanySpec, ...] = ()

    @model_validator(mode="after")
    def _references(self) -> Self:
        problems = []
        for i, company in enumerate(self.companies):
            if company.profile not in self.profiles:
                problems.append(f"companies.{i}.profile: unknown profile {company.profile!r}")
            try:
                self.profile_for(company)
            except ValidationError as exc:
                for err in exc.errors():
                    path = ".".join(str(p) for p in err["loc"])
                    problems.append(f"companies.{i}.{path}: {err['msg']}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def profile_for(self, company: CompanySpec) -> Profile:
        """The company's profile with its overrides applied (an unknown profile name means defaults)."""
        base = self.profiles.get(company.profile, Profile())
        if not company.overrides:
            return base
        return Profile.model_validate({**base.model_dump(), **company.overrides})

    def total_companies(self) -> int:
        """How many companies the scenario creates (counting ``count`` copies)."""
        return sum(c.count for c in self.companies)

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "scenario", seed: int | None = None) -> Scenario:
        """Validate a parsed scenario; raise ``ScenarioError`` listing every problem by field path."""
        if not isinstance(data, dict):
            raise ScenarioError(f"{source}: a scenario must be a mapping, got {type(data).__name__}")
        if seed is not None:
            data = {**data, "seed": seed}
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            lines = []
            for err in exc.errors():
                path = ".".join(str(p) for p in err["loc"]) or "(top level)"
                message = err["msg"].removeprefix("Value error, ")
                lines.append(f"  {path}: {message}")
            raise ScenarioError(f"{source}: invalid scenario\n" + "\n".join(lines)) from None

    @classmethod
    def load(cls, path: str | Path, *, seed: int | None = None) -> Scenario:
        """Read and validate a scenario YAML file (``seed`` overrides the file's)."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ScenarioError(f"{path}: cannot read scenario: {exc.strerror or exc}") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ScenarioError(f"{path}: not valid YAML: {exc}") from None
        return cls.from_dict(data, source=str(path), seed=seed)

    @classmethod
    def demo(cls, seed: int = 1) -> Scenario:
        """The packaged demo scenario: healthy, stale, failing, deauthorized and never-synced companies."""
        text = resources.files("exporter.simulator").joinpath("scenarios/demo.yaml").read_text("utf-8")
        return cls.from_dict(yaml.safe_load(text), source="demo.yaml", seed=seed)

    @classmethod
    def generated(cls, companies: int = 1000, data_types: int = 10, seed: int = 1) -> Scenario:
        """A large synthetic scenario: mostly healthy companies with a realistic share of trouble."""
        if companies < 0:
            raise ScenarioError("companies must not be negative")
        if not 1 <= data_types <= len(DATA_TYPES):
            raise ScenarioError(f"data_types must be between 1 and {len(DATA_TYPES)}")
        types = DATA_TYPES[:data_types]
        profiles = {
            "healthy": Profile(sync_schedule_hours=24, error_rates={"FetchError": 0.01}, history=2),
            "stale": Profile(sync_schedule_hours=None, last_success_hours_ago=96, history=2),
            "failing": Profile(
                sync_schedule_hours=24,
                error_rates={"FetchError": 0.5, "ValidationError": 0.2},
                latest_status="FetchError",
                history=2,
            ),
            "deauthorized": Profile(sync_schedule_hours=24, latest_status="AuthError", history=2),
            "never_synced": Profile(sync_schedule_hours=None, history=0, never_synced=("*",)),
        }
        # Per 100 companies: 86 healthy, 5 stale, 4 failing, 3 deauthorized, 2 never synced.
        mix = (("healthy", 86), ("stale", 5), ("failing", 4), ("deauthorized", 3), ("never_synced", 2))
        specs: list[CompanySpec] = []
        for profile, share in mix:
            count = companies * share // 100
            if profile == "healthy":
                count += companies - sum(companies * s // 100 for _, s in mix)
            if count == 0:
                continue
            status = {"deauthorized": "Deauthorized", "never_synced": "PendingAuth"}.get(profile, "Linked")
            specs.append(
                CompanySpec(
                    name=f"{profile.replace('_', ' ').title()} Co",
                    profile=profile,
                    count=count,
                    connections=(ConnectionSpec(platform="Xero", status=status),),
                    tags={"segment": profile},
                )
            )
        return cls(
            name=f"generated-{companies}",
            seed=seed,
            data_types=types,
            profiles=profiles,
            companies=tuple(specs),
            rate_limit=RateLimitSettings(daily_quota=1000 * (1 + companies), per_minute=1000),
        )
