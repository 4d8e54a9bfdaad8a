"""Ingest decisions for pictures (docs/picture-input.md) with a stub fetch: which mentions
become image-to-image jobs, `again` and edits keep the picture, wrong combinations refused."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from PIL import Image

from federation.attachments import FetchedPicture
from federation.types import Attachment
from fedibot.config.loader import parse_config
from fedibot.intake.ingest import Ingest
from fedibot.intake.pictures import PictureChecker, PictureError
from fedibot.moderation.policy import Policy
from fedibot.moderation.prompt_filter import PromptFilter
from fedibot.queue.jobs import JobQueue
from fedibot.storage.models import JobState
from generator.safety import NoClassifier
from tests.app.test_ingest import _job, _result_of, mention


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (48, 32), (9, 9, 9)).save(buffer, format="PNG")
    return buffer.getvalue()


PICTURE = Attachment(url="https://mastodon.example/system/a.png", description="alt words")
HOSTS = ("mastodon.example",)


@pytest.fixture
def ingest(sqlite_db, tmp_path) -> Ingest:
    config = parse_config({"data_dir": str(tmp_path)})
    queue = JobQueue(sqlite_db)
    policy = Policy(sqlite_db, config.policy, config.quotas, PromptFilter(config.prompt_filter))
    fetched: list[str] = []

    async def fetch(attachment, hosts, limits) -> FetchedPicture:
        fetched.append(attachment.url)
        return FetchedPicture(png(), "image/png", attachment.url)

    checker = PictureChecker(classifier_factory=NoClassifier, fetch=fetch)
    ingest = Ingest(queue, policy, config, pictures=checker)
    ingest.fetched = fetched  # type: ignore[attr-defined]
    return ingest


async def test_a_picture_makes_an_img2img_job_with_its_picture_stored(ingest) -> None:
    job = await _job(ingest, mention("a cat", attachments=(PICTURE,), media_hosts=HOSTS))
    assert job.state == JobState.QUEUED
    assert job.batch_key.endswith("|img2img@0.6")  # the preset's strength
    assert job.params["options"]["picture"] is True and job.params["options"]["strength"] == 0.6
    assert job.params["picture"]["alt_text"] == "alt words" and job.prompt == "a cat"
    stored = await ingest.queue.picture(job.id)
    assert (stored.width, stored.height, stored.data) == (48, 32, png())


async def test_again_and_edits_keep_the_picture(ingest) -> None:
    first = mention(
        "a cat --strength 0.5", remote_id="p1", attachments=(PICTURE,), media_hosts=HOSTS
    )
    await _result_of(ingest, first, "r1")
    again = await _job(ingest, mention("again", in_reply_to_id="r1"))
    assert again.state == JobState.QUEUED and again.batch_key.endswith("|img2img@0.5")
    assert (await ingest.queue.picture(again.id)).data == png()
    assert ingest.fetched == [PICTURE.url]  # not fetched again

    queued = mention("a dog", remote_id="p2", attachments=(PICTURE,), media_hosts=HOSTS)
    await ingest.handle(queued)
    edited = mention(
        "a dog in a hat --strength 0.8",
        remote_id="p2",
        attachments=(PICTURE,),
        media_hosts=HOSTS,
        edited_at=datetime.now(UTC),
    )
    job = await _job(ingest, edited)
    assert job.prompt == "a dog in a hat" and job.batch_key.endswith("|img2img@0.8")


@pytest.mark.parametrize(
    ("text", "attachments", "words"),
    [
        ("a cat --strength 0.5", (), "only applies when starting from a picture"),
        ('a cat --qr "x"', (PICTURE,), "cannot be combined"),
    ],
)
async def test_wrong_combinations_are_bad_options(ingest, text, attachments, words) -> None:
    job = await _job(ingest, mention(text, attachments=attachments, media_hosts=HOSTS))
    assert job.state == JobState.REJECTED and job.error_code == "bad_option"
    assert words in job.error_message
    assert ingest.fetched == []


async def test_a_video_without_strength_is_a_plain_request(ingest) -> None:
    video = Attachment(url=PICTURE.url, kind="video")
    job = await _job(ingest, mention("a cat", attachments=(video,), media_hosts=HOSTS))
    assert job.state == JobState.QUEUED and "img2img" not in job.batch_key
    assert ingest.fetched == []


async def test_the_picture_limits_come_from_config(sqlite_db, tmp_path) -> None:
    """`[pictures]` in config.toml: the size cap reaches the fetch, the pixel cap the check,
    and the bot's own servers are the hosts allowed to have private addresses."""
    config = parse_config(
        {
            "data_dir": str(tmp_path),
            "pictures": {
                "max_megabytes": 0.5,
                "max_megapixels": 0.001,
                "fetch_timeout_seconds": 7,
                "private_hosts": ["Files.Bots.Example"],
            },
            "accounts": [
                {
                    "platform": "mastodon",
                    "name": "main",
                    "base_url": "https://Bots.Example:8443",
                    "access_token": "not-a-real-token",
                }
            ],
        }
    )
    checker = PictureChecker.from_config(config)
    seen: list[object] = []

    async def fetch(attachment, hosts, limits) -> FetchedPicture:
        seen.append(limits)
        return FetchedPicture(png(), "image/png", attachment.url)

    assert checker.limits.max_pixels == 1000
    checker._fetch = fetch  # type: ignore[method-assign]
    request = mention("a cat", attachments=(PICTURE,), media_hosts=HOSTS)
    with pytest.raises(PictureError) as caught:
        await checker.load(request, "a cat", "")
    assert caught.value.code == "picture_too_large" and "48x32 pixels" in caught.value.message
    [limits] = seen
    assert (limits.max_bytes, limits.timeout_seconds) == (512 * 1024, 7.0)  # type: ignore[attr-defined]
    assert checker.trusted_hosts == ("bots.example", "files.bots.example")
