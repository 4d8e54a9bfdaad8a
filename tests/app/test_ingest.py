"""Ingest decisions on a real SQLite file: what each kind of mention becomes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from federation.markdown_safe import escape as escape_markdown
from federation.types import Account, Mention, Visibility
from fedibot.config.loader import parse_config
from fedibot.intake.grammar import wants_private
from fedibot.intake.ingest import Ingest
from fedibot.moderation.policy import Policy
from fedibot.moderation.prompt_filter import PromptFilter
from fedibot.outbound.compose import compose_error
from fedibot.queue.jobs import JobQueue
from fedibot.storage.models import JobState

_ids = iter(range(1000, 10_000))


def mention(text: str, acct: str = "alice@remote.example", **kw) -> Mention:
    return Mention(
        platform=kw.pop("platform", "mastodon"),
        bot_account="main",
        remote_id=kw.pop("remote_id", str(next(_ids))),
        author=Account(platform="mastodon", id="1", acct=acct, note_text=kw.pop("note", "")),
        text=text,
        visibility=kw.pop("visibility", Visibility.PUBLIC),
        created_at=kw.pop("created_at", datetime.now(UTC)),
        **kw,
    )


@pytest.fixture
def ingest(sqlite_db, tmp_path) -> Ingest:
    config = parse_config({"data_dir": str(tmp_path)})
    queue = JobQueue(sqlite_db)
    policy = Policy(sqlite_db, config.policy, config.quotas, PromptFilter(config.prompt_filter))
    return Ingest(queue, policy, config)


async def _job(ingest: Ingest, m: Mention):
    job_id = await ingest.handle(m)
    return await ingest.queue.get(job_id)


async def _result_of(ingest: Ingest, m: Mention, reply_id: str):
    """Pretend the bot answered `m` with status `reply_id`."""
    job = await _job(ingest, m)
    (claimed,) = await ingest.queue.claim("w", 8)
    await ingest.queue.complete("w", claimed.id, [])
    await ingest.queue.claim_replies("r")
    await ingest.queue.reply_sent("r", job.id, reply_id)
    return job


async def test_a_prompt_becomes_a_queued_job_with_preset_defaults(ingest):
    job = await _job(ingest, mention("a lighthouse --n 2 --seed 5"))
    assert job.state == JobState.QUEUED
    assert (job.prompt, job.n, job.seed, job.model) == ("a lighthouse", 2, 5, "tiny")
    assert job.visibility == "unlisted"  # public request → unlisted reply by default


async def test_the_same_mention_twice_is_one_job(ingest):
    m = mention("a fox")
    assert await ingest.handle(m) == await ingest.handle(m)


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        (Visibility.DIRECT, "direct"),
        (Visibility.PRIVATE, "direct"),  # followers-only → direct (docs/outbound.md)
        (Visibility.UNLISTED, "unlisted"),
    ],
)
async def test_reply_is_never_wider_than_the_request(ingest, requested, expected):
    assert (await _job(ingest, mention("a fox", visibility=requested))).visibility == expected


async def test_private_flag_keeps_a_refusal_private_too(ingest):
    job = await _job(ingest, mention("a cat --private --steps 999"))
    assert job.state == JobState.REJECTED and job.error_code == "bad_option"
    assert job.visibility == "direct" and job.reply_state == "pending"
    assert "1-50" in job.error_message  # the allowed range of the model
    assert wants_private("help —private") and not wants_private("privateer ship")


async def test_again_by_someone_else_is_refused(ingest):
    original = await _result_of(ingest, mention("secret cat", visibility=Visibility.PRIVATE), "r1")
    other = await _job(ingest, mention("again", acct="bob@else.example", in_reply_to_id="r1"))
    assert other.state == JobState.REJECTED and other.error_code == "not_allowed"
    mine = await _job(ingest, mention("again", in_reply_to_id="r1"))
    assert mine.state == JobState.QUEUED and mine.prompt == "secret cat"
    assert mine.n == original.n and mine.seed != original.seed  # same request, new seeds
    assert mine.visibility == "direct"  # never wider than the result it re-rolls
    more = await _job(ingest, mention("again --n 2 --seed 9", in_reply_to_id="r1"))
    assert (more.prompt, more.n, more.seed) == ("secret cat", 2, 9)


async def test_again_on_a_help_reply_is_not_a_result(ingest):
    help_job = await _job(ingest, mention("help"))
    await ingest.queue.claim_replies("r")
    await ingest.queue.reply_sent("r", help_job.id, "h1")
    job = await _job(ingest, mention("again", in_reply_to_id="h1"))
    assert job.state == JobState.REJECTED and job.error_code == "not_a_result"


async def test_again_with_a_model_no_longer_configured_gets_a_clear_refusal(ingest):
    original = await _result_of(ingest, mention("a boat"), "r2")
    await ingest.queue.update_params(
        original.id, {"options": {**original.params["options"], "model": "gone"}}
    )
    job = await _job(ingest, mention("again", in_reply_to_id="r2"))
    assert job.state == JobState.REJECTED and job.error_code == "unknown_model"
    assert "tiny" in job.error_message


async def test_an_unexpected_error_is_recorded_not_raised(ingest, monkeypatch):
    def boom(*_a, **_k):
        raise RuntimeError("a bug")

    monkeypatch.setattr(ingest, "resolve", boom)
    job = await _job(ingest, mention("a cat --private"))
    assert job.state == JobState.REJECTED and job.error_code == "internal_error"
    assert job.visibility == "direct" and job.reply_state == "pending"


async def test_an_edit_before_generation_changes_every_option(ingest):
    m = mention("a dog", remote_id="e1")
    await ingest.handle(m)
    edited = mention("a dog in a hat --n 3 --private", remote_id="e1", edited_at=datetime.now(UTC))
    job = await _job(ingest, edited)
    assert (job.prompt, job.n, job.visibility) == ("a dog in a hat", 3, "direct")
    assert job.params["options"]["n"] == 3


async def test_old_mentions_are_ignored(ingest):
    old = mention("a cat", created_at=datetime(2020, 1, 1, tzinfo=UTC))
    assert await ingest.handle(old) is None
    assert (await ingest.queue.stats())[JobState.QUEUED] == 0


async def test_error_reply_on_lemmy_cannot_mention_anyone(ingest):
    job = await _job(ingest, mention("a cat --model x@victim@lemmy.ml", platform="lemmy"))
    assert job.state == JobState.REJECTED
    text = compose_error(job, mention("x", platform="lemmy"), escape=escape_markdown).text
    assert "\\@victim" in text and "@" not in text.replace("\\@", "")  # every @ escaped


@pytest.mark.parametrize("text", ["a fox --frobnicate 3", "a fox --steps 999", "--n 2"])
async def test_an_error_reply_points_to_help_exactly_once(ingest, text):
    m = mention(text)
    job = await _job(ingest, m)
    assert job.state == JobState.REJECTED
    reply = compose_error(job, m).text
    assert reply.count("'help'") == 1, reply
