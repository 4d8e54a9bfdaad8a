"""Whole-app pictures as input on Lemmy (both API versions): an image in the mention's
markdown, uploaded to the instance's pict-rs, makes an image-to-image reply; one on another
host gets the `picture_foreign_host` reply (docs/picture-input.md)."""

from __future__ import annotations

import io

from PIL import Image

from generator.pngmeta import parse_parameters
from tests.e2e_lemmy.conftest import Apps, embedded_images, eventually, settled, uploaded_name
from tests.fakes.lemmy_server import FakeLemmy


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (30, 60, 90)).save(buffer, format="PNG")
    return buffer.getvalue()


async def test_an_image_in_the_mention_makes_an_image_to_image_reply(
    fake: FakeLemmy, apps: Apps
) -> None:
    alice = fake.add_user("alice", domain="remote.example")
    url = fake.add_image(alice, png())
    mention = fake.mention(alice, f"a cat ![my photo]({url}) --strength 0.5 --steps 8")
    app = await apps.start()
    [reply] = await eventually(lambda: fake.comments_by(fake.bot))
    await settled(app)
    job = await app.queue.find("lemmy", "main", str(mention["id"]))
    assert job.state == "done", (job.error_code, job.error_message)
    assert job.batch_key.endswith("|img2img@0.5")
    assert job.params["picture"]["alt_text"] == "my photo"
    [image_url] = [url for _alt, url, is_image in embedded_images(reply["content"]) if is_image]
    name = uploaded_name(fake, image_url)
    with Image.open(io.BytesIO(fake.images[name].data)) as result:
        assert parse_parameters(result.info["parameters"]).denoising_strength == 0.5


async def test_an_image_on_another_host_gets_a_clear_reply(fake: FakeLemmy, apps: Apps) -> None:
    alice = fake.add_user("alice", domain="remote.example")
    mention = fake.mention(alice, "a cat ![x](http://203.0.113.7/a.png) --strength 0.5")
    app = await apps.start()
    [reply] = await eventually(lambda: fake.comments_by(fake.bot))
    await settled(app)
    job = await app.queue.find("lemmy", "main", str(mention["id"]))
    assert job.state == "rejected" and job.error_code == "picture_foreign_host"
    assert "not stored on your server" in reply["content"]
