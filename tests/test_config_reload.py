"""Config reload: a valid new file is applied with what changed listed; an invalid one changes nothing."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from exporter.config import Config, load_config
from exporter.config.reload import ConfigReloader, ReloadResult, diff_configs, plan_reload

NO_ENV: dict[str, str] = {}


@dataclass
class Harness:
    """A reloader on a file, recording what it applied and every result it reported."""

    reloader: ConfigReloader
    applied: list[tuple[Config, tuple[str, ...]]] = field(default_factory=list)
    seen: list[ReloadResult] = field(default_factory=list)

    def reload(self) -> ReloadResult:
        """Reload now."""
        return self.reloader.reload()

    @property
    def current(self) -> Config:
        """The config in force."""
        return self.reloader.current


def _loader(path: Path) -> Harness:
    harness = Harness(ConfigReloader(Config.default(), load=Config.default, apply=lambda c, p: None))

    def apply(config: Config, changed: Sequence[str]) -> None:
        harness.applied.append((config, tuple(changed)))

    harness.reloader = ConfigReloader(
        current=load_config(path, env=NO_ENV),
        load=lambda: load_config(path, env=NO_ENV),
        apply=apply,
        on_result=harness.seen.append,
    )
    return harness


def test_diff_names_every_changed_leaf_and_nothing_else() -> None:
    old = Config.model_validate({"polling": {"interval": 60}, "companies": {"include": ["a*"]}})
    new = Config.model_validate({"polling": {"interval": 30}, "companies": {"include": ["a*", "b*"]}})
    assert diff_configs(old, new) == ("companies.include", "polling.interval")
    assert diff_configs(old, old) == ()


def test_diff_names_a_changed_secret_without_showing_it() -> None:
    old = Config.model_validate({"codat": {"api_key": "first-key-1234"}})
    new = Config.model_validate({"codat": {"api_key": "second-key-5678"}})
    changed = diff_configs(old, new)
    assert changed == ("codat.api_key",)
    assert "key-" not in repr(changed)


def test_a_valid_change_is_applied_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("polling: {interval: 60}\n")
    reloader = _loader(path)
    path.write_text("polling: {interval: 30}\nserver: {listen_address: ':9000'}\n")
    result = reloader.reload()
    assert result.ok
    assert result.changed == ("polling.interval", "server.listen_address")
    assert result.needs_restart == ("server.listen_address",)
    assert reloader.current.polling.interval == 30
    assert [changed for _, changed in reloader.applied] == [result.changed]
    assert reloader.seen == [result]


def test_an_invalid_file_keeps_the_old_config_and_logs_field_paths(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("polling: {interval: 60}\n")
    reloader = _loader(path)
    before = reloader.current
    path.write_text("polling: {interval: -5m, intervl: 3}\n")
    with caplog.at_level(logging.ERROR):
        result = reloader.reload()
    assert not result.ok
    assert result.config is before
    assert reloader.current is before
    assert reloader.applied == []
    assert reloader.seen == [result]
    assert "polling.interval: must not be negative" in caplog.text
    assert "polling.intervl: unknown key (did you mean interval?)" in caplog.text


def test_an_unchanged_file_applies_nothing(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("polling: {interval: 60}\n")
    reloader = _loader(path)
    result = reloader.reload()
    assert (result.ok, result.changed) == (True, ())
    assert reloader.applied == []


def test_a_failure_while_applying_keeps_the_old_config(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("polling: {interval: 60}\n")

    def refuse(_config: Config, _changed: Sequence[str]) -> None:
        raise RuntimeError("cannot apply now")

    reloader = ConfigReloader(
        current=load_config(path, env=NO_ENV), load=lambda: load_config(path, env=NO_ENV), apply=refuse
    )
    path.write_text("polling: {interval: 30}\n")
    result = reloader.reload()
    assert not result.ok
    assert result.problems == (("", "cannot apply now"),)
    assert reloader.current.polling.interval == 60


def test_concurrent_reloads_apply_one_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("polling: {interval: 60}\n")
    inside = threading.Semaphore(1)
    overlaps: list[int] = []

    def apply(_config: Config, _changed: Sequence[str]) -> None:
        if not inside.acquire(blocking=False):
            overlaps.append(1)
            return
        inside.release()

    counter = iter(range(1000))

    def load() -> Config:
        return Config.model_validate({"polling": {"interval": 10 + next(counter)}})

    reloader = ConfigReloader(current=load_config(path, env=NO_ENV), load=load, apply=apply)
    threads = [threading.Thread(target=reloader.reload) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert overlaps == []


def test_plan_reload_is_pure(tmp_path: Path) -> None:
    current = Config.default()
    result = plan_reload(current, lambda: Config.model_validate({"sharding": {"total_shards": 2}}))
    assert result.needs_restart == ("sharding.total_shards",)
    assert current == Config.default()
