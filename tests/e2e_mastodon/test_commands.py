"""`again` and `delete` as replies to the bot's results, and a request deleted before its
reply, through the whole app."""

from __future__ import annotations

from pathlib import Path

from generator.service import GeneratorService
from tests.e2e_mastodon.conftest import (
    Apps,
    HoldingMastodon,
    app_config,
    bot_statuses,
    eventually,
    posted_text,
    replies_to,
    settled,
)
from tests.e2e_mastodon.services import GatedService

ALICE = "alice@remote.example"
BOB = "bob@remote.example"


async def test_again_rerolls_with_new_seeds_and_delete_only_works_for_the_requester(
    fake: HoldingMastodon, apps: Apps
) -> None:
    request = fake.mention(ALICE, "a tiny robot --n 2")
    app = await apps.start()
    [first] = await eventually(lambda: replies_to(fake, request["id"]))
    await settled(app)

    again = fake.mention(ALICE, "again", in_reply_to_id=first["id"])
    [second] = await eventually(lambda: replies_to(fake, again["id"]))
    await settled(app)
    jobs = {j.remote_id: j for j in await app.queue.list_jobs()}
    original, reroll = jobs[request["id"]], jobs[again["id"]]
    assert reroll.state == "done" and reroll.reply_remote_id == second["id"]
    assert (reroll.prompt, reroll.n, reroll.model) == (original.prompt, 2, original.model)
    old_seeds = {i.seed for i in await app.queue.images(original.id)}
    new_seeds = {i.seed for i in await app.queue.images(reroll.id)}
    assert len(new_seeds) == 2 and not old_seeds & new_seeds
    assert len(second["media_attachments"]) == 2
    assert "a tiny robot" in posted_text(fake, second["id"])

    # Bob may not delete Alice's result: he is told so, and it stays.
    not_his = fake.mention(BOB, "delete", in_reply_to_id=second["id"])
    [refusal] = await eventually(lambda: replies_to(fake, not_his["id"]))
    await settled(app)
    assert "Only the person who asked" in posted_text(fake, refusal["id"])
    assert [m["acct"] for m in refusal["mentions"]] == [BOB]
    assert second["id"] in fake.statuses and first["id"] in fake.statuses

    # Alice may.
    hers = fake.mention(ALICE, "delete", in_reply_to_id=first["id"])
    await eventually(lambda: first["id"] not in fake.statuses)
    await settled(app)
    assert second["id"] in fake.statuses
    assert replies_to(fake, hers["id"]) == []  # a deletion needs no reply
    assert fake.count("DELETE", f"/api/v1/statuses/{first['id']}") == 1
    kinds = sorted((j.kind, j.state, j.error_code) for j in await app.queue.list_jobs())
    assert kinds == [
        ("delete", "done", None),
        ("mention", "done", None),
        ("mention", "done", None),
        ("mention", "rejected", "not_allowed"),
    ]


async def test_request_deleted_before_the_reply_gets_nothing_and_its_job_is_cancelled(
    fake: HoldingMastodon, apps: Apps, data_dir: Path
) -> None:
    service = GatedService(_real_service(data_dir, fake))
    request = fake.mention(ALICE, "a castle in the clouds --n 2")
    app = await apps.start(service=service)
    await eventually(service.waiting.is_set)  # generating it

    fake.delete_status(request["id"])
    service.open()
    await settled(app)
    [job] = await app.queue.list_jobs()
    assert (job.state, job.reply_remote_id) == ("cancelled", None)
    assert bot_statuses(fake) == [] and fake.posted_statuses == []
    assert fake.media == {}  # not even uploaded


def _real_service(data_dir: Path, fake: HoldingMastodon) -> GeneratorService:
    return GeneratorService(app_config(data_dir, fake).generator)
