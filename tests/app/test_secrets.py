"""Secrets never appear in any output: config errors name the key and the problem (never a
table's values or a secret), database URL passwords are masked everywhere by one function,
and a malformed database URL is a one-line config error for every command, doctor too."""

from __future__ import annotations

import logging

import pytest
from click.testing import CliRunner

from fedibot.cli.main import main as fedibot_main
from fedibot.config.errors import ConfigError
from fedibot.config.loader import parse_config
from fedibot.ops.logs import SecretFilter, config_secrets
from fedibot.storage.database import Database, mask_url

TOKEN = "tok_SUPERSECRET_1234567890"
PASSWORD = "pw_SUPERSECRET_42"


def _error(raw: dict) -> str:
    with pytest.raises(ConfigError) as err:
        parse_config(raw)
    return str(err.value)


@pytest.mark.parametrize(
    "account",
    [
        {"name": "main", "platform": "mastodn", "base_url": "https://a.example",
         "access_token": TOKEN},
        {"name": "main", "platform": "mastodon", "access_token": TOKEN},
        {"name": "main", "platform": "mastodon", "base_url": "https://a.example",
         "access_token": TOKEN, "typo": 1},
        {"name": "main", "platform": "lemmy", "base_url": "https://l.example",
         "username": "bot", "password": TOKEN, "colour": "red"},
    ],
)  # fmt: skip
def test_an_accounts_error_names_the_key_and_never_prints_the_table(account) -> None:
    message = _error({"accounts": [account]})
    assert TOKEN not in message
    assert "accounts[0]" in message
    assert "{" not in message  # no table printed


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://bot:{PASSWORD}@db.example:notaport/fedibot",
        f"://bot:{PASSWORD}@db.example/fedibot",
        f"mysql://bot:{PASSWORD}@db.example/fedibot",
    ],
)
def test_a_bad_database_url_is_one_masked_line_naming_the_key(url) -> None:
    message = _error({"database": {"url": url}})
    assert PASSWORD not in message
    assert message.count("\n") == 0 and "database.url" in message


def test_mask_url_hides_the_password_of_good_and_bad_urls() -> None:
    assert mask_url(f"postgresql://bot:{PASSWORD}@h/db") == "postgresql://bot:***@h/db"
    assert PASSWORD not in mask_url(f"postgresql://bot:{PASSWORD}@h:port/db")
    assert PASSWORD not in mask_url(f"garbage://bot:{PASSWORD}@")
    assert mask_url("sqlite:///data/x.db") == "sqlite:///data/x.db"
    db = Database("sqlite:///:memory:")
    try:
        assert "***" not in db.display_url
    finally:
        db.close()


def test_the_log_filter_masks_the_database_password() -> None:
    config = parse_config({"database": {"url": f"postgresql://bot:{PASSWORD}@127.0.0.1:1/db"}})
    secrets = config_secrets(config)
    assert PASSWORD in secrets
    record = logging.LogRecord(
        "x", logging.ERROR, __file__, 1, "cannot connect to %s", (config.database.url,), None
    )
    SecretFilter(secrets).filter(record)
    assert PASSWORD not in record.getMessage()


def _write(tmp_path, url: str):
    path = tmp_path / "config.toml"
    path.write_text(f'[database]\nurl = "{url}"\n', encoding="utf-8")
    return path


@pytest.mark.parametrize("command", [["doctor", "--skip-accounts"], ["queue", "stats"]])
def test_every_command_reports_a_malformed_url_in_one_line(tmp_path, command) -> None:
    path = _write(tmp_path, f"postgresql://bot:{PASSWORD}@db.example:notaport/fedibot")
    result = CliRunner().invoke(fedibot_main, ["--config", str(path), *command])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output and PASSWORD not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "database.url" in lines[0]


@pytest.mark.parametrize("command", [["doctor", "--skip-accounts", "--json"], ["queue", "stats"]])
def test_an_unreachable_database_never_shows_its_password(tmp_path, command) -> None:
    path = _write(tmp_path, f"postgresql://bot:{PASSWORD}@127.0.0.1:1/fedibot?connect_timeout=2")
    result = CliRunner().invoke(fedibot_main, ["--config", str(path), *command])
    assert result.exit_code != 0
    assert PASSWORD not in result.output
    assert "Traceback" not in result.output
