"""The `fedibot` command. Imports stay inside commands: `fedibot --help` never loads torch,
SQLAlchemy or Mastodon.py."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import Any

import click

from fedibot.cli.common import (
    load_config_or_exit,
    make_table,
    print_json,
    print_table,
    run_async,
    setup_logs,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config",
    type=click.Path(dir_okay=False),
    default=None,
    help="config file (default: $FEDIBOT_CONFIG, else ./config.toml, else built-in defaults)",
)
@click.option("--log-format", type=click.Choice(["text", "json"]), default=None)
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]), default=None)
@click.version_option(package_name="fedibot")
def main(config: str | None, log_format: str | None, log_level: str | None) -> None:
    """fedibot — a self-hosted, moderation-aware AI image bot for the Fediverse."""


# ---------------------------------------------------------------------- run / worker
@main.command()
@click.option("--no-worker", is_flag=True, help="listener, replier and scheduler only")
def run(no_worker: bool) -> None:
    """Run the bot: listen, queue, generate, reply, sync and post campaigns."""
    config = load_config_or_exit()
    setup_logs(config)

    async def _main() -> None:
        import signal

        from fedibot.app import App

        app = App(config, with_worker=not no_worker)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, app.request_stop, sig.name)
        if not config.accounts:
            click.echo(
                "No [[accounts]] in the config: nothing to listen to; the worker and the "
                "scheduler run. See README → Accounts.",
                err=True,
            )
        await app.run_until_stopped()

    run_async(_main())


@main.command()
@click.option("--exit-when-empty", is_flag=True, help="stop once the queue has nothing left")
def worker(exit_when_empty: bool) -> None:
    """Generator only: claim batches from the shared database and render them (locally, or
    on the AI Horde, as `[generator] backend` says)."""
    config = load_config_or_exit()
    setup_logs(config)

    async def _main() -> None:
        from fedibot.app import Generators, queue_settings
        from fedibot.queue.jobs import JobQueue
        from fedibot.storage.database import Database
        from fedibot.storage.migrate import upgrade
        from generator.service import GeneratorService
        from generator.worker import install_signal_handlers

        db = Database(config.database.url)
        await upgrade(db)
        queue = JobQueue(db, queue_settings(config))
        service = GeneratorService(config.generator)
        if config.generator.backend == "horde":  # no local model: only the output classifier
            await asyncio.to_thread(lambda: service.classifier)
        else:
            await asyncio.to_thread(service.preload)
        generators = Generators(config, queue, service, exit_when_empty=exit_when_empty)
        if generators.local is not None:
            install_signal_handlers(generators.local)
        if generators.horde is not None:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, generators.request_stop)
        try:
            await asyncio.gather(*generators.runs().values())
        finally:
            await generators.close()
            await asyncio.to_thread(service.close)
            await db.dispose()
            logging.getLogger("fedibot.worker").info(
                "fedibot worker stopped: orderly shutdown complete"
            )

    run_async(_main())


# ---------------------------------------------------------------------- database
@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply the Alembic migrations (also done at every start)."""
    config = load_config_or_exit()
    from fedibot.storage.database import Database
    from fedibot.storage.migrate import current_revision, upgrade_blocking

    database = Database(config.database.url)
    upgrade_blocking(database)
    click.echo(f"{database.display_url}: at revision {current_revision(database)}")
    database.close()


# ---------------------------------------------------------------------- queue
def _open_queue(config: Any) -> Any:
    # Not via fedibot.app (it imports the adapters, aiohttp, the policy...): admin
    # commands load only the queue.
    from fedibot.queue.jobs import JobQueue, QueueSettings
    from fedibot.storage.database import Database
    from fedibot.storage.migrate import upgrade_blocking

    database = Database(config.database.url)
    upgrade_blocking(database)
    return JobQueue(database, QueueSettings.from_config(config))


def _job_dict(row: Any) -> dict[str, Any]:
    keys = (
        "id",
        "kind",
        "state",
        "platform",
        "bot_account",
        "requester",
        "remote_id",
        "prompt",
        "negative_prompt",
        "model",
        "width",
        "height",
        "steps",
        "guidance",
        "n",
        "seed",
        "visibility",
        "attempts",
        "max_attempts",
        "error_code",
        "error_message",
        "reply_state",
        "reply_remote_id",
        "reply_url",
        "lease_owner",
        "created_at",
        "updated_at",
        "finished_at",
        "generation_seconds",
    )
    return {k: _iso(getattr(row, k)) if k.endswith("_at") else getattr(row, k) for k in keys}


def _iso(epoch: float | None) -> str | None:
    """Stored epoch seconds → an ISO 8601 UTC time people (and scripts) can read."""
    from datetime import UTC, datetime

    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


@main.group()
def queue() -> None:
    """Inspect and steer the job queue."""


@queue.command("stats")
@click.option("--json", "as_json", is_flag=True)
def queue_stats(as_json: bool) -> None:
    """Jobs per state, and each account's posting budget: held jobs and when it frees up."""
    import time

    from fedibot.outbound.budgets import budget_report, config_budgets
    from fedibot.storage.budgets import BudgetLedger

    config = load_config_or_exit()
    q = _open_queue(config)
    stats = run_async(q.stats())
    views = run_async(BudgetLedger(q.db).snapshot(config_budgets(config)))
    q.db.close()
    budgets = budget_report(views, time.time())
    if as_json:
        print_json({**stats, "budgets": budgets})
        return
    print_table(make_table("jobs per state", ("state", "jobs"), stats.items()))
    if budgets:
        rows = [(b["account"], b["kind"], b["summary"]) for b in budgets]
        print_table(make_table("posting budgets", ("account", "kind", "budget"), rows))


