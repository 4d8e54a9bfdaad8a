"""`fedibot console`, `fedibot console hash-password`, the [console] config and
`outbound.compose` honouring an operator's decision."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from federation.types import Account, Mention, Visibility
from fedibot.cli.main import main
from fedibot.config.loader import ConfigError, parse_config
from fedibot.outbound.compose import compose_result

REPO = Path(__file__).resolve().parents[2]


def test_console_without_config_says_how_to_configure(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'data_dir = "{tmp_path}"\n')
    result = CliRunner().invoke(main, ["--config", str(config), "console"])
    assert result.exit_code == 2
    assert "The console is not configured" in result.output
    assert "[[console.operators]]" in result.output and "hash-password" in result.output


def test_hash_password_makes_an_argon2_hash_the_config_accepts() -> None:
    from argon2 import PasswordHasher

    result = CliRunner().invoke(
        main, ["console", "hash-password", "--stdin"], input="a long enough secret\n"
    )
    assert result.exit_code == 0, result.output
    hashed = result.output.strip()
    assert hashed.startswith("$argon2id$")
    assert PasswordHasher().verify(hashed, "a long enough secret")
    config = parse_config(
        {"console": {"enabled": True, "operators": [{"name": "a", "password_hash": hashed}]}}
    )
    assert config.console.configured
    short = CliRunner().invoke(main, ["console", "hash-password", "--stdin"], input="short\n")
    assert short.exit_code == 2


@pytest.mark.parametrize(
    ("console", "message"),
    [
        ({"enabled": True}, "needs at least one [[console.operators]]"),
        ({"operators": [{"name": "a"}]}, "needs a password_hash or a token"),
        ({"operators": [{"name": "a", "password_hash": "plain"}]}, "must be an argon2 hash"),
        ({"operators": [{"name": "a", "token": "short"}]}, "at least 16 characters"),
        ({"operators": [{"name": "a b", "token": "x" * 20}]}, "letters, digits"),
        ({"trusted_proxies": ["not-an-ip"]}, "trusted_proxies"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_console_config_problems_name_the_key(console: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"console": console})
    assert message in str(err.value)


def test_console_is_off_by_default_and_a_token_is_a_masked_secret(monkeypatch) -> None:
    assert not parse_config({}).console.configured
    monkeypatch.setenv("CONSOLE_TOKEN", "t" * 24)
    config = parse_config(
        {"console": {"enabled": True, "operators": [{"name": "a", "token": "env:CONSOLE_TOKEN"}]}}
    )
    from fedibot.ops.logs import config_secrets

    assert "t" * 24 in config_secrets(config)
    assert "t" * 24 not in repr(config.console)


def test_fedibot_help_still_loads_no_console_dependencies() -> None:
    code = (
        "import sys; from fedibot.cli.main import main; "
        "assert 'jinja2' not in sys.modules and 'argon2' not in sys.modules, 'heavy import'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def _job(decision: str | None) -> SimpleNamespace:
    return SimpleNamespace(
        id=7,
        prompt="a cat",
        negative_prompt="",
        model="tiny",
        platform="mastodon",
        visibility="public",
        params={"operator_decision": decision} if decision else {},
    )


def _mention() -> Mention:
    author = Account(platform="mastodon", id="1", acct="ann@one.example")
    return Mention(
        platform="mastodon",
        bot_account="main",
        remote_id="99",
        author=author,
        text="a cat",
        visibility=Visibility.PUBLIC,
        created_at=datetime(2026, 11, 30, tzinfo=UTC),
    )


@pytest.mark.parametrize("decision", ["sensitive", "blur"])
def test_compose_posts_a_withheld_image_the_operator_approved(decision: str) -> None:
    config = parse_config({"policy": {"flagged_images": "withhold"}})
    image = SimpleNamespace(path="/data/images/7/0.png", flagged=True, seed=1)
    blurred: list[str] = []

    def blur(path: object) -> str:
        blurred.append(str(path))
        return "/data/images/7/0.blurred.png"

    post = compose_result(_job(decision), [image], _mention(), config, blur=blur)
    assert len(post.media) == 1 and post.sensitive
    assert post.spoiler_text == config.policy.flagged_spoiler_text
    assert str(post.media[0].path).endswith("blurred.png") == (decision == "blur")
    undecided = compose_result(_job(None), [image], _mention(), config, blur=blur)
    assert undecided.media == ()  # without a decision, "withhold" still withholds
