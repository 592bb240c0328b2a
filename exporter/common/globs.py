"""Glob matching for the config's include/exclude lists (companies, data types, refresh rules)."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable


def matches_any(value: str, patterns: Iterable[str]) -> bool:
    """True when ``value`` matches one of the shell-style ``patterns`` (case-sensitive)."""
    return any(fnmatch.fnmatchcase(value, pattern) for pattern in patterns)
