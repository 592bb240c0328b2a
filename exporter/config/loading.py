"""Loading the config: YAML file, then environment, then command-line overrides, then validation.

Precedence is flags (``overrides``) over environment over file. Secrets given as
files (``codat.api_key_file``, ``webhooks.secret_file``) are read here, so the
rest of the exporter only ever sees ``SecretStr`` values. Every problem becomes a
(field path, reason) pair in one ``ConfigError``; no message ever carries a
secret value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from exporter.common import env as envvars
from exporter.config.problems import SECRET_FIELDS, ConfigError, Problem, problems_from
from exporter.config.schema import Config
from exporter.config.yamlfile import read_config_file

__all__ = ["ConfigError", "Problem", "config_file", "env_layer", "load_config", "read_config_file"]


def config_file(flag: Path | None, env: Mapping[str, str]) -> Path | None:
    """The config file to read: the ``--config`` flag, else ``$CODAT_EXPORTER_CONFIG``, else none."""
    if flag is not None:
        return flag
    from_env = env.get(envvars.CONFIG)
    return Path(from_env) if from_env else None


def load_config(
    path: Path | None,
    env: Mapping[str, str] = os.environ,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Load and validate the config: file (optional), then ``env``, then ``overrides``.

    ``overrides`` (from command-line flags) takes nested sections
    (``{"sharding": {"shard": 1}}``) or dotted keys (``{"sharding.shard": 1}``);
    ``None`` values (flags not given) are ignored.
    """
    file_layer = read_config_file(path) if path is not None else {}
    layers = [_drop_empty_sections(file_layer), env_layer(env), _nest(overrides or {})]
    merged: dict[str, Any] = {}
    for layer in layers:
        _merge_layer(merged, layer)
    problems: list[Problem] = []
    _resolve_secret_file(merged, "codat", "api_key", "api_key_file", problems)
    _resolve_secret_file(merged, "webhooks", "secret", "secret_file", problems)
    secrets = _secret_values(merged)
    try:
        config = Config.model_validate(merged)
    except ValidationError as exc:
        problems.extend(problems_from(exc, secrets))
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    return config


def env_layer(env: Mapping[str, str]) -> dict[str, Any]:
    """The settings the environment gives, as a nested mapping (unset or empty variables give nothing)."""
    layer: dict[str, Any] = {}

    def put(section: str, key: str, value: Any) -> None:
        layer.setdefault(section, {})[key] = value

    if env.get(envvars.API_KEY):
        put("codat", "api_key", env[envvars.API_KEY].strip())
    if env.get(envvars.API_KEY_FILE):
        put("codat", "api_key_file", env[envvars.API_KEY_FILE])
    if env.get(envvars.BASE_URL):
        put("codat", "base_url", env[envvars.BASE_URL])
    if env.get(envvars.LISTEN_ADDRESS):
        put("server", "listen_address", env[envvars.LISTEN_ADDRESS])
    if env.get(envvars.LOG_LEVEL):
        put("logging", "level", env[envvars.LOG_LEVEL])
    if env.get(envvars.WEBHOOK_SECRET):
        put("webhooks", "secret", env[envvars.WEBHOOK_SECRET].strip())
        put("webhooks", "enabled", True)
    if env.get(envvars.WEBHOOK_SECRET_FILE):
        put("webhooks", "secret_file", env[envvars.WEBHOOK_SECRET_FILE])
        put("webhooks", "enabled", True)
    return layer


def _merge_layer(merged: dict[str, Any], layer: Mapping[str, Any]) -> None:
    """Merge one layer into ``merged`` section by section.

    A secret and its file are one setting: a layer that gives either replaces
    both of a lower layer (an env key file beats a key in the YAML file).
    """
    for section, values in layer.items():
        if not isinstance(values, Mapping) or not isinstance(merged.get(section), dict):
            merged[section] = dict(values) if isinstance(values, Mapping) else values
            continue
        target = merged[section]
        for secret, secret_file in (("api_key", "api_key_file"), ("secret", "secret_file")):
            if secret in values or secret_file in values:
                target.pop(secret, None)
                target.pop(secret_file, None)
        target.update(values)


def _nest(overrides: Mapping[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for key, value in overrides.items():
        if value is None:  # a flag that was not given overrides nothing
            continue
        if "." in key:
            section, _, name = key.partition(".")
            nested.setdefault(section, {})[name] = value
        elif isinstance(value, Mapping):
            nested.setdefault(key, {}).update(value)
        else:
            nested[key] = value
    return nested


def _drop_empty_sections(data: dict[str, Any]) -> dict[str, Any]:
    # "auto_refresh:" with every key commented out is YAML null: treat it as "all defaults".
    return {key: value for key, value in data.items() if not (value is None and key in Config.model_fields)}


def _resolve_secret_file(
    merged: dict[str, Any], section: str, secret: str, secret_file: str, problems: list[Problem]
) -> None:
    values = merged.get(section)
    if not isinstance(values, dict) or values.get(secret) is not None:
        return
    file_name = values.get(secret_file)
    if not isinstance(file_name, str) or not file_name:
        return
    try:
        text = Path(file_name).read_text(encoding="utf-8").strip()
    except OSError as exc:
        problems.append((f"{section}.{secret_file}", f"cannot read {file_name}: {exc.strerror or exc}"))
        return
    except UnicodeDecodeError:
        problems.append((f"{section}.{secret_file}", f"cannot read {file_name}: not UTF-8 text"))
        return
    if not text:
        problems.append((f"{section}.{secret_file}", f"{file_name} is empty"))
        return
    values[secret] = text


def _secret_values(merged: Mapping[str, Any]) -> list[str]:
    found = []
    for dotted in SECRET_FIELDS:
        section, _, key = dotted.partition(".")
        values = merged.get(section)
        if isinstance(values, Mapping) and isinstance(values.get(key), str) and values[key]:
            found.append(values[key])
    return found
