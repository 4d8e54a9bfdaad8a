"""`fedibot generate` and `fedibot try`: the generator and the whole request path, offline."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NoReturn

import click

from fedibot.cli.common import load_config_or_exit, setup_logs


def _fail(message: str, code: int = 1) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(code)


@click.command()
@click.argument("prompt")
@click.option("--n", "n", default=None, help="images, 1 to [prompt] max_n (default: default_n)")
@click.option("--seed", default=None, help="0 to 4294967295 (default: random)")
@click.option("--model", default=None, help="short name from [generator.models]")
@click.option("--negative", default="", help="negative prompt")
@click.option("--steps", default=None, help="within the model's limits")
@click.option("--out", type=click.Path(file_okay=False), default="out", show_default=True)
def generate(
    prompt: str,
    n: str | None,
    seed: str | None,
    model: str | None,
    negative: str,
    steps: str | None,
    out: str,
) -> None:
    """Render PROMPT straight to PNG files (no queue, no network). The prompt and options
    are checked like a mention's, with the same messages."""
    config = load_config_or_exit()
    setup_logs(config)
    from fedibot.cli.progress import RichProgress
    from fedibot.intake.grammar import PromptError, PromptRules, request_from_fields
    from fedibot.intake.options import resolve_options
    from generator.requests import build_request
    from generator.service import GeneratorService
    from generator.types import GenerationError

    gen = config.generator
    rules = PromptRules.from_config(config.prompt, gen.models)
    try:
        parsed = request_from_fields(
            prompt, rules, negative=negative, n=n, seed=seed, model=model, steps=steps
        )
        options = resolve_options(config, parsed)
    except PromptError as err:
        _fail(f"{err.code}: {err.message}", 2)
    request = build_request(
        gen,
        0,
        options.prompt,
        n=options.n,
        seed=options.seed,
        model=options.model,
        negative_prompt=options.negative_prompt,
        width=options.width,
        height=options.height,
        steps=options.steps,
        guidance=options.guidance,
    )
    service = GeneratorService(config.generator)
    try:
        with RichProgress() as progress:
            (result,) = service.generate([request], progress)
    finally:
        service.close()
    if isinstance(result, GenerationError):
        _fail(f"{result.code}: {result.message}")
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    for image in result.images:
        target = out_dir / f"{stamp}-{image.seed}.png"
        shutil.move(str(image.path), target)
        flag = "  [flagged by the safety check]" if image.safety.flagged else ""
        click.echo(f"{target}  seed={image.seed}{flag}")


@click.command("try")
@click.argument("text")
@click.option("--out", type=click.Path(file_okay=False), default="out", show_default=True)
@click.option(
    "--visibility",
    type=click.Choice(["public", "unlisted", "private", "direct"]),
    default="public",
    show_default=True,
    help="visibility of the pretend request",
)
@click.option(
    "--as",
    "author",
    default="you@localhost",
    show_default=True,
    help="the pretend requester (user@domain)",
)
def try_cmd(text: str, out: str, visibility: str, author: str) -> None:
    """Run the whole local path for TEXT ('@bot a prompt --n 2'): parse → policy → queue →
    generate → compose. Writes the images and reply.json to --out; nothing is posted."""
    config = load_config_or_exit()
    setup_logs(config)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    reply = asyncio.run(_try(config, text, out_dir, visibility, author))
    (out_dir / "reply.json").write_text(json.dumps(reply, indent=2, ensure_ascii=False) + "\n")
    click.echo(json.dumps(reply, indent=2, ensure_ascii=False))
    click.echo(f"wrote {out_dir / 'reply.json'}", err=True)
    if reply.get("error_code"):
        sys.exit(1)