@queue.command("list")
@click.option("--state", default=None, help="only jobs in this state")
@click.option("--requester", default=None, help="only jobs of this account (user@domain)")
@click.option("--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def queue_list(state: str | None, requester: str | None, limit: int, as_json: bool) -> None:
    """The newest jobs."""
    from fedibot.storage.models import JobState

    if state and state not in JobState.ALL:
        raise click.BadParameter(f"must be one of {', '.join(JobState.ALL)}", param_hint="--state")
    config = load_config_or_exit()
    q = _open_queue(config)
    rows = run_async(q.list_jobs(state=state, limit=limit, requester=requester))
    q.db.close()
    if as_json:
        print_json([_job_dict(r) for r in rows])
        return
    print_table(
        make_table(
            f"{len(rows)} jobs",
            ("id", "state", "kind", "requester", "prompt", "error"),
            (
                (r.id, r.state, r.kind, r.requester, (r.prompt or "")[:40], r.error_code)
                for r in rows
            ),
        )
    )


@queue.command("show")
@click.argument("job_id", type=click.IntRange(1, 2**63 - 1))
@click.option("--json", "as_json", is_flag=True)
@click.option(
    "--save",
    "save_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="also write the job's images as PNG files into this folder",
)
def queue_show(job_id: int, as_json: bool, save_dir: str | None) -> None:
    """One job with its images (kept in the database: see docs/images.md)."""
    from pathlib import Path

    config = load_config_or_exit()
    q = _open_queue(config)
    row = run_async(q.get(job_id))
    images = run_async(q.images(job_id)) if row else []
    blobs = run_async(q.image_bytes(job_id, images)) if images else {}
    q.db.close()
    if row is None:
        click.echo(f"no job {job_id}", err=True)
        sys.exit(1)
    data = _job_dict(row)
    data["images"] = []
    for i in images:
        blob = blobs.get(int(i.index))
        entry = {
            "index": i.index,
            "seed": i.seed,
            "location": i.path,
            "bytes": None if blob is None else len(blob),
            "flagged": i.flagged,
        }
        if save_dir is not None and blob is not None:
            target = Path(save_dir) / f"job-{job_id}-{i.index}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(blob)
            entry["saved"] = str(target)
        data["images"].append(entry)
    if as_json:
        print_json(data)
        return
    print_table(make_table(f"job {job_id}", ("field", "value"), data.items()))


@queue.command("retry")
@click.argument("job_id", type=click.IntRange(1, 2**63 - 1))
def queue_retry(job_id: int) -> None:
    """Queue a failed or cancelled job again (a `delivery_unconfirmed` reply is sent again
    with its images)."""
    config = load_config_or_exit()
    q = _open_queue(config)
    ok = run_async(q.retry(job_id))
    q.db.close()
    if not ok:
        click.echo(f"job {job_id} is not failed or cancelled (or does not exist)", err=True)
        sys.exit(1)
    click.echo(f"job {job_id} queued again")


@queue.command("cancel")
@click.argument("job_id", type=click.IntRange(1, 2**63 - 1))
def queue_cancel(job_id: int) -> None:
    """Cancel a job that has not finished."""
    config = load_config_or_exit()
    q = _open_queue(config)
    ok = run_async(q.cancel(job_id, "cancelled by an admin"))
    q.db.close()
    if not ok:
        click.echo(f"job {job_id} has already finished (or does not exist)", err=True)
        sys.exit(1)
    click.echo(f"job {job_id} cancelled")


@queue.command("purge")
@click.option(
    "--older-than-days",
    type=float,
    default=None,
    help="default: queue.retention_days from the config",
)
def queue_purge(older_than_days: float | None) -> None:
    """Delete finished jobs and their images older than the retention."""
    config = load_config_or_exit()
    days = config.queue.retention_days if older_than_days is None else older_than_days
    if days <= 0:
        raise click.UsageError(
            "queue.retention_days is 0 (keep jobs forever): pass --older-than-days N (N > 0)"
        )
    q = _open_queue(config)
    jobs_removed, files = run_async(q.purge(days * 86400))
    q.db.close()
    click.echo(f"purged {jobs_removed} jobs and {files} image files older than {days:g} days")


def _register_optional_groups() -> None:
    """Command groups that live in their own modules."""
    from fedibot.cli.doctor import doctor, login
    from fedibot.cli.local import generate, try_cmd

    for command in (generate, try_cmd, doctor, login):
        main.add_command(command)
    from fedibot.cli import moderation as cli_moderation
    from fedibot.cli.campaigns import campaigns

    for name in ("allowlist", "fediseer", "users", "quota", "audit"):
        main.add_command(getattr(cli_moderation, name))
    main.add_command(campaigns)
    from fedibot.cli.models import models
    from fedibot.moderation.guard.command import check_prompt

    main.add_command(check_prompt)
    main.add_command(models)

    from fedibot.console.cli import console

    main.add_command(console)


_register_optional_groups()
