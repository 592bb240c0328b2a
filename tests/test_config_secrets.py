"""Secrets in the config never show up in errors, reprs or check-config output."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from exporter.config import ConfigError, load_config
from exporter.config.check import check_config_command

API_KEY = "sk-live-TOPSECRET-7f3a"
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.mark.parametrize(
    ("text", "env"),
    [
        # Wrong-shaped secrets: pydantic would normally echo the input back.
        ("webhooks: {secret: 'sk-live-TOPSECRET-7f3a'}", {}),
        ("webhooks: {secret: 'whsec_sk-live-TOPSECRET-7f3a!'}", {}),
        ("budget: {max_concurrency: 0}", {"CODAT_API_KEY": API_KEY}),
        ("codat: {api_key: 'sk-live-TOPSECRET-7f3a'}\nmetrics: {status_mode: sk-live-TOPSECRET-7f3a}", {}),
        ("", {"CODAT_WEBHOOK_SECRET": "sk-live-TOPSECRET-7f3a"}),
    ],
)
def test_secret_value_never_appears_in_config_error(tmp_path: Path, text: str, env: dict[str, str]) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path, env=env)
    rendered = str(caught.value) + repr(caught.value) + repr(caught.value.problems)
    assert "TOPSECRET" not in rendered
    assert caught.value.problems  # still says what is wrong


def test_secret_value_never_appears_in_config_repr_or_dump() -> None:
    config = load_config(None, env={"CODAT_API_KEY": API_KEY, "CODAT_WEBHOOK_SECRET": WEBHOOK_SECRET})
    for text in (
        repr(config),
        str(config),
        config.model_dump_json(),
        repr(config.codat),
        str(config.webhooks),
    ):
        assert API_KEY not in text
        assert WEBHOOK_SECRET not in text
    assert config.codat.api_key_value() == API_KEY


def test_unreadable_key_file_error_names_file_not_content(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_bytes(b"\xff\xfe" + API_KEY.encode())
    with pytest.raises(ConfigError) as caught:
        load_config(None, env={"CODAT_API_KEY_FILE": str(key_file)})
    assert str(key_file) in str(caught.value)
    assert "TOPSECRET" not in str(caught.value)


def test_check_config_output_never_shows_the_key(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f"codat: {{api_key: {API_KEY}}}\n", encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    assert check_config_command(path, {}, stdout=out, stderr=err) == 0
    assert "api key: set" in out.getvalue()
    assert API_KEY not in out.getvalue() + err.getvalue()
