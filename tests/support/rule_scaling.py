"""A time-compressed copy of the shipped rules, for replays that must finish in minutes.

Thresholds change only through the documented tuning point (the values of the
``codat-staleness-thresholds`` group of rules.yml); every ``for``, ``keep_firing_for``
and PromQL range or subquery window is divided by the same factor. Nothing else in
the rules changes, so a replay on the copy exercises the shipped expressions.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

TUNING_GROUP = "codat-staleness-thresholds"
"""The rule group users edit to tune thresholds (rules.yml says so)."""

_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w)")
_WINDOW = re.compile(r"\[(\w+)(:\w*)?\]")
_VECTOR = re.compile(r"^vector\(([0-9.]+)\)")


def duration_ms(text: str) -> int:
    """Milliseconds of a Prometheus duration such as ``1h30m`` (ValueError if it is not one)."""
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return sum(int(number) * _UNITS_MS[unit] for number, unit in parts)


def scale_duration(text: str, factor: float) -> str:
    """``text`` divided by ``factor``, in whole milliseconds (at least 1 ms)."""
    return f"{max(1, round(duration_ms(text) / factor))}ms"


def scale_windows(expr: str, factor: float) -> str:
    """Every range selector and subquery window of a PromQL expression divided by ``factor``."""

    def one(match: re.Match[str]) -> str:
        step = match.group(2) or ""
        if len(step) > 1:
            step = ":" + scale_duration(step[1:], factor)
        return f"[{scale_duration(match.group(1), factor)}{step}]"

    return _WINDOW.sub(one, expr)


def _scale_threshold(expr: str, factor: float) -> str:
    match = _VECTOR.match(expr)
    if match is None:
        raise ValueError(f"a tuning rule is not a constant vector(...): {expr!r}")
    return f"vector({float(match.group(1)) / factor!r})"


def scale_groups(groups: list[dict[str, Any]], factor: float) -> list[dict[str, Any]]:
    """A copy of rule ``groups`` compressed in time by ``factor``."""
    scaled = copy.deepcopy(groups)
    for group in scaled:
        for rule in group["rules"]:
            if group["name"] == TUNING_GROUP:
                rule["expr"] = _scale_threshold(str(rule["expr"]), factor)
            else:
                rule["expr"] = scale_windows(str(rule["expr"]), factor)
            for key in ("for", "keep_firing_for"):
                if key in rule:
                    rule[key] = scale_duration(str(rule[key]), factor)
    return scaled


def write_scaled_rules(sources: list[Path], target_dir: Path, factor: float) -> list[Path]:
    """Write a compressed copy of each rule file into ``target_dir``; return the new paths."""
    target_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for source in sources:
        document = yaml.safe_load(source.read_text(encoding="utf-8"))
        document["groups"] = scale_groups(document["groups"], factor)
        target = target_dir / source.name
        target.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
        written.append(target)
    return written
