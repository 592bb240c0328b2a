"""Keeping secrets out of text: one marker, one function, used by logs, errors and CLI output."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

REDACTED: Final = "[REDACTED]"
"""What every secret is replaced with, wherever it would have been shown."""


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each non-empty secret replaced by ``[REDACTED]``.

    Longer secrets are replaced first, so a secret that contains another (an API
    key and its base64 form, say) is masked whole rather than leaving a tail.
    """
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text
