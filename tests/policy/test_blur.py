"""blur_image writes a blurred sibling file and leaves the original alone."""

from __future__ import annotations

from PIL import Image, ImageStat

from fedibot.moderation.policy import blur_image


def test_blur_image_writes_a_blurred_sibling(tmp_path) -> None:
    src = tmp_path / "img-0.png"
    img = Image.new("RGB", (64, 64), "white")
    for x in range(0, 64, 2):  # stripes: maximal local contrast
        for y in range(64):
            img.putpixel((x, y), (0, 0, 0))
    img.save(src)
    out = blur_image(src)
    assert out == tmp_path / "img-0.blurred.png"
    with Image.open(out) as blurred, Image.open(src) as original:
        assert blurred.size == original.size
        centre = blurred.convert("L").crop((16, 16, 48, 48))
        assert ImageStat.Stat(centre).stddev[0] < 5
        assert ImageStat.Stat(original.convert("L")).stddev[0] > 100
