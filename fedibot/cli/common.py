"""Small helpers shared by the CLI commands: config, database, output, time parsing."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import AsyncIterator, Coroutine, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

if TYPE_CHECKING:
    from rich.table import Table

    from fedibot.config.loader import FedibotConfig
    from fedibot.storage.database import Database

T = TypeVar("T")

EXIT_USAGE = 2
"""Exit code for bad input (config errors, an invalid domain or acct)."""


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's async body to completion."""
    return asyncio.run(coro)


def print_json(data: Any) -> None:
    """Exactly one JSON document on stdout."""
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=_json_default))


def _json_default(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return sorted(value) if isinstance(value, set | frozenset) else list(value)
    return str(value)


def make_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    """A rich table with one header per column; cells are str()-ed (None → "") and escaped,
    so user text such as a note or prompt with [brackets] shows as written."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if cell is None else escape(str(cell)) for cell in row))
    return table


def print_table(table: Table) -> None:
    from rich.console import Console

    Console().print(table)


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """One line on stderr, then exit with `code`."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def load_config_or_exit() -> FedibotConfig:
    """The config named by the root group's `--config` (or $FEDIBOT_CONFIG / ./config.toml);
    a ConfigError is printed and exits 2."""
    from fedibot.config.errors import ConfigError
    from fedibot.config.loader import load_config

    ctx = click.get_current_context(silent=True)
    path = ctx.find_root().params.get("config") if ctx is not None else None
    try:
        return load_config(path)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_USAGE)


@asynccontextmanager
async def open_database(cfg: FedibotConfig) -> AsyncIterator[Database]:
    """The configured database, migrated to head, disposed afterwards."""
    from fedibot.storage.database import Database
    from fedibot.storage.migrate import upgrade

    db = Database(cfg.database.url, echo=cfg.database.echo)
    try:
        await upgrade(db)
        yield db
    finally:
        await db.dispose()


def format_time(epoch: float | None) -> str:
    """'2026-11-02 14:05 UTC' ('' for None)."""
    if epoch is None:
        return ""
    return f"{datetime.fromtimestamp(epoch, UTC):%Y-%m-%d %H:%M:%S} UTC"


_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str, now: float) -> float:
    """'24h', '7d', '30m', '2w' (ago), or an ISO date/time ('2026-11-01', UTC unless it names
    a zone) → epoch seconds. ValueError with a clear message otherwise."""
    match = _RELATIVE.match(text)
    if match:
        return now - float(match.group(1)) * _UNITS[match.group(2).lower()]
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"--since {text!r}: use a duration like 24h or 7d, or a date like 2026-11-01"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def format_duration(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))


def setup_logs(config: Any) -> None:
    from fedibot.ops.logs import config_secrets, setup_logging

    ctx = click.get_current_context()
    root = ctx.find_root().params
    setup_logging(
        root.get("log_level") or config.logging.level,
        root.get("log_format") or config.logging.format,
        config_secrets(config),
    )
