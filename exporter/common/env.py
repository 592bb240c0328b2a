"""The name of every environment variable the exporter reads, in one place.

Flags beat the environment, which beats the config file; ``exporter.config.loading``
applies that order. The demo reads only ``DEMO_ENV`` so a real key never meets it.
"""

from __future__ import annotations

from typing import Final

API_KEY: Final = "CODAT_API_KEY"
API_KEY_FILE: Final = "CODAT_API_KEY_FILE"
BASE_URL: Final = "CODAT_BASE_URL"
CONFIG: Final = "CODAT_EXPORTER_CONFIG"
LISTEN_ADDRESS: Final = "CODAT_EXPORTER_LISTEN_ADDRESS"
LOG_LEVEL: Final = "CODAT_EXPORTER_LOG_LEVEL"
WEBHOOK_SECRET: Final = "CODAT_WEBHOOK_SECRET"  # noqa: S105 - a variable name, not a secret
WEBHOOK_SECRET_FILE: Final = "CODAT_WEBHOOK_SECRET_FILE"  # noqa: S105 - a variable name, not a secret

ALL: Final[tuple[str, ...]] = (
    API_KEY,
    API_KEY_FILE,
    BASE_URL,
    CONFIG,
    LISTEN_ADDRESS,
    LOG_LEVEL,
    WEBHOOK_SECRET,
    WEBHOOK_SECRET_FILE,
)
"""Every variable, in the order ``--help`` lists them."""
