"""Reloading the configuration while running: load and validate anew, say what changed, keep the old on error.

``codat-exporter run`` reloads on SIGHUP, and on ``POST /-/reload`` when
``server.enable_lifecycle`` (``--web.enable-lifecycle``) allows it, as Prometheus
does. The decision is pure (``plan_reload``); ``ConfigReloader`` adds the lock,
the log lines and the call into the running exporter (``apply``). A config
that does not validate changes nothing: its problems are logged as
``field.path: reason`` and the old config keeps running.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import BaseModel, SecretStr

from exporter.config.loading import ConfigError, Problem
from exporter.config.schema import Config

log = logging.getLogger(__name__)

RESTART_ONLY: Final[tuple[str, ...]] = (
    "server",
    "webhooks",
    "sharding",
    "logging.format",
    "codat",
    "budget",
    "metrics",
    "companies.ids",
    "polling.seen_operations_limit",
    "auto_refresh.enabled",
)
"""Settings a running process keeps until restarted: bound sockets and routes, the TLS setup, shard
identity, the Codat client and its pacer, the exposition's shape, and what the company table was
built with. Everything else (company and data-type selection, polling cadence, refresh rules, log
level) is applied live."""


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """What a reload attempt found: success, the config now in force, and what changed."""

    ok: bool
    config: Config
    """The config in force after the attempt: the new one when ``ok``, else the one kept."""
    changed: tuple[str, ...] = ()
    """Dotted paths of the settings that differ (secrets named, never shown)."""
    needs_restart: tuple[str, ...] = ()
    """Of ``changed``, those the running process keeps until it is restarted."""
    problems: tuple[Problem, ...] = ()


def diff_configs(old: Config, new: Config) -> tuple[str, ...]:
    """The dotted paths of every leaf setting whose value differs between ``old`` and ``new``."""
    return tuple(_diff(old, new, ""))


def _diff(old: Any, new: Any, prefix: str) -> list[str]:
    if isinstance(old, BaseModel) and type(old) is type(new):
        found: list[str] = []
        for name in type(old).model_fields:
            path = f"{prefix}.{name}" if prefix else name
            found += _diff(getattr(old, name), getattr(new, name), path)
        return found
    if isinstance(old, SecretStr) and isinstance(new, SecretStr):
        return [] if old.get_secret_value() == new.get_secret_value() else [prefix]
    return [] if old == new else [prefix]


def plan_reload(current: Config, load: Callable[[], Config]) -> ReloadResult:
    """Load a new config with ``load``; the result says whether it is usable and what it changes."""
    try:
        new = load()
    except ConfigError as error:
        return ReloadResult(ok=False, config=current, problems=tuple(error.problems))
    changed = diff_configs(current, new)
    needs_restart = tuple(path for path in changed if restart_only(path))
    running = keep_values(new, current, needs_restart)
    return ReloadResult(ok=True, config=running, changed=changed, needs_restart=needs_restart)


def restart_only(path: str) -> bool:
    """Whether the setting at dotted ``path`` keeps its running value until a restart."""
    return any(path == key or path.startswith(key + ".") for key in RESTART_ONLY)


def keep_values(new: Config, running: Config, paths: Sequence[str]) -> Config:
    """``new`` with the settings at ``paths`` put back to their ``running`` values.

    A reload applies the rest and keeps these as they run, so the config in force describes the
    process truthfully and the next reload names them again until the process is restarted.
    """
    result = new
    for path in paths:
        result = _with_value(result, path.split("."), _get(running, path.split(".")))
    return result


def _get(model: Any, parts: Sequence[str]) -> Any:
    for part in parts:
        model = getattr(model, part)
    return model


def _with_value(model: Any, parts: Sequence[str], value: Any) -> Any:
    head, rest = parts[0], parts[1:]
    inner = value if not rest else _with_value(getattr(model, head), rest, value)
    return model.model_copy(update={head: inner})


@dataclass
class ConfigReloader:
    """Serialises reloads and hands a usable new config to the running exporter; thread-safe.

    ``apply(new_config, changed_paths)`` is the running exporter's side: it
    swaps in what it can apply live. ``on_result`` sees every attempt (for the
    ``codat_exporter_config_last_reload_successful`` gauge).
    """

    current: Config
    load: Callable[[], Config]
    apply: Callable[[Config, Sequence[str]], None]
    on_result: Callable[[ReloadResult], None] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def reload(self) -> ReloadResult:
        """Load, validate and apply the config now; the old one stays in force on any problem."""
        with self._lock:  # a SIGHUP and a POST /-/reload at once must not interleave
            result = plan_reload(self.current, self.load)
            if not result.ok:
                log.error(
                    "configuration reload failed; keeping the running configuration: %s",
                    "; ".join(f"{p}: {r}" if p else r for p, r in result.problems),
                )
            elif not result.changed:
                log.info("configuration reloaded: nothing changed")
            else:
                try:
                    self.apply(result.config, result.changed)
                except Exception as exc:  # the exporter keeps running on the old config
                    log.exception("configuration reload failed while applying it; keeping the old one")
                    result = ReloadResult(ok=False, config=self.current, problems=(("", str(exc)),))
                else:
                    self.current = result.config
                    log.info("configuration reloaded: changed %s", ", ".join(result.changed))
                    if result.needs_restart:
                        log.warning(
                            "these settings need a restart and were not applied: %s",
                            ", ".join(result.needs_restart),
                        )
            if self.on_result is not None:
                self.on_result(result)
            return result
