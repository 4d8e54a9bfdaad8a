"""`--private` is recognised once, by the grammar, and honoured on every path (accepted
requests, the grammar's own refusals, the policy's refusals, edits)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from federation.types import Account, Mention, Visibility
from fedibot.config.loader import parse_config
from fedibot.intake import grammar
from fedibot.intake.grammar import PromptError, PromptRules, parse, wants_private
from fedibot.intake.ingest import Ingest
from fedibot.moderation.allowlist import Allowlist
from fedibot.moderation.policy import Policy
from fedibot.moderation.prompt_filter import PromptFilter
from fedibot.queue.jobs import JobQueue
from fedibot.storage.models import JobState

RULES = PromptRules(models=("tiny",))
_ids = iter(range(50_000, 60_000))


def mention(text: str, acct: str = "alice@remote.example") -> Mention:
    return Mention(
        platform="mastodon",
        bot_account="main",
        remote_id=str(next(_ids)),
        author=Account(platform="mastodon", id="1", acct=acct),
        text=text,
        visibility=Visibility.PUBLIC,
        created_at=datetime.now(UTC),
    )


@pytest.fixture
def ingest(sqlite_db, tmp_path) -> Ingest:
    config = parse_config(
        {"data_dir": str(tmp_path), "policy": {"reply_on_refusal": {"instance_not_allowed": True}}}
    )
    policy = Policy(sqlite_db, config.policy, config.quotas, PromptFilter(config.prompt_filter))
    return Ingest(JobQueue(sqlite_db), policy, config)


def test_ingest_has_no_private_regex_of_its_own() -> None:
    import fedibot.intake.ingest as ingest_module

    assert not hasattr(ingest_module, "asks_private")
    assert not hasattr(ingest_module, "_PRIVATE")


@pytest.mark.parametrize(
    "text",
    ["a fox --private", "a fox —private", "a fox ―private", "a fox --PRIVATE",
     "a fox --\u200bprivate", "--private a fox", "a fox --private=yes"],
)  # fmt: skip
def test_real_option_tokens_are_private(text: str) -> None:
    assert parse(text, RULES).private
    assert wants_private(text)


@pytest.mark.parametrize("text", ["a fox --private7", "a fox —private7", "a fox --private_x"])
def test_a_glued_token_is_not_the_option(text: str) -> None:
    with pytest.raises(PromptError) as err:
        parse(text, RULES)
    assert err.value.code == "bad_option" and "private" in err.value.message
    assert not wants_private(text)


@pytest.mark.parametrize("text", ["privateer ship", "a fox -private", "a fox x--private"])
def test_no_option_no_private(text: str) -> None:
    assert not wants_private(text)


def test_wants_private_survives_every_grammar_error() -> None:
    for text in ("a cat --private --steps 999x", "a cat --private --bogus", "--private",
                 "a cat --n 2 --n 3 --private", "a cat --private --model"):  # fmt: skip
        assert wants_private(text), text
    assert grammar.wants_private("help —private")


@pytest.mark.parametrize("text", ["a fox --\u200bprivate", "a fox ―private", "a fox --private=on"])
async def test_accepted_requests_go_out_direct_for_every_spelling(ingest, text) -> None:
    job = await ingest.queue.get(await ingest.handle(mention(text)))
    assert job.state == JobState.QUEUED and job.visibility == "direct"


async def test_glued_token_is_a_public_bad_option_not_a_private_job(ingest) -> None:
    job = await ingest.queue.get(await ingest.handle(mention("a fox --private7")))
    assert (job.state, job.error_code) == (JobState.REJECTED, "bad_option")
    assert job.visibility == "unlisted"


async def test_a_grammar_refusal_with_a_zero_width_private_stays_private(ingest) -> None:
    job = await ingest.queue.get(await ingest.handle(mention("a fox --\u200bprivate --n 99")))
    assert job.error_code == "bad_option" and job.visibility == "direct"


async def test_a_requester_refusal_honours_private(ingest, sqlite_db) -> None:
    await Allowlist(sqlite_db).deny("bad.example")
    job = await ingest.queue.get(
        await ingest.handle(mention("a fox —private", acct="eve@bad.example"))
    )
    assert job.error_code == "instance_not_allowed" and job.reply_state == "pending"
    assert job.visibility == "direct"
