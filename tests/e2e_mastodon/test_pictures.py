"""Whole-app QR codes and pictures as input on Mastodon (docs/picture-input.md): a `--qr`
mention is answered with an image whose QR code decodes to the text (decoded here with
zxing-cpp from the bytes the bot uploaded); an attached picture makes an image-to-image job
(the PNG records `Denoising strength`); oversize, wrong-type and foreign-host pictures and
pictures the safety check flags get their clear replies, and nothing is generated for them."""

from __future__ import annotations

import functools
import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from fedibot.app import App
from fedibot.intake.pictures import PictureChecker, PictureLimits
from generator.pngmeta import parse_parameters
from generator.qr import decode
from generator.types import SafetyResult
from tests.e2e_mastodon.conftest import (
    Apps,
    HoldingMastodon,
    app_config,
    eventually,
    posted_text,
    replies_to,
    settled,
    tune_app,
)

QR_TEXT = "https://example.org/x"


def png(width: int = 64, height: int = 64, color: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()


def uploaded(fake: HoldingMastodon, reply: dict[str, Any]) -> list[bytes]:
    """The bytes of the images the bot attached to `reply`."""
    return [fake.media[m["id"]].data or b"" for m in reply["media_attachments"]]


async def reply_and_job(fake: HoldingMastodon, app: App, request: dict[str, Any]) -> Any:
    [reply] = await eventually(lambda: replies_to(fake, request["id"]))
    await settled(app)
    job = await app.queue.find("mastodon", "main", request["id"])
    return reply, job


async def test_a_qr_mention_is_answered_with_a_qr_code_that_decodes_to_the_text(
    fake: HoldingMastodon, apps: Apps
) -> None:
    request = fake.mention("alice@remote.example", f'a garden --qr "{QR_TEXT}" --size 192x128')
    app = await apps.start()
    reply, job = await reply_and_job(fake, app, request)
    assert job.state == "done", (job.error_code, job.error_message)
    assert job.batch_key.endswith("|qr")
    [data] = uploaded(fake, reply)
    with Image.open(io.BytesIO(data)) as image:
        assert decode(image) == [QR_TEXT]
        assert parse_parameters(image.info["parameters"]).qr == QR_TEXT


async def test_an_attached_picture_with_strength_makes_an_image_to_image_reply(
    fake: HoldingMastodon, apps: Apps
) -> None:
    media = fake.add_picture(png(), description="my red square")
    request = fake.mention(
        "alice@remote.example", "a cat --strength 0.5 --steps 8", media_ids=[media]
    )
    app = await apps.start()
    reply, job = await reply_and_job(fake, app, request)
    assert job.state == "done", (job.error_code, job.error_message)
    assert job.batch_key.endswith("|img2img@0.5")
    [data] = uploaded(fake, reply)
    with Image.open(io.BytesIO(data)) as image:
        assert parse_parameters(image.info["parameters"]).denoising_strength == 0.5
    stored = await app.queue.picture(int(job.id))
    assert stored is not None and stored.data == png() and stored.alt_text == "my red square"
    assert job.params["picture"]["alt_text"] == "my red square"
    assert "my red square" not in job.prompt  # the alt text is context, not the prompt
    assert len(fake.media_fetches) == 1


async def test_a_picture_alone_uses_the_presets_strength(fake: HoldingMastodon, apps: Apps) -> None:
    media = fake.add_picture(png())
    request = fake.mention("alice@remote.example", "a dog --steps 5", media_ids=[media])
    app = await apps.start()
    reply, job = await reply_and_job(fake, app, request)
    assert job.state == "done", (job.error_code, job.error_message)
    assert job.batch_key.endswith("|img2img@0.6")
    [data] = uploaded(fake, reply)
    with Image.open(io.BytesIO(data)) as image:
        assert parse_parameters(image.info["parameters"]).denoising_strength == 0.6


async def test_a_reply_with_strength_starts_from_the_parent_posts_picture(
    fake: HoldingMastodon, apps: Apps
) -> None:
    media = fake.add_picture(png(color=(10, 200, 10)))
    author = fake.account("bob@remote.example")["id"]
    parent = fake._new_status(author, "my photo", media_ids=[media])
    request = fake.mention(
        "alice@remote.example", "a forest --strength 0.5 --steps 8", in_reply_to_id=parent["id"]
    )
    app = await apps.start()
    _reply, job = await reply_and_job(fake, app, request)
    assert job.state == "done", (job.error_code, job.error_message)
    stored = await app.queue.picture(int(job.id))
    assert stored is not None and stored.data == png(color=(10, 200, 10))


def small_pictures(app: App) -> None:
    tune_app(app)
    app.ingest.pictures.limits = PictureLimits(max_bytes=4096, max_pixels=256 * 256)


@pytest.mark.parametrize(
    ("picture", "code", "words"),
    [
        (dict(data=png(128, 128) + b"\0" * 5000), "picture_too_large", "larger than 4 KiB"),
        (dict(data=png(300, 300)), "picture_too_large", "300x300"),
        (dict(data=b"GIF89a not really", content_type="image/gif"), "picture_wrong_type", "gif"),
        (
            dict(data=b"%PDF-1.4", content_type="image/png"),
            "picture_wrong_type",
            "could not be read",
        ),
        (dict(data=png(), kind="video"), "picture_wrong_type", "video"),
        (
            dict(data=png(), url="http://203.0.113.9/system/x/original/1.png"),
            "picture_foreign_host",
            "not stored on your server",
        ),
    ],
)
async def test_unusable_pictures_get_a_clear_reply_and_nothing_is_generated(
    fake: HoldingMastodon,
    data_dir: Path,
    picture: dict[str, Any],
    code: str,
    words: str,
) -> None:
    apps = Apps(functools.partial(app_config, data_dir, fake), prepare=small_pictures)
    try:
        media = fake.add_picture(**picture)
        request = fake.mention(
            "alice@remote.example", "a cat --strength 0.5 --steps 8", media_ids=[media]
        )
        app = await apps.start()
        reply, job = await reply_and_job(fake, app, request)
        assert job.state == "rejected" and job.error_code == code
        assert words in posted_text(fake, reply["id"])
        assert reply["media_attachments"] == []
        assert await app.queue.picture(int(job.id)) is None
        if code == "picture_foreign_host":
            assert fake.media_fetches == []  # never fetched
    finally:
        await apps.stop_all()


class Flagging:
    name = "stub"

    def classify(self, image: Image.Image) -> SafetyResult:
        return SafetyResult({"FEMALE_BREAST_EXPOSED": 0.9}, flagged=True, classifier=self.name)


async def test_a_picture_the_safety_check_flags_is_refused(
    fake: HoldingMastodon, data_dir: Path
) -> None:
    def flagging(app: App) -> None:
        tune_app(app)
        app.ingest.pictures = PictureChecker(
            classifier_factory=Flagging, trusted_hosts=("127.0.0.1",)
        )

    apps = Apps(functools.partial(app_config, data_dir, fake), prepare=flagging)
    try:
        media = fake.add_picture(png())
        request = fake.mention(
            "alice@remote.example", "a cat --strength 0.5 --steps 8", media_ids=[media]
        )
        app = await apps.start()
        reply, job = await reply_and_job(fake, app, request)
        assert job.state == "rejected" and job.error_code == "picture_refused"
        assert "safety check" in posted_text(fake, reply["id"])
        assert reply["media_attachments"] == []
    finally:
        await apps.stop_all()
