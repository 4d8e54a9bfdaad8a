"""`fedibot doctor` (what is wrong and how to fix it) and `fedibot login mastodon URL`."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import sys
from pathlib import Path
from typing import Any

import click

from fedibot.cli.common import load_config_or_exit, print_json


@click.command()
@click.option("--json", "as_json", is_flag=True)
@click.option("--skip-accounts", is_flag=True, help="do not contact the fediverse servers")
@click.option(
    "--deep",
    is_flag=True,
    help="also load torch (does it see the GPU?) and the safety classifier: takes seconds",
)
def doctor(as_json: bool, skip_accounts: bool, deep: bool) -> None:
    """Check the config, the database, each account's credentials and the generator."""
    config = load_config_or_exit()
    checks: list[dict[str, Any]] = [{"check": "config", "ok": True, "detail": "valid"}]
    checks.append(_check_database(config))
    if checks[-1]["ok"]:
        fediseer_check = _check_fediseer(config)
        if fediseer_check is not None:
            checks.append(fediseer_check)
        checks.extend(_check_budgets(config))
    if not skip_accounts:
        checks.extend(asyncio.run(_check_accounts(config)))
    checks.append(_check_generator(config, deep))
    checks.append(_check_safety(config, deep))
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
    from fedibot.storage.database import Database
    from fedibot.storage.migrate import script_head, stored_revision, upgrade_blocking

    db = Database(config.database.url)
    try:
        upgrade_blocking(db)
        rev, head = stored_revision(db), script_head()
        detail = f"{db.display_url}, schema {rev}" + ("" if rev == head else f" (head {head})")
        return {"check": "database", "ok": rev == head, "detail": detail}
    except Exception as exc:
        return {
            "check": "database",
            "ok": False,
            "detail": f"{_safe_error(exc, db)} — check database.url and that the server is running",
        }
    finally:
        db.close()


def _safe_error(exc: BaseException, db: Any) -> str:
    """`URL: Error: message` with the URL's password masked wherever it appears."""
    from fedibot.config.errors import scrub

    password = db.url.password
    secrets = {str(password)} if password else set()
    first_line = (str(exc).strip().splitlines() or [""])[0]
    return scrub(f"{db.display_url}: {exc.__class__.__name__}: {first_line}", secrets)


def _check_fediseer(config: Any) -> dict[str, Any] | None:
    """The last Fediseer sync: a held or failed one needs the operator."""
    from fedibot.cli.common import format_time
    from fedibot.moderation.fediseer_apply import last_sync_run
    from fedibot.storage.database import Database

    db = Database(config.database.url)
    try:
        run = db.run_blocking(last_sync_run)
    except Exception as exc:
        return {"check": "fediseer sync", "ok": False, "detail": _safe_error(exc, db)}
    finally:
        db.close()
    if run is None:
        if not config.fediseer.enabled:
            return None
        return {"check": "fediseer sync", "ok": True, "detail": "no sync has run yet"}
    when = format_time(run.finished_at or run.started_at)
    if run.status == "held":
        return {
            "check": "fediseer sync",
            "ok": False,
            "detail": f"the last sync (#{run.id}, {when}) is held: {run.error} — the lists are "
            "unchanged; look with `fedibot fediseer sync --dry-run`, then apply with "
            "`fedibot fediseer sync --force`",
        }
    if run.status == "failed":
        return {
            "check": "fediseer sync",
            "ok": False,
            "detail": f"the last sync (#{run.id}, {when}) failed: {run.error} — the last good "
            "lists are kept; see `fedibot fediseer history`",
        }
    return {
        "check": "fediseer sync",
        "ok": True,
        "detail": f"last sync #{run.id} {run.status} at {when}",
    }


def _check_budgets(config: Any) -> list[dict[str, Any]]:
    """Each account's posting budgets: what is spent, held jobs, when it frees up."""
    import time

    from fedibot.outbound.budgets import budget_report, config_budgets
    from fedibot.storage.budgets import BudgetLedger
    from fedibot.storage.database import Database

    db = Database(config.database.url)
    try:
        views = db.run_blocking(
            lambda conn: BudgetLedger(db)._snapshot(conn, config_budgets(config), time.time())
        )
    finally:
        db.close()
    return [
        {"check": f"budget {b['account']} {b['kind']}", "ok": True, "detail": b["summary"]}
        for b in budget_report(views, time.time())
    ]


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
            from fedibot.config.secrets import resolve_secrets

            acc = resolve_secrets(acc, f"account {acc.name}")
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


def _check_generator(config: Any, deep: bool = False) -> dict[str, Any]:
    gen = config.generator
    try:
        if deep:
            from generator.device import resolve_device

            device = resolve_device(gen.device)
        else:  # importing torch takes seconds: only ask whether it is installed
            for package in ("torch", "diffusers"):
                if importlib.util.find_spec(package) is None:
                    raise ImportError(f"{package} is not installed")
            device = gen.device if gen.device == "cpu" else f"{gen.device} (--deep asks torch)"
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


def _check_safety(config: Any, deep: bool = False) -> dict[str, Any]:
    safety = config.generator.safety
    try:
        if not deep:  # loading the classifier takes seconds: only check it could load
            _quick_safety_check(safety)
            detail = f"classifier {safety.classifier}"
            return {"check": "output safety", "ok": True, "detail": detail}
        from generator.safety import make_classifier

        classifier = make_classifier(safety)
        return {"check": "output safety", "ok": True, "detail": f"classifier {classifier.name}"}
    except Exception as exc:
        return {
            "check": "output safety",
            "ok": False,
            "detail": f"{exc} — install nudenet or set generator.safety.classifier",
        }


def _quick_safety_check(safety: Any) -> None:
    if safety.classifier == "nudenet" and importlib.util.find_spec("nudenet") is None:
        raise RuntimeError("safety.classifier is 'nudenet' but nudenet is not installed")
    if safety.classifier == "diffusers":
        folder = Path(safety.diffusers_checker or "").expanduser()
        if not safety.diffusers_checker or not (folder / "safety_checker").is_dir():
            raise RuntimeError(
                "safety.classifier is 'diffusers' but safety.diffusers_checker does not point "
                f"to a folder with safety_checker/ (got {safety.diffusers_checker!r})"
            )


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
