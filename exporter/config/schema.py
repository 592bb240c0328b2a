"""The exporter's configuration model: every key, its type, default and checks (pydantic v2).

YAML keys are the attribute names. Models are frozen and reject unknown keys, so
a typo is an error at start-up, not a setting silently ignored. Checks that
involve more than one field report the field they blame through a
``cross_field`` error, so every problem carries a precise field path.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from exporter.codat.defaults import DEFAULT_BASE_URL, DEFAULT_REQUEST_TIMEOUT
from exporter.common.listen import ListenAddressError, parse_listen_address
from exporter.config.durations import Duration
from exporter.exposition.taglabels import (
    MAX_TAG_LABELS,
    MAX_TAG_NAME_LENGTH,
    MAX_TAG_VALUE_LENGTH,
    TagLabelError,
    tag_labels,
)

DEFAULT_LISTEN_ADDRESS = "0.0.0.0:8329"
WEBHOOK_SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix of every Codat signing secret

PositiveDuration = Annotated[Duration, Field(gt=0)]
Share = Annotated[float, Field(gt=0, le=1)]


def _invalid(kind: str, reason: str) -> PydanticCustomError:
    """A validation error whose reason is shown exactly as written."""
    return PydanticCustomError(kind, "{reason}", {"reason": reason})


def _cross_field(field: str, reason: str) -> PydanticCustomError:
    """An error blamed on ``field`` of the model being validated (see ``loading.problems_from``)."""
    return PydanticCustomError("cross_field", "{reason}", {"field": field, "reason": reason})


def _check_glob(pattern: str) -> str:
    if not pattern.strip():
        raise _invalid("glob", "must not be empty")
    # fnmatch treats an unclosed "[" as a literal; that is almost always a typo, so say so.
    last_open = pattern.rfind("[")
    if last_open != -1 and "]" not in pattern[last_open + 1 :]:
        raise _invalid("glob", f"not a valid glob: unclosed '[' in {pattern!r}")
    return pattern


def _check_company_id(value: str) -> str:
    if not value.strip():
        raise _invalid("company_id", "must be a non-empty company id")
    return value.strip()


def _check_listen_address(value: str) -> str:
    try:
        parse_listen_address(value, allow_port_zero=False)
    except ListenAddressError as exc:
        raise _invalid("listen_address", exc.reason) from None
    return value


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


Glob = Annotated[str, AfterValidator(_check_glob)]
CompanyId = Annotated[str, AfterValidator(_check_company_id)]
ListenAddress = Annotated[str, AfterValidator(_check_listen_address)]
TagName = Annotated[str, Field(min_length=1, max_length=MAX_TAG_NAME_LENGTH)]


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CodatSettings(_Settings):
    """How to reach the Codat API: address, credentials, timeouts and retries."""

    base_url: str = Field(default=DEFAULT_BASE_URL, description="Codat API base URL (env CODAT_BASE_URL).")
    api_key: SecretStr | None = Field(
        default=None, description="Codat API key (env CODAT_API_KEY, preferred). Never printed."
    )
    api_key_file: str | None = Field(
        default=None, description="File holding the API key, e.g. a mounted secret (env CODAT_API_KEY_FILE)."
    )
    connect_timeout: PositiveDuration = 5.0
    read_timeout: PositiveDuration = 30.0
    request_timeout: PositiveDuration = Field(
        default=DEFAULT_REQUEST_TIMEOUT,
        description="Total deadline for one request: connect, headers and body (a trickle ends here).",
    )
    max_retries: int = Field(default=4, ge=0)
    retry_max_elapsed: PositiveDuration = 60.0

    @field_validator("base_url")
    @classmethod
    def _base_url_is_http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise _invalid("url", "must start with http:// or https://")
        return value.rstrip("/")

    def api_key_value(self) -> str | None:
        """The API key in clear text, for the client only (``None`` if none is configured)."""
        return self.api_key.get_secret_value() if self.api_key is not None else None


class CompanySelection(_Settings):
    """Which companies the exporter watches."""

    ids: list[CompanyId] = Field(
        default_factory=list, description="Explicit company ids; empty with discover on = every company."
    )
    discover: bool = True
    query: str | None = Field(
        default=None,
        description="Codat query for discovery, e.g. name~Ltd (no dataConnections.status: see check-config)",
    )
    tags: str | None = Field(default=None, description="Codat tags filter for discovery.")
    include: list[Glob] = Field(default_factory=list, description="Globs on company id or name; empty = all.")
    exclude: list[Glob] = Field(default_factory=list)

    @model_validator(mode="after")
    def _something_selected(self) -> CompanySelection:
        if not self.discover and not self.ids:
            raise _cross_field("ids", "list at least one company id, or turn discover on")
        return self


class DataTypeSelection(_Settings):
    """Which data types are exported (globs on Codat data type names)."""

    include: list[Glob] = Field(default_factory=list, description="Globs; empty = all data types.")
    exclude: list[Glob] = Field(default_factory=list)


class PollingSettings(_Settings):
    """How often Codat is polled (tiered: change detection, then targeted reads)."""

    interval: PositiveDuration = Field(default=60.0, description="Change-detection cadence (GET /companies).")
    full_sweep_interval: PositiveDuration = Field(
        default=21600.0, description="Every company's dataStatus is read at least this often."
    )
    full_sweep_interval_with_webhooks: PositiveDuration = 86400.0
    history_page_size: int = Field(default=100, ge=1, le=5000)
    seen_operations_limit: int = Field(default=1000, ge=1)


class BudgetSettings(_Settings):
    """How much of Codat's request quota and concurrency the exporter may use."""

    daily_quota_share: Share = Field(
        default=0.5,
        description=(
            "Share of X-Rate-Limit-Limit this exporter may spend; with sharding, all shards "
            "together (each keeps to share / total_shards)."
        ),
    )
    max_requests_per_minute: float = Field(default=300.0, gt=0, le=1000)
    max_concurrency: int = Field(default=4, ge=1, le=10)


