"""Codat facts the exporter assumes when nothing more specific is known."""

from __future__ import annotations

from typing import Final

DEFAULT_BASE_URL: Final = "https://api.codat.io"
"""Codat's production API; ``codat.base_url`` or ``CODAT_BASE_URL`` points elsewhere (the simulator)."""

DEFAULT_RETRY_AFTER: Final = 60.0
"""Seconds to pause after a 429 that carries no usable ``Retry-After`` header."""

DEFAULT_REQUEST_TIMEOUT: Final = 60.0
"""Seconds one request may take in total (connect, headers and body) before it is abandoned."""
