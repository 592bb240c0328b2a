"""Config loading: every documented error message, precedence of flags/env/file, and file handling."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from exporter.common.listen import parse_listen_address
from exporter.config import Config, ConfigError, load_config

NO_ENV: dict[str, str] = {}


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems_of(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), env=env or NO_ENV)
    return caught.value.problems


# One row per documented error: (YAML, field path, reason).
ERROR_CASES = [
    ("budget: {max_concurrency: 0}", "budget.max_concurrency", "must be at least 1"),
    ("budget: {max_concurrency: 11}", "budget.max_concurrency", "must be at most 10"),
    ("budget: {max_concurrency: many}", "budget.max_concurrency", 'must be a whole number (got "many")'),
    ("polling: {intervl: 5m}", "polling.intervl", "unknown key (did you mean interval?)"),
    ("pollin: {interval: 5m}", "pollin", "unknown key (did you mean polling?)"),
    (
        "auto_refresh: {rules: [{max_staleness: 6 hours}]}",
        "auto_refresh.rules[0].max_staleness",
        'not a duration: "6 hours" (use e.g. 90s, 5m, 6h, 1d)',
    ),
    (
        "auto_refresh: {rules: [{max_stalenes: 6h}]}",
        "auto_refresh.rules[0].max_stalenes",
        "unknown key (did you mean max_staleness?)",
    ),
    ("polling: {interval: 0}", "polling.interval", "must be greater than 0"),
    ("polling: {interval: -5s}", "polling.interval", "must not be negative"),
    ("polling: {interval: -5}", "polling.interval", "must not be negative"),
    ("polling: {interval: true}", "polling.interval", "not a duration: True (use e.g. 90s, 5m, 6h, 1d)"),
    ("sharding: {shard: 2, total_shards: 2}", "sharding.shard", "must be less than total_shards (2)"),
    ("sharding: {total_shards: 0}", "sharding.total_shards", "must be at least 1"),
    ("server: {listen_address: localhost}", "server.listen_address", "there is no port (expected HOST:PORT"),
    ("server: {listen_address: ':0'}", "server.listen_address", "port must be a number from 1 to 65535"),
    ("server: {listen_address: ':65536'}", "server.listen_address", "port must be a number from 1 to 65535"),
    ("server: {listen_address: ':http'}", "server.listen_address", "port must be a number from 1 to 65535"),
    ("server: {listen_address: '::1:80'}", "server.listen_address", "an IPv6 host must be in brackets"),
    (
        "metrics: {status_mode: loud}",
        "metrics.status_mode",
        'must be one of default, full or sparse (got "loud")',
    ),
    ("logging: {level: chatty}", "logging.level", "must be one of debug, info, warning or error"),
    ("budget: {daily_quota_share: 0}", "budget.daily_quota_share", "must be greater than 0"),
    ("budget: {daily_quota_share: 1.5}", "budget.daily_quota_share", "must be at most 1"),
    ("auto_refresh: {request_share: 0}", "auto_refresh.request_share", "must be greater than 0"),
    ("companies: {ids: ['']}", "companies.ids[0]", "must be a non-empty company id"),
    ("companies: {ids: [42]}", "companies.ids[0]", "must be a string (got number)"),
    ("companies: {discover: false}", "companies.ids", "list at least one company id, or turn discover on"),
    ("companies: {include: ['acme-[']}", "companies.include[0]", "not a valid glob: unclosed '['"),
    ("data_types: {exclude: ['  ']}", "data_types.exclude[0]", "must not be empty"),
    ("auto_refresh: {rules: [{data_types: []}]}", "auto_refresh.rules[0].data_types", "must not be empty"),
    ("auto_refresh: {max_per_cycle: -1}", "auto_refresh.max_per_cycle", "must be at least 0"),
    ("auto_refresh: {refresh_all_threshold: 0}", "auto_refresh.refresh_all_threshold", "must be at least 1"),
    ("auto_refresh: {rules: {max_staleness: 1h}}", "auto_refresh.rules", "must be a list (got mapping)"),
    ("polling: 5", "polling", "must be a mapping of settings (got number)"),
    ("codat: {base_url: 'api.codat.io'}", "codat.base_url", "must start with http:// or https://"),
    ("webhooks: {enabled: true}", "webhooks.secret", "required when webhooks are enabled"),
    ("webhooks: {secret: 'abc'}", "webhooks.secret", "must start with whsec_"),
    (
        "webhooks: {secret: 'whsec_!!!not-base64'}",
        "webhooks.secret",
        "the part after whsec_ is not valid base64",
    ),
    ("webhooks: {path: webhooks}", "webhooks.path", "must start with /"),
    ("webhooks: {listen_address: 'x'}", "webhooks.listen_address", "there is no port (expected HOST:PORT"),
]


@pytest.mark.parametrize(("text", "path", "reason"), ERROR_CASES, ids=[row[1] for row in ERROR_CASES])
def test_invalid_value_names_field_path_and_reason(tmp_path: Path, text: str, path: str, reason: str) -> None:
    problems = problems_of(tmp_path, text)
    assert [p for p, _ in problems] == [path]
    assert problems[0][1].startswith(reason), problems


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    problems = problems_of(
        tmp_path,
        """
        budget: {max_concurrency: 0}
        polling: {intervl: 5m}
        metrics: {status_mode: loud}
        """,
    )
    assert {path for path, _ in problems} == {
        "budget.max_concurrency",
        "polling.intervl",
        "metrics.status_mode",
    }


def test_error_str_lists_one_problem_per_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, "budget: {max_concurrency: 0}\npolling: {intervl: 5m}\n"), env=NO_ENV)
    assert str(caught.value).splitlines() == [
        "polling.intervl: unknown key (did you mean interval?)",
        "budget.max_concurrency: must be at least 1",
    ]


def test_unknown_key_without_close_match_lists_known_keys(tmp_path: Path) -> None:
    [(path, reason)] = problems_of(tmp_path, "sharding: {zzz: 1}")
    assert path == "sharding.zzz"
    assert reason == "unknown key (known keys: shard, total_shards)"


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    [(path, reason)] = problems_of(tmp_path, "polling:\n  interval: 5m\n  bad: [1, 2\n")
    assert path.endswith("config.yaml")
    assert reason.startswith("line 4, column 1: invalid YAML")


def test_duplicate_key_is_an_error_naming_the_line(tmp_path: Path) -> None:
    [(_, reason)] = problems_of(tmp_path, "polling:\n  interval: 5m\n  interval: 6m\n")
    assert reason == "line 3, column 3: invalid YAML: duplicate key 'interval'"


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.yaml", env=NO_ENV)
    assert caught.value.problems == [(str(tmp_path / "nope.yaml"), "config file not found")]


@pytest.mark.parametrize("text", ["", "\n# only comments\n", "---\n"])
def test_empty_file_gives_defaults(tmp_path: Path, text: str) -> None:
    assert load_config(write(tmp_path, text), env=NO_ENV) == Config.default()


@pytest.mark.parametrize(
    ("text", "kind"), [("- a\n- b\n", "list"), ("just words\n", "string"), ("42\n", "number")]
)
def test_non_mapping_top_level_is_a_clear_error(tmp_path: Path, text: str, kind: str) -> None:
    [(_, reason)] = problems_of(tmp_path, text)
    assert reason == f"the top level must be a mapping of settings, not a {kind}"


def test_null_section_means_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "auto_refresh:\n  # enabled: true\n"), env=NO_ENV)
    assert config.auto_refresh == Config.default().auto_refresh


def test_no_file_gives_defaults() -> None:
    assert load_config(None, env=NO_ENV) == Config.default()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("'90s'", 90.0), ("5m", 300.0), ("6h", 21600.0), ("1d", 86400.0), ("1h30m", 5400.0)],
)
def test_durations_become_seconds(tmp_path: Path, text: str, seconds: float) -> None:
    config = load_config(write(tmp_path, f"polling: {{interval: {text}}}"), env=NO_ENV)
    assert config.polling.interval == seconds


def _host_port(config: Config) -> tuple[str, int]:
    return parse_listen_address(config.server.listen_address)


def test_listen_address_gives_host_and_port() -> None:
    assert _host_port(Config.default()) == ("0.0.0.0", 8329)
    all_interfaces = load_config(None, env=NO_ENV, overrides={"server.listen_address": ":9000"})
    assert _host_port(all_interfaces) == ("0.0.0.0", 9000)
    ipv6 = load_config(None, env=NO_ENV, overrides={"server.listen_address": "[::1]:9100"})
    assert _host_port(ipv6) == ("::1", 9100)


def test_config_is_frozen() -> None:
    config = Config.default()
    with pytest.raises(ValueError, match="frozen"):
        config.polling.interval = 5


# --- precedence: flags > env > file ---------------------------------------------------


def test_env_beats_file_and_overrides_beat_env(tmp_path: Path) -> None:
    path = write(tmp_path, "server: {listen_address: '127.0.0.1:1111'}\nlogging: {level: debug}\n")
    env = {"CODAT_EXPORTER_LISTEN_ADDRESS": "127.0.0.1:2222", "CODAT_EXPORTER_LOG_LEVEL": "WARNING"}
    assert _host_port(load_config(path, env={}))[1] == 1111
    from_env = load_config(path, env=env)
    assert _host_port(from_env)[1] == 2222
    assert from_env.logging.level == "warning"
    from_flag = load_config(path, env=env, overrides={"server": {"listen_address": "127.0.0.1:3333"}})
    assert _host_port(from_flag)[1] == 3333


def test_dotted_overrides_set_single_keys_and_keep_the_rest(tmp_path: Path) -> None:
    path = write(tmp_path, "sharding: {total_shards: 4}\npolling: {interval: 2m}\n")
    config = load_config(path, env=NO_ENV, overrides={"sharding.shard": 3})
    assert (config.sharding.shard, config.sharding.total_shards, config.polling.interval) == (3, 4, 120.0)


def test_flags_not_given_override_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, "server: {listen_address: '127.0.0.1:1111'}\n")
    config = load_config(path, env=NO_ENV, overrides={"server.listen_address": None, "sharding.shard": None})
    assert (_host_port(config)[1], config.sharding.shard) == (1111, 0)


def test_bad_override_names_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(None, env=NO_ENV, overrides={"sharding.shard": 5, "sharding.total_shards": 2})
    assert caught.value.problems[0][0] == "sharding.shard"


def test_env_base_url_and_api_key(tmp_path: Path) -> None:
    path = write(tmp_path, "codat: {base_url: 'https://file.example', api_key: from-file}\n")
    config = load_config(path, env={"CODAT_BASE_URL": "http://127.0.0.1:8330/", "CODAT_API_KEY": "from-env"})
    assert config.codat.base_url == "http://127.0.0.1:8330"
    assert config.codat.api_key_value() == "from-env"
    assert load_config(path, env=NO_ENV).codat.api_key_value() == "from-file"
    assert Config.default().codat.api_key_value() is None


def test_api_key_file_is_read_and_stripped(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("file-key\n", encoding="utf-8")
    config = load_config(None, env={"CODAT_API_KEY_FILE": str(key_file)})
    assert config.codat.api_key_value() == "file-key"


def test_env_api_key_beats_env_api_key_file(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("file-key", encoding="utf-8")
    env = {"CODAT_API_KEY_FILE": str(key_file), "CODAT_API_KEY": "env-key"}
    assert load_config(None, env=env).codat.api_key_value() == "env-key"


def test_env_api_key_file_beats_key_in_config_file(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("file-key", encoding="utf-8")
    path = write(tmp_path, "codat: {api_key: yaml-key}\n")
    config = load_config(path, env={"CODAT_API_KEY_FILE": str(key_file)})
    assert config.codat.api_key_value() == "file-key"


def test_unreadable_api_key_file_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing-key"
    with pytest.raises(ConfigError) as caught:
        load_config(None, env={"CODAT_API_KEY_FILE": str(missing)})
    [(path, reason)] = caught.value.problems
    assert path == "codat.api_key_file"
    assert reason == f"cannot read {missing}: No such file or directory"


def test_empty_api_key_file_is_an_error(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(None, env={"CODAT_API_KEY_FILE": str(key_file)})
    assert caught.value.problems == [("codat.api_key_file", f"{key_file} is empty")]


def test_webhook_secret_env_enables_webhooks() -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    config = load_config(None, env={"CODAT_WEBHOOK_SECRET": secret})
    assert config.webhooks.enabled
    assert config.webhooks.secret_value() == secret


def test_webhook_secret_file_is_read(tmp_path: Path) -> None:
    secret_file = tmp_path / "whsec"
    secret_file.write_text("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n", encoding="utf-8")
    path = write(tmp_path, f"webhooks: {{enabled: true, secret_file: '{secret_file}'}}\n")
    assert load_config(path, env=NO_ENV).webhooks.secret_value() == "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
