"""config.toml validation: every problem is one line naming the key, the value and the rule."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fedibot.config.loader import ConfigError, load_config, parse_config

REPO = Path(__file__).resolve().parents[2]


def test_the_shipped_config_is_valid_and_uses_sqlite_and_tiny():
    config = load_config(REPO / "config.toml")
    assert config.database.url.startswith("sqlite:///")
    assert config.generator.default_model == "tiny"
    assert config.generator.data_dir == config.data_dir


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            {"generator": {"max_batch": 0}},
            "generator.max_batch = 0: must be an integer from 1 to 64",
        ),
        ({"queue": {"max_attempts": "three"}}, "queue.max_attempts = 'three': must be an integer"),
        ({"policy": {"mode": "closed"}}, "policy.mode = 'closed': must be one of 'open'"),
        ({"generator": {"max_btch": 4}}, "generator.max_btch: is not a known key (known keys:"),
        ({"nonsense": 1}, "nonsense: is not a known key"),
        ({"database": {"url": "mysql://x/y"}}, "database.url = 'mysql://x/y': unsupported"),
        (
            {"pictures": {"max_megabytes": 0}},
            "pictures.max_megabytes = 0: must be a number greater than 0 and at most 100",
        ),
    ],
)
def test_bad_values_name_the_key_and_what_is_allowed(raw, expected):
    with pytest.raises(ConfigError) as info:
        parse_config(raw, "config.toml")
    assert expected in str(info.value)
    assert str(info.value).startswith("config.toml: ")


def test_missing_env_secret_waits_for_the_adapter_and_then_names_the_key(monkeypatch):
    from fedibot.app import build_adapter

    monkeypatch.delenv("FEDIBOT_TEST_NO_SUCH_TOKEN", raising=False)
    raw = {
        "accounts": [
            {
                "platform": "mastodon",
                "name": "main",
                "base_url": "https://a.example",
                "access_token": "env:FEDIBOT_TEST_NO_SUCH_TOKEN",
            }
        ]
    }
    config = parse_config(raw)  # what needs only the database loads without the token
    with pytest.raises(ConfigError) as info:
        build_adapter(config.accounts[0], None)  # type: ignore[arg-type]
    assert "account main.access_token" in str(info.value)
    assert "FEDIBOT_TEST_NO_SUCH_TOKEN is not set" in str(info.value)
    monkeypatch.setenv("FEDIBOT_TEST_NO_SUCH_TOKEN", "late-token")
    adapter = build_adapter(config.accounts[0], None)  # type: ignore[arg-type]
    assert adapter.config.access_token.get_secret_value() == "late-token"


def test_missing_env_value_that_is_not_a_secret_is_refused_at_load(monkeypatch):
    monkeypatch.delenv("FEDIBOT_TEST_NO_SUCH_URL", raising=False)
    raw = {
        "database": {"url": "env:FEDIBOT_TEST_NO_SUCH_URL"},
        "server": {"port": "env:FEDIBOT_TEST_NO_SUCH_URL"},
    }
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    assert "FEDIBOT_TEST_NO_SUCH_URL is not set" in str(info.value)
    with pytest.raises(ConfigError, match=r"server\.port = 'env:FEDIBOT_TEST_NO_SUCH_URL'"):
        parse_config({"server": raw["server"]})  # not "an integer is needed"


def test_env_secret_is_read_and_never_shown(monkeypatch):
    monkeypatch.setenv("FEDIBOT_TEST_TOKEN", "s3cr3t-token-value")
    raw = {
        "accounts": [
            {
                "platform": "mastodon",
                "name": "main",
                "base_url": "https://a.example",
                "access_token": "env:FEDIBOT_TEST_TOKEN",
            }
        ]
    }
    config = parse_config(raw)
    assert config.accounts[0].access_token.get_secret_value() == "s3cr3t-token-value"
    assert "s3cr3t" not in repr(config)


def test_duplicate_account_names_are_refused():
    acc = {
        "platform": "lemmy",
        "name": "x",
        "base_url": "https://l.example",
        "username": "b",
        "password": "p",
    }
    with pytest.raises(ConfigError, match="account names must be unique; repeated: x"):
        parse_config({"accounts": [acc, dict(acc)]})


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[generator]\nmax_batch = 0\n", "generator.max_batch = 0"),
        ("[queue]\nretention_days = 'long'\n", "queue.retention_days = 'long'"),
        ("[frobnicate]\nx = 1\n", "frobnicate: is not a known key"),
        ('[database]\nurl="env:FEDIBOT_TEST_ABSENT"\n', "database.url"),
        ("not toml [", "not valid TOML"),
    ],
)
def test_cli_exits_non_zero_naming_the_key(tmp_path, toml, expected):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(toml)
    env = {k: v for k, v in os.environ.items() if k != "FEDIBOT_TEST_ABSENT"}
    proc = subprocess.run(
        [sys.executable, "-m", "fedibot", "--config", str(cfg), "queue", "stats"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 2
    assert expected in proc.stderr
    assert "Traceback" not in proc.stderr


def test_fedibot_config_environment_variable_selects_the_file(tmp_path, monkeypatch):
    cfg = tmp_path / "other.toml"
    cfg.write_text("[queue]\nmax_attempts = 7\n")
    monkeypatch.setenv("FEDIBOT_CONFIG", str(cfg))
    assert load_config().queue.max_attempts == 7


def test_admin_commands_need_only_the_database_not_the_bot_token(tmp_path):
    cfg = tmp_path / "bot.toml"
    cfg.write_text(
        f'data_dir = "{tmp_path}"\n[database]\nurl = "sqlite:///{tmp_path}/bot.db"\n'
        '[[accounts]]\nname="m"\nplatform="mastodon"\nbase_url="https://m.example"\n'
        'access_token="env:FEDIBOT_TEST_ABSENT"\n'
    )
    env = {k: v for k, v in os.environ.items() if k != "FEDIBOT_TEST_ABSENT"}
    for args in (["db", "upgrade"], ["queue", "stats"], ["queue", "list"]):
        proc = subprocess.run(
            [sys.executable, "-m", "fedibot", "--config", str(cfg), *args],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env,
            timeout=120,
        )
        assert proc.returncode == 0, (args, proc.stderr)


def test_configured_styles_add_to_the_built_in_ones_and_may_replace_one_by_name():
    from fedibot.config.prompt import DEFAULT_STYLES

    shipped = load_config(REPO / "config.toml")
    assert set(DEFAULT_STYLES) <= set(shipped.prompt.styles)  # the README's --style anime
    assert shipped.prompt.styles["anime"] == DEFAULT_STYLES["anime"]
    assert "watercolor painting of {p}" in shipped.prompt.styles["watercolor"].prompt
    mine = {"neon": {"prompt": "neon sign of {p}", "negative": "{np}"}}
    config = parse_config({"prompt": {"styles": mine}})
    assert set(config.prompt.styles) == {*DEFAULT_STYLES, "neon"}
    only = parse_config({"prompt": {"styles": mine, "builtin_styles": False}})
    assert set(only.prompt.styles) == {"neon"}


@pytest.mark.parametrize(
    ("platform", "extra", "own", "other"),
    [
        ("mastodon", {"access_token": "t"}, "access_token", "username"),
        ("lemmy", {"username": "u", "password": "p"}, "username", "access_token"),
    ],
)
def test_an_unknown_account_key_lists_that_platforms_keys(platform, extra, own, other):
    account = {"platform": platform, "name": "m", "base_url": "https://x.example", "bogus": 1}
    with pytest.raises(ConfigError) as info:
        parse_config({"accounts": [{**account, **extra}]})
    message = str(info.value)
    assert "accounts[0].bogus: is not a known key" in message
    known = message.split("known keys: ", 1)[1]
    assert own in known and other not in known
