"""Output side of child safety: a prompt that names a minor never gets an image with any
exposure label (at the lower `policy.minor_exposure_threshold`) posted, blurred or not; the
job ends `withheld` for the operator and the requester gets a neutral reply without images."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from federation.types import Account, Mention, Visibility
from fedibot.config.loader import parse_config
from fedibot.config.policy import PolicyConfig
from fedibot.intake.mention_codec import mention_to_dict
from fedibot.moderation.minors import names_minor
from fedibot.moderation.policy import Policy
from fedibot.moderation.prompt_filter import PromptFilter
from fedibot.outbound.replier import Replier
from fedibot.queue.jobs import JobQueue, NewJob
from fedibot.storage.models import JobState
from tests.memory_adapter import MemoryAdapter


class RecordingAdapter(MemoryAdapter):
    """Posts are recorded; nothing is ever found from an earlier attempt."""


def _mention(remote_id: str) -> Mention:
    return Mention(
        platform="mastodon",
        bot_account="main",
        remote_id=remote_id,
        author=Account(platform="mastodon", id="1", acct="alice@remote.example"),
        text="whatever",
        visibility=Visibility.PUBLIC,
        created_at=datetime.now(UTC),
    )


_n = iter(range(1, 10_000))


async def _generated_job(
    queue: JobQueue,
    tmp_path: Path,
    prompt: str,
    labels: dict[str, float],
    *,
    flagged: bool = False,
    negative: str = "",
    classifier: str = "nudenet",
) -> int:
    remote = f"m{next(_n)}"
    result = await queue.enqueue(
        NewJob(
            platform="mastodon",
            bot_account="main",
            remote_id=remote,
            requester="alice@remote.example",
            requester_domain="remote.example",
            prompt=prompt,
            negative_prompt=negative,
            model="tiny",
            width=64,
            height=64,
            steps=1,
            visibility="unlisted",
            request=mention_to_dict(_mention(remote)),
        )
    )
    (claimed,) = await queue.claim("w", 1)
    path = tmp_path / f"{remote}.png"
    Image.new("RGB", (64, 64), "white").save(path)
    row = {
        "index": 0,
        "seed": 1,
        "path": str(path),
        "width": 64,
        "height": 64,
        "flagged": flagged,
        "safety": {"classifier": classifier, "labels": labels, "flagged": flagged},
    }
    assert await queue.complete("w", claimed.id, [row])
    return result.job_id


def _replier(db: Any, tmp_path: Path, adapter: RecordingAdapter, **policy: Any):
    config = parse_config({"data_dir": str(tmp_path), "policy": policy})
    queue = JobQueue(db)
    pol = Policy(db, config.policy, config.quotas, PromptFilter(config.prompt_filter))
    return queue, Replier(queue, {"main": adapter}, pol, config)  # type: ignore[dict-item]


def test_names_minor_sees_minor_words_in_prompt_and_negative() -> None:
    assert names_minor("a little girl on the beach")
    assert names_minor("a beach", "teen")
    assert names_minor("portrait, 12 year old")
    assert not names_minor("a lighthouse at dusk")
    assert not names_minor("a kid goat on a hill")  # innocent phrase


def test_the_default_never_posts_a_flagged_image_openly() -> None:
    assert PolicyConfig().flagged_images != "sensitive"
    assert PolicyConfig().minor_exposure_threshold == pytest.approx(0.2)


@pytest.mark.parametrize("flagged_images", ["sensitive", "blur", "withhold"])
async def test_minor_prompt_with_low_exposure_score_is_withheld(
    sqlite_db, tmp_path, flagged_images
) -> None:
    adapter = RecordingAdapter()
    queue, replier = _replier(sqlite_db, tmp_path, adapter, flagged_images=flagged_images)
    # below the normal threshold (0.5), so not flagged; above the minors threshold (0.2)
    job_id = await _generated_job(
        queue, tmp_path, "a little girl at the beach", {"BELLY_EXPOSED": 0.31, "FACE_FEMALE": 0.9}
    )
    await replier.process_once()
    job = await queue.get(job_id)
    assert job.state == JobState.WITHHELD
    assert "minor" in (job.error_message or "")
    assert all(not p.media for p in adapter.posts)  # no image, blurred or not
    await replier.process_once()  # the neutral refusal reply
    assert len(adapter.posts) == 1
    (reply,) = adapter.posts
    assert reply.media == () and reply.in_reply_to_id == job.remote_id
    assert "minor" not in reply.text.lower() and "BELLY" not in reply.text
    assert (await queue.get(job_id)).reply_state == "sent"
    assert (await queue.stats())[JobState.WITHHELD] == 1


async def test_minor_prompt_with_a_flagged_image_is_withheld_whatever_flagged_images(
    sqlite_db, tmp_path
) -> None:
    adapter = RecordingAdapter()
    queue, replier = _replier(sqlite_db, tmp_path, adapter, flagged_images="sensitive")
    job_id = await _generated_job(
        queue,
        tmp_path,
        "portrait",
        {"nsfw_concept": 1.0},
        flagged=True,
        negative="child",
        classifier="diffusers",
    )
    await replier.process_once()
    assert (await queue.get(job_id)).state == JobState.WITHHELD
    assert all(not p.media for p in adapter.posts)


async def test_minor_prompt_without_exposure_is_posted(sqlite_db, tmp_path) -> None:
    adapter = RecordingAdapter()
    queue, replier = _replier(sqlite_db, tmp_path, adapter)
    job_id = await _generated_job(
        queue, tmp_path, "a little girl flying a kite", {"BELLY_EXPOSED": 0.05, "FACE_FEMALE": 0.9}
    )
    await replier.process_once()
    assert (await queue.get(job_id)).state == JobState.DONE
    assert len(adapter.posts[0].media) == 1


async def test_adult_prompt_with_the_same_scores_is_posted(sqlite_db, tmp_path) -> None:
    adapter = RecordingAdapter()
    queue, replier = _replier(sqlite_db, tmp_path, adapter)
    job_id = await _generated_job(queue, tmp_path, "a woman at the beach", {"BELLY_EXPOSED": 0.31})
    await replier.process_once()
    assert (await queue.get(job_id)).state == JobState.DONE
    assert len(adapter.posts[0].media) == 1


async def test_withheld_is_a_terminal_state_in_queue_listings(sqlite_db, tmp_path) -> None:
    assert JobState.WITHHELD in JobState.ALL and JobState.WITHHELD in JobState.TERMINAL
    adapter = RecordingAdapter()
    queue, replier = _replier(sqlite_db, tmp_path, adapter)
    job_id = await _generated_job(queue, tmp_path, "a schoolboy", {"FEET_EXPOSED": 0.25})
    await replier.process_once()
    listed = await queue.list_jobs(state=JobState.WITHHELD)
    assert [r.id for r in listed] == [job_id]
    assert not await queue.retry(job_id)  # it stays for the operator; not re-generated


async def test_minor_withholding_records_the_code_the_console_refuses_to_post(
    sqlite_db, tmp_path
) -> None:
    from fedibot.queue.review import ReviewError, approve

    adapter = RecordingAdapter()
    queue, replier = _replier(sqlite_db, tmp_path, adapter)
    job_id = await _generated_job(queue, tmp_path, "a schoolboy", {"FEET_EXPOSED": 0.25})
    await replier.process_once()
    job = await queue.get(job_id)
    assert (job.state, job.error_code) == (JobState.WITHHELD, "minor_exposure")
    for decision in ("sensitive", "blur"):
        with pytest.raises(ReviewError):
            await approve(queue, job_id, decision, actor="op")
    assert (await queue.get(job_id)).state == JobState.WITHHELD


async def test_all_flagged_under_withhold_is_held_for_review_and_can_be_approved(
    sqlite_db, tmp_path
) -> None:
    from fedibot.queue.review import approve

    adapter = RecordingAdapter()
    queue, replier = _replier(sqlite_db, tmp_path, adapter, flagged_images="withhold")
    job_id = await _generated_job(
        queue, tmp_path, "a statue in a museum", {"BUTTOCKS_EXPOSED": 0.9}, flagged=True
    )
    await replier.process_once()
    job = await queue.get(job_id)
    assert (job.state, job.error_code) == (JobState.WITHHELD, "flagged_output")
    assert adapter.posts == []  # nobody is told until the operator decides
    await approve(queue, job_id, "sensitive", actor="op")
    await replier.process_once()
    (post,) = adapter.posts
    assert len(post.media) == 1 and post.sensitive
    assert (await queue.get(job_id)).state == JobState.DONE


async def test_retention_never_purges_withheld_jobs(sqlite_db, tmp_path) -> None:
    adapter = RecordingAdapter()
    queue, replier = _replier(sqlite_db, tmp_path, adapter)
    job_id = await _generated_job(queue, tmp_path, "a schoolboy", {"FEET_EXPOSED": 0.25})
    await replier.process_once()
    assert (await queue.get(job_id)).state == JobState.WITHHELD
    await queue.purge(older_than_seconds=-10)  # everything finished is "old"
    assert (await queue.get(job_id)) is not None
