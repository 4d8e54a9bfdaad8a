"""`fedibot campaigns`: list, run (or dry-run), pause, resume and the history of campaigns.

Read-only commands print exactly one JSON document with --json. Everything works against the
bot's database while `fedibot run` is running: pause/resume are read at every scheduled run.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

import click

from fedibot.cli.common import fail, load_config_or_exit, make_table, print_json, print_table

T = TypeVar("T")


def _with_manager(fn: Callable[[Any], Awaitable[T]], name: str | None = None) -> T:
    """Run `fn(manager)` against the configured database (migrated first); with `name`, an
    unknown campaign is an error before anything is opened."""
    config = load_config_or_exit()
    if name is not None and name not in {c.name for c in config.campaigns}:
        known = ", ".join(c.name for c in config.campaigns) or "(none configured)"
        fail(f"no campaign named {name!r}; known: {known}")

    async def _main() -> T:
        from fedibot.app import queue_settings
        from fedibot.campaigns.manager import CampaignManager
        from fedibot.queue.jobs import JobQueue
        from fedibot.storage.database import Database
        from fedibot.storage.migrate import upgrade

        db = Database(config.database.url)
        try:
            await upgrade(db)
            manager = CampaignManager(config, JobQueue(db, queue_settings(config)), db)
            return await fn(manager)
        finally:
            await db.dispose()

    return asyncio.run(_main())


@click.group()
def campaigns() -> None:
    """Scheduled campaign posts ([[campaigns]] in the config)."""


@campaigns.command("list")
@click.option("--json", "as_json", is_flag=True, help="one JSON document")
def list_cmd(as_json: bool) -> None:
    """Every campaign: schedule, next run, last result, paused."""

    async def _list(manager: Any) -> list[dict[str, Any]]:
        return await manager.overview(time.time())

    rows = _with_manager(_list)
    if as_json:
        print_json(rows)
        return
    if not rows:
        click.echo("no [[campaigns]] in the config")
        return
    print_table(
        make_table(
            "campaigns",
            ("name", "schedule", "next run", "last run", "last result", "state"),
            (
                (
                    r["name"],
                    r["schedule"],
                    r["next_run"] or "-",
                    (r["last_run"] or {}).get("scheduled_at", "-"),
                    (r["last_run"] or {}).get("status", "-"),
                    "disabled" if not r["enabled"] else "paused" if r["paused"] else "active",
                )
                for r in rows
            ),
        )
    )


@campaigns.command("history")
@click.argument("name")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="one JSON document")
def history_cmd(name: str, limit: int, as_json: bool) -> None:
    """The newest runs of campaign NAME: posted, skipped, failed or still queued."""
    from fedibot.campaigns.manager import iso

    async def _history(manager: Any) -> list[dict[str, Any]]:
        campaign = manager.campaign(name)
        await manager.store.reconcile(time.time())
        records = await manager.store.history(name, limit)
        return [{**r.to_dict(), "scheduled": iso(campaign, r.scheduled_at)} for r in records]

    rows = _with_manager(_history, name)
    if as_json:
        print_json(rows)
        return
    print_table(
        make_table(
            f"campaign {name}: {len(rows)} runs",
            ("scheduled", "status", "job", "note"),
            ((r["scheduled"], r["status"], r["job_id"], r["note"]) for r in rows),
        )
    )


@campaigns.command("pause")
@click.argument("name")
def pause_cmd(name: str) -> None:
    """Stop posting NAME; runs that fall due meanwhile are recorded as skipped."""
    _set_paused(name, True)


@campaigns.command("resume")
@click.argument("name")
def resume_cmd(name: str) -> None:
    """Post NAME again from its next run on."""
    _set_paused(name, False)


def _set_paused(name: str, paused: bool) -> None:
    async def _set(manager: Any) -> bool:
        return await manager.store.set_paused(name, paused, time.time())

    changed = _with_manager(_set, name)
    word = "paused" if paused else "resumed"
    click.echo(f"campaign {name} {word}" if changed else f"campaign {name} was already {word}")


@campaigns.command("run")
@click.argument("name")
@click.option("--dry-run", is_flag=True, help="generate here and write the post to --out")
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default="out",
    show_default=True,
    help="where --dry-run writes the images and post.json",
)
def run_cmd(name: str, dry_run: bool, out: str) -> None:
    """Run NAME now, outside its schedule. The bot (`fedibot run`) generates and posts it;
    with --dry-run it is generated here and written to --out, and nothing is posted."""
    if dry_run:
        _dry_run(name, Path(out))
        return

    async def _run(manager: Any) -> Any:
        return await manager.run_now(name)

    outcome = _with_manager(_run, name)
    if outcome.status != "enqueued":
        fail(f"campaign {name}: {outcome.note}", 1)
    click.echo(f"campaign {name}: queued as job {outcome.job_id}; `fedibot run` posts it")


# ---------------------------------------------------------------------- dry run
def _dry_run(name: str, out_dir: Path) -> None:
    config = load_config_or_exit()

    async def _plan(manager: Any) -> tuple[Any, Any, str | None]:
        campaign = manager.campaign(name)
        state = await manager.store.state(name)
        index = int(state.prompt_index) if state is not None else 0
        job = manager.build_job(campaign, float(int(time.time())), index, manual=True)
        parent = state.last_status_id if state is not None and campaign.thread else None
        return campaign, job, parent

    campaign, job, parent = _with_manager(_plan, name)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = _generate(config, job, out_dir)
    from generator.types import GenerationError

    if isinstance(result, GenerationError):
        fail(f"campaign {name}: {result.code}: {result.message}", 1)
    from fedibot.moderation.policy import blur_image
    from fedibot.outbound.compose import compose_campaign

    row = SimpleNamespace(id=0, **{k: getattr(job, k) for k in _JOB_FIELDS})
    images = [
        SimpleNamespace(path=str(i.path), seed=i.seed, flagged=i.safety.flagged)
        for i in result.images
    ]
    post = compose_campaign(
        row,
        images,
        parent,
        flagged_images=config.policy.flagged_images,
        flagged_spoiler_text=config.policy.flagged_spoiler_text,
        blur=blur_image,
    )
    media = []
    for index, item in enumerate(post.media):
        target = out_dir / f"{name}-{index}.png"
        shutil.copyfile(item.path, target)
        media.append({"path": str(target), "alt_text": item.alt_text})
    summary = {
        "campaign": campaign.name,
        "dry_run": True,
        "account": campaign.account,
        "prompt": job.prompt,
        "model": job.model,
        "seeds": [job.seed + i for i in range(job.n)],
        "text": post.text,
        "visibility": post.visibility.value,
        "spoiler_text": post.spoiler_text,
        "sensitive": post.sensitive,
        "in_reply_to_id": post.in_reply_to_id,
        "flagged": sum(1 for i in images if i.flagged),
        "media": media,
    }
    (out_dir / "post.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    (out_dir / "post.txt").write_text(post.text + "\n", encoding="utf-8")
    print_json(summary)
    click.echo(f"wrote {out_dir / 'post.json'}; nothing was posted", err=True)


_JOB_FIELDS = ("prompt", "negative_prompt", "model", "seed", "n", "visibility", "params")


def _generate(config: Any, job: Any, out_dir: Path) -> Any:
    """Render the run's images with the generator service, in a scratch folder beside --out."""
    from fedibot.cli.local import _scratch_generator_config
    from fedibot.queue.work_source import request_from_row
    from generator.service import GeneratorService

    request = request_from_row(
        SimpleNamespace(
            id=0,
            prompt=job.prompt,
            negative_prompt=job.negative_prompt,
            seed=job.seed,
            n=job.n,
            model=job.model,
            width=job.width,
            height=job.height,
            steps=job.steps,
            guidance=job.guidance,
        )
    )
    service = GeneratorService(_scratch_generator_config(config.generator, out_dir))
    try:
        (result,) = service.generate([request])
    finally:
        service.close()
    return result
