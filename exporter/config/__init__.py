"""The exporter's configuration: schema, loading (file + env + flags) and validation errors."""

from exporter.config.loading import ConfigError, load_config
from exporter.config.schema import (
    AutoRefreshSettings,
    BudgetSettings,
    CodatSettings,
    CompanySelection,
    Config,
    DataTypeSelection,
    LoggingSettings,
    MetricsSettings,
    PollingSettings,
    RefreshRule,
    ServerSettings,
    ShardingSettings,
    WebhookSettings,
)

__all__ = [
    "AutoRefreshSettings",
    "BudgetSettings",
    "CodatSettings",
    "CompanySelection",
    "Config",
    "ConfigError",
    "DataTypeSelection",
    "LoggingSettings",
    "MetricsSettings",
    "PollingSettings",
    "RefreshRule",
    "ServerSettings",
    "ShardingSettings",
    "WebhookSettings",
    "load_config",
]