async def _try(config: Any, text: str, out_dir: Path, visibility: str, author: str) -> dict:
    from federation.types import Account, Mention, Visibility
    from fedibot.app import queue_settings
    from fedibot.cli.progress import RichProgress
    from fedibot.intake.grammar import PromptRules, usage_text
    from fedibot.intake.ingest import Ingest
    from fedibot.intake.mention_codec import mention_from_dict
    from fedibot.moderation.output_check import withhold_reason
    from fedibot.moderation.policy import Policy, blur_image
    from fedibot.moderation.prompt_filter import PromptFilter
    from fedibot.outbound.compose import compose_error, compose_result, compose_text
    from fedibot.queue.jobs import JobQueue
    from fedibot.queue.work_source import QueueWorkSource
    from fedibot.storage.database import Database
    from fedibot.storage.images import materialized
    from fedibot.storage.migrate import upgrade
    from fedibot.storage.models import JobState
    from generator.service import GeneratorService
    from generator.worker import Worker

    # A throw-away queue beside the output: `try` never touches the bot's real queue.
    db_file = out_dir / "try.db"
    db_file.unlink(missing_ok=True)
    db = Database(f"sqlite:///{db_file}")
    await upgrade(db)
    queue = JobQueue(db, queue_settings(config))
    policy = Policy(
        db,
        config.policy,
        config.quotas,
        PromptFilter(config.prompt_filter),
        config.own_domains | {"localhost"},
    )
    ingest = Ingest(queue, policy, config)
    user, _, domain = author.partition("@")
    mention = Mention(
        platform="local",
        bot_account="try",
        remote_id="try-1",
        author=Account(platform="local", id="1", acct=f"{user}@{domain or 'localhost'}"),
        text=re.sub(r"^(\s*@\S+)+\s*", "", text),
        visibility=Visibility(visibility),
        created_at=datetime.now(UTC),
    )
    try:
        job_id = await ingest.handle(mention)
        if job_id is None:  # deliberately ignored (e.g. `delete` with nothing to delete)
            return {"job_id": None, "state": "ignored", "error_code": None, "media": []}
        row = await _job(queue, job_id)
        if row.state == JobState.REJECTED:
            return _reply_dict(compose_error(row, mention), row)
        if row.kind == "help":
            rules = PromptRules.from_config(
                config.prompt,
                config.generator.models,
                config.generator.model(config.generator.default_model).preset,
            )
            return _reply_dict(compose_text(row, mention, usage_text(rules)), row)
        service = GeneratorService(_scratch_generator_config(config.generator, out_dir))
        with RichProgress() as progress:
            worker = Worker(
                QueueWorkSource(queue),
                service,
                config.generator,
                "try",
                progress=progress,
                exit_when_empty=True,
            )
            await worker.run()
        await asyncio.to_thread(service.close)
        row = await _job(queue, job_id)
        if row.state != JobState.GENERATED:
            return _reply_dict(compose_error(row, mention_from_dict(row.request)), row)
        images = await queue.images(job_id)
        reason = withhold_reason(
            row.prompt, row.negative_prompt, images, config.policy.minor_exposure_threshold
        )
        if reason is not None:  # the same output rule as the replier: no image leaves
            withheld = SimpleNamespace(
                **{
                    **row._mapping,
                    "state": "withheld",
                    "error_code": "minor_exposure",
                    "error_message": reason,
                }
            )
            return _reply_dict(compose_error(withheld, mention), withheld)
        copied: list[Path] = []
        cache = out_dir / ".try-data" / "cache"
        async with materialized(queue, job_id, images, cache) as files:
            post = compose_result(row, files, mention, config, blur=blur_image)
            for item in post.media:
                target = out_dir / f"image-{len(copied)}.png"
                shutil.copyfile(item.path, target)
                copied.append(target)
        reply = _reply_dict(post, row)
        for media, path in zip(reply["media"], copied, strict=True):
            media["path"] = str(path)
        return reply
    finally:
        await db.dispose()


async def _job(queue: Any, job_id: int) -> Any:
    row = await queue.get(job_id)
    if row is None:
        raise click.ClickException(f"job {job_id} vanished from the throw-away queue")
    return row


def _scratch_generator_config(gen: Any, out_dir: Path) -> Any:
    """Images of a `try` go beside its output, never among the bot's own job folders (job ids
    restart at 1 in the throw-away queue); the models folder is shared so nothing is rebuilt."""
    scratch = out_dir / ".try-data"
    scratch.mkdir(parents=True, exist_ok=True)
    models = Path(gen.data_dir) / "models"
    models.mkdir(parents=True, exist_ok=True)
    link = scratch / "models"
    if not link.exists():
        link.symlink_to(models.resolve(), target_is_directory=True)
    return gen.model_copy(update={"data_dir": str(scratch)})


def _reply_dict(post: Any, row: Any) -> dict:
    return {
        "job_id": row.id,
        "state": row.state,
        "error_code": row.error_code if row.state != "generated" else None,
        "text": post.text,
        "visibility": post.visibility.value,
        "sensitive": post.sensitive,
        "spoiler_text": post.spoiler_text,
        "media": [{"path": str(m.path), "alt_text": m.alt_text} for m in post.media],
        "seeds": [row.seed + i for i in range(row.n)] if row.state == "generated" else [],
    }
