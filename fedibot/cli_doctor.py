"""`fedibot doctor` (what is wrong and how to fix it) and `fedibot login mastodon URL`."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path
from typing import Any

import click

from fedibot.cli_common import load_config_or_exit, print_json


@click.command()
@click.option("--json", "as_json", is_flag=True)
@click.option("--skip-accounts", is_flag=True, help="do not contact the fediverse servers")
def doctor(as_json: bool, skip_accounts: bool) -> None:
    """Check the config, the database, each account's credentials and the generator."""
    config = load_config_or_exit()
    checks: list[dict[str, Any]] = [{"check": "config", "ok": True, "detail": "valid"}]
    checks.append(_check_database(config))
    if not skip_accounts:
        checks.extend(asyncio.run(_check_accounts(config)))
    checks.append(_check_generator(config))
    checks.append(_check_safety(config))
    ok = all(c["ok"] for c in checks)
    if as_json:
        print_json({"ok": ok, "checks": checks})
    else:
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        table = Table(title="fedibot doctor")
        for col in ("check", "", "detail / fix"):
            table.add_column(col)
        for c in checks:
            table.add_row(
                escape(c["check"]),
                "[green]ok[/]" if c["ok"] else "[red]FAIL[/]",
                escape(c["detail"]),
            )
        Console().print(table)
    sys.exit(0 if ok else 1)


def _check_database(config: Any) -> dict[str, Any]:
    from fedibot.db import Database
    from fedibot.migrate import current_revision, head_revision, upgrade_blocking

    db = Database(config.database.url)
    try:
        upgrade_blocking(db)
        rev, head = current_revision(db), head_revision()
        detail = f"{db.display_url}, schema {rev}" + ("" if rev == head else f" (head {head})")
        return {"check": "database", "ok": rev == head, "detail": detail}
    except Exception as exc:
        return {
            "check": "database",
            "ok": False,
            "detail": f"{db.display_url}: {exc.__class__.__name__}: {exc} — check "
            "database.url and that the server is running",
        }
    finally:
        db.close()


async def _check_accounts(config: Any) -> list[dict[str, Any]]:
    results = []
    if not config.accounts:
        return [
            {
                "check": "accounts",
                "ok": True,
                "detail": "none configured (add [[accounts]] to answer mentions)",
            }
        ]
    for acc in config.accounts:
        name = f"account {acc.name} ({acc.platform})"
        try:
            if acc.platform == "mastodon":
                from federation.mastodon_inspect import inspect_account

                results.append({"check": name, "ok": True, "detail": await inspect_account(acc)})
                continue
            else:
                from federation.base import MemoryCursorStore
                from federation.lemmy import LemmyAdapter

                adapter = LemmyAdapter(
                    acc.model_copy(update={"set_bot_flag": False}), MemoryCursorStore()
                )
                try:
                    who = (await adapter.start()).acct
                finally:
                    await adapter.close()
            results.append({"check": name, "ok": True, "detail": f"logged in as {who}"})
        except Exception as exc:
            results.append(
                {
                    "check": name,
                    "ok": False,
                    "detail": f"{exc} — run `fedibot login {acc.platform} "
                    f"{acc.base_url}` or fix the credentials",
                }
            )
    return results


def _check_generator(config: Any) -> dict[str, Any]:
    gen = config.generator
    try:
        from generator.device import resolve_device

        device = resolve_device(gen.device)
    except ImportError as exc:
        return {
            "check": "generator",
            "ok": False,
            "detail": f"{exc} — install the GPU extra: pip install -e '.[gpu]'",
        }
    except RuntimeError as exc:
        return {
            "check": "generator",
            "ok": False,
            "detail": f'{exc} — set generator.device = "auto" or "cpu"',
        }
    problems = []
    for name, model in gen.models.items():
        source = Path(model.source)
        looks_local = model.source.startswith((".", "/", "~")) or source.suffix == ".safetensors"
        if model.kind != "tiny" and looks_local and not source.expanduser().exists():
            problems.append(f"model {name}: {model.source} does not exist")
    detail = f"device {device}, models: {', '.join(gen.models)}"
    if problems:
        return {"check": "generator", "ok": False, "detail": "; ".join(problems)}
    return {"check": "generator", "ok": True, "detail": detail}


def _check_safety(config: Any) -> dict[str, Any]:
    try:
        from generator.safety import make_classifier

        classifier = make_classifier(config.generator.safety)
        return {"check": "output safety", "ok": True, "detail": f"classifier {classifier.name}"}
    except Exception as exc:
        return {
            "check": "output safety",
            "ok": False,
            "detail": f"{exc} — install nudenet or set generator.safety.classifier",
        }


@click.group()
def login() -> None:
    """Get credentials for a bot account."""


@login.command("mastodon")
@click.argument("url")
@click.option("--name", default="main", show_default=True, help="the account's name in config")
@click.option("--token", default=None, help="an existing access token to verify and store")
def login_mastodon(url: str, name: str, token: str | None) -> None:
    """Register the app on URL and authorize it (out-of-band code), or store --token."""
    from federation.mastodon_login import auth_url, exchange_code, register_app, verify_token

    config = load_config_or_exit()
    base = url if url.startswith(("http://", "https://")) else f"https://{url}"
    try:
        if token is None:
            client_id, client_secret = register_app(base)
            click.echo("Open this address, log in as the bot and approve:")
            click.echo(auth_url(base, client_id, client_secret))
            code = click.prompt("Paste the code shown after approving", hide_input=True)
            token = exchange_code(base, client_id, client_secret, code.strip())
        who = verify_token(base, token)
    except Exception as exc:
        click.echo(f"login failed: {exc}", err=True)
        sys.exit(1)
    var = "FEDIBOT_" + re.sub(r"\W", "_", name).upper() + "_TOKEN"
    secrets_dir = Path(config.data_dir) / "secrets"
    secrets_dir.mkdir(parents=True, exist_ok=True)
    env_file = secrets_dir / f"{name}.env"
    fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(f"{var}={token}\n")
    click.echo(f"Logged in as {who}. The token is in {env_file} (mode 600).")
    click.echo(
        "Load it into the environment (e.g. `set -a; . " + str(env_file) + "; set +a`)"
        " and add to config.toml:\n"
    )
    click.echo(
        f'[[accounts]]\nname = "{name}"\nplatform = "mastodon"\nbase_url = "{base}"\n'
        f'access_token = "env:{var}"'
    )
