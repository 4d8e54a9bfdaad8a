"""`fedibot console` (serve the console alone, against the configured database) and
`fedibot console hash-password`."""

from __future__ import annotations

import sys

import click

from fedibot.cli.common import EXIT_USAGE, load_config_or_exit, run_async, setup_logs

HOW_TO = """\
The console is not configured. Add to config.toml:

  [console]
  enabled = true
  host = "127.0.0.1"      # keep it local; put a TLS reverse proxy in front for remote use
  port = 9465

  [[console.operators]]
  name = "alice"
  password_hash = "..."   # from: fedibot console hash-password
  # token = "env:FEDIBOT_CONSOLE_TOKEN"   # optional sign-in token read from the environment

then run `fedibot console` (or `fedibot run`, which serves it too) and open
http://127.0.0.1:9465/ . See docs/console.md."""


@click.group(invoke_without_command=True)
@click.pass_context
def console(ctx: click.Context) -> None:
    """The operator console in the browser (serves it when no subcommand is given)."""
    if ctx.invoked_subcommand is None:
        serve()


def serve() -> None:
    config = load_config_or_exit()
    if not config.console.configured:
        click.echo(HOW_TO, err=True)
        sys.exit(EXIT_USAGE)
    setup_logs(config)

    async def _main() -> None:
        import asyncio
        import signal

        from fedibot.app import queue_settings
        from fedibot.console.context import ConsoleContext
        from fedibot.console.server import ConsoleServer
        from fedibot.queue.jobs import JobQueue
        from fedibot.storage.database import Database
        from fedibot.storage.migrate import upgrade

        db = Database(config.database.url, echo=config.database.echo)
        await upgrade(db)
        queue = JobQueue(db, queue_settings(config))
        server = ConsoleServer(ConsoleContext(config, db, queue))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await server.start()
        click.echo(f"console on {server.url} (database {db.display_url})", err=True)
        try:
            await stop.wait()
        finally:
            await server.stop()
            await db.dispose()

    run_async(_main())


@console.command("serve")
def serve_cmd() -> None:
    """Serve the console (the same as plain `fedibot console`)."""
    serve()


@console.command("hash-password")
@click.option("--stdin", "from_stdin", is_flag=True, help="read the password from stdin")
def hash_password_cmd(from_stdin: bool) -> None:
    """Print an argon2 hash for [[console.operators]] password_hash."""
    from fedibot.console.auth import hash_password

    if from_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < 10:
        click.echo("error: use at least 10 characters", err=True)
        sys.exit(EXIT_USAGE)
    click.echo(hash_password(password))