class MetricsSettings(_Settings):
    """How per-company series are exposed."""

    status_mode: Literal["default", "full", "sparse"] = Field(
        default="default",
        description=(
            "default: the 7 seed statuses + Other always, any other documented status named while "
            "current; full: every spec status always; sparse: only the current one."
        ),
    )
    company_tag_labels: list[TagName] = Field(
        default_factory=list,
        max_length=MAX_TAG_LABELS,
        description=(
            f"Codat company tags to add as tag_<name> labels to codat_company_info (at most "
            f"{MAX_TAG_LABELS}; characters outside [A-Za-z0-9_] become _, values are cut to "
            f"{MAX_TAG_VALUE_LENGTH} characters), e.g. [team, tier, region] for alert routing."
        ),
    )

    @field_validator("company_tag_labels")
    @classmethod
    def _tag_labels_usable(cls, value: list[str]) -> list[str]:
        try:
            tag_labels(value)
        except TagLabelError as exc:
            raise _invalid("tag_labels", str(exc)) from None
        return value


class ServerSettings(_Settings):
    """The HTTP server for /metrics, /healthz, /readyz and the landing page."""

    listen_address: ListenAddress = Field(
        default=DEFAULT_LISTEN_ADDRESS,
        description="HOST:PORT; :PORT = all interfaces (env CODAT_EXPORTER_LISTEN_ADDRESS).",
    )
    web_config_file: str | None = Field(
        default=None,
        description="exporter-toolkit web configuration file (TLS, basic auth, response headers) for "
        "both ports; null = plain HTTP without auth (flag --web.config.file).",
    )
    enable_lifecycle: bool = Field(
        default=False,
        description="Serve POST /-/reload to reload this config (SIGHUP always does); off by default "
        "like Prometheus' --web.enable-lifecycle (flag --web.enable-lifecycle).",
    )


class ShardingSettings(_Settings):
    """Which share of the companies this process serves (stable hash of company id)."""

    shard: int = Field(default=0, ge=0)
    total_shards: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _shard_in_range(self) -> ShardingSettings:
        if self.shard >= self.total_shards:
            raise _cross_field(
                "shard", f"must be less than total_shards ({self.total_shards}); shards count from 0"
            )
        return self


class LoggingSettings(_Settings):
    """Log verbosity and format."""

    level: Annotated[Literal["debug", "info", "warning", "error"], BeforeValidator(_lower)] = Field(
        default="info", description="debug | info | warning | error (env CODAT_EXPORTER_LOG_LEVEL)."
    )
    format: Literal["text", "json"] = "text"


class RefreshRule(_Settings):
    """One auto-refresh rule: which data types (of which companies) may be how stale."""

    data_types: list[Glob] = Field(default_factory=lambda: ["*"], min_length=1)
    companies: list[Glob] = Field(default_factory=list, description="Company ids or globs; empty = all.")
    tags: dict[str, str] = Field(default_factory=dict, description="Company tags that must all match.")
    max_staleness: PositiveDuration = 86400.0
    refresh_statuses: list[str] = Field(
        default_factory=list,
        description="Statuses normally skipped (AuthError, NotSupported) that this rule may refresh.",
    )


class AutoRefreshSettings(_Settings):
    """Queue Codat syncs when data goes stale — off by default, bounded when on."""

    enabled: bool = False
    dry_run: bool = Field(default=False, description="Decide and count, but queue nothing.")
    rules: list[RefreshRule] = Field(default_factory=lambda: [RefreshRule()])
    never_synced_grace: PositiveDuration = Field(
        default=86400.0,
        description="A never-synced data type counts as stale this long after company creation.",
    )
    cooldown: Duration = Field(
        default=3600.0, description="Minimum time between refreshes of one company/data type."
    )
    max_per_cycle: int = Field(default=10, ge=0)
    max_per_day: int = Field(default=500, ge=0)
    request_share: Share = Field(
        default=0.1, description="Share of the exporter's request budget refreshes may use."
    )
    refresh_all_threshold: int = Field(
        default=5, ge=1, description="This many stale data types of one company → one refresh-all instead."
    )


class WebhookSettings(_Settings):
    """The optional Codat webhook receiver (Standard Webhooks signatures)."""

    enabled: bool = Field(default=False, description="Also turned on by env CODAT_WEBHOOK_SECRET.")
    secret: SecretStr | None = Field(
        default=None, description="Signing secret whsec_… (env CODAT_WEBHOOK_SECRET)."
    )
    secret_file: str | None = None
    listen_address: ListenAddress | None = Field(default=None, description="null = the /metrics server.")
    path: str = "/webhooks/codat"
    max_body_bytes: int = Field(default=1048576, ge=1024)
    tolerance: PositiveDuration = 300.0

    @field_validator("secret")
    @classmethod
    def _secret_is_whsec(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return value
        text = value.get_secret_value().strip()
        if not text.startswith(WEBHOOK_SECRET_PREFIX):
            raise _invalid("webhook_secret", "must start with whsec_ (copy it from the Codat Portal)")
        try:
            base64.b64decode(text.removeprefix(WEBHOOK_SECRET_PREFIX), validate=True)
        except (binascii.Error, ValueError):
            raise _invalid("webhook_secret", "the part after whsec_ is not valid base64") from None
        return SecretStr(text)

    @field_validator("path")
    @classmethod
    def _path_is_absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise _invalid("path", "must start with /")
        return value

    @model_validator(mode="after")
    def _secret_when_enabled(self) -> WebhookSettings:
        if self.enabled and self.secret is None:
            raise _cross_field(
                "secret",
                "required when webhooks are enabled (set CODAT_WEBHOOK_SECRET or webhooks.secret_file)",
            )
        return self

    def secret_value(self) -> str | None:
        """The signing secret in clear text, for the verifier only."""
        return self.secret.get_secret_value() if self.secret is not None else None


class Config(_Settings):
    """The whole exporter configuration, validated and immutable."""

    codat: CodatSettings = Field(default_factory=CodatSettings)
    companies: CompanySelection = Field(default_factory=CompanySelection)
    data_types: DataTypeSelection = Field(default_factory=DataTypeSelection)
    polling: PollingSettings = Field(default_factory=PollingSettings)
    budget: BudgetSettings = Field(default_factory=BudgetSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    sharding: ShardingSettings = Field(default_factory=ShardingSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    auto_refresh: AutoRefreshSettings = Field(default_factory=AutoRefreshSettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)

    @classmethod
    def default(cls) -> Config:
        """Every setting at its default (no API key): for tests and the demo."""
        return cls()
