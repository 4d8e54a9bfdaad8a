"""The console in headless Chromium (selenium + the system chromedriver) against the whole
App wired to the fake Mastodon: sign in, see the gallery, approve one held image and see it
posted, discard another and see the requester told. Screenshots go to the test's tmp_path.

The output check that withholds images is played by the test (it moves two queued jobs to
`withheld` with flagged images), exactly as the worker will once that state exists.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import insert, update

from fedibot.queue.jobs import images, jobs
from fedibot.queue.review import DISCARD_REASONS
from generator.pngmeta import Parameters, save_png
from tests.console.conftest import PASSWORD
from tests.e2e_mastodon.conftest import (
    HIGH_LIMITS,
    HoldingMastodon,
    posted_text,
    raw_config,
    replies_to,
    tune_app,
)
from tests.e2e_support import eventually

CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM = next(
    (p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if Path(p).exists()), ""
)

# Skipped only outside CI (scripts/install dev installs the browser where it can); in CI a
# missing browser is a failure, not a silent skip.
pytestmark = pytest.mark.skipif(
    not (Path(CHROMEDRIVER).exists() and CHROMIUM) and os.environ.get("CI") != "true",
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
)


@pytest.fixture
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,900", "--disable-extensions"):  # fmt: skip
        options.add_argument(arg)
    # The system driver, never a download (Selenium Manager is not asked).
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
async def fake() -> AsyncIterator[HoldingMastodon]:
    server = HoldingMastodon(heartbeat_interval=0.2, limits=dict(HIGH_LIMITS))
    await server.start()
    try:
        yield server
    finally:
        server.release()
        await server.close()


@pytest.fixture
async def app(tmp_path: Path, fake: HoldingMastodon, password_hash: str) -> AsyncIterator[Any]:
    from fedibot.app import App
    from fedibot.config.loader import parse_config

    data_dir = tmp_path / "data"
    raw = raw_config(
        data_dir,
        fake,
        console={
            "enabled": True,
            "port": 0,
            "operators": [{"name": "alice", "password_hash": password_hash}],
        },
    )
    application = App(parse_config(raw), with_worker=False)
    tune_app(application)
    await application.start()
    try:
        yield application
    finally:
        await application.stop()


async def withhold(app: Any, job_id: int, data_dir: Path, color: tuple[int, int, int]) -> None:
    """What the output check will do: store the image, flag it, hold the job."""
    row = await app.queue.get(job_id)
    path = data_dir / "images" / str(job_id) / "0.png"
    save_png(
        Image.new("RGB", (96, 96), color),
        path,
        Parameters(row.prompt, "", 2, "Euler", 5.0, 7, 96, 96, "tiny"),
    )

    def body(conn: Any) -> None:
        conn.execute(
            insert(images),
            [
                {
                    "job_id": job_id,
                    "index": 0,
                    "seed": 7,
                    "path": str(path),
                    "width": 96,
                    "height": 96,
                    "flagged": True,
                    "safety": {
                        "classifier": "nudenet",
                        "labels": {"BUTTOCKS_EXPOSED": 0.87},
                        "flagged": True,
                    },
                }
            ],
        )
        conn.execute(update(jobs).where(jobs.c.id == job_id).values(state="withheld"))

    await app.db.run(body)


async def test_sign_in_gallery_approve_and_discard_in_a_browser(
    app: Any, fake: HoldingMastodon, browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    approve_me = fake.mention("ann@remote.example", "a lighthouse at dusk")
    discard_me = fake.mention("ben@remote.example", "a storm over the sea")

    async def queued() -> list[Any] | None:
        rows = [j for j in await app.queue.list_jobs() if j.state == "queued"]
        return rows if len(rows) == 2 else None

    by_remote = {j.remote_id: j.id for j in await eventually(queued)}
    first, second = by_remote[approve_me["id"]], by_remote[discard_me["id"]]
    data_dir = Path(app.config.data_dir)
    await withhold(app, first, data_dir, (200, 90, 60))
    await withhold(app, second, data_dir, (60, 90, 200))

    base = app.console.url.rstrip("/")
    shots = tmp_path / "screenshots"
    shots.mkdir()

    async def run(fn: Any, *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)

    # Every WebDriver call runs in a thread: the console is served by this event loop.
    async def find(css: str) -> Any:
        return await eventually(lambda: run(browser.find_elements, By.CSS_SELECTOR, css), 30)

    async def url() -> str:
        return await run(lambda: browser.current_url)

    async def source() -> str:
        return await run(lambda: browser.page_source)

    async def shows(text: str) -> bool:
        return text in await source()

    # sign in
    await run(browser.get, f"{base}/gallery")
    assert "/login" in await url()
    await run((await find("input[name=name]"))[0].send_keys, "alice")
    await run((await find("input[name=password]"))[0].send_keys, PASSWORD)
    await run((await find("form[action='/login'] button"))[0].click)

    async def at_gallery() -> bool:
        return (await url()).endswith("/gallery")

    try:
        await eventually(at_gallery, 30)
    except AssertionError:
        raise AssertionError(f"{await url()}: {(await source())[:3000]}") from None

    # the gallery shows both held results with their thumbnails
    cards = await find("article.card")
    assert len(cards) == 2
    assert await shows("a lighthouse at dusk")
    script = (
        "return Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0).length"
    )
    assert await eventually(lambda: _equals(run(browser.execute_script, script), 2), 30)
    await run(browser.save_screenshot, str(shots / "gallery.png"))

    await run(browser.get, f"{base}/")
    await find("svg.chart")
    await run(browser.save_screenshot, str(shots / "overview.png"))

    # review: post the first as sensitive
    await run(browser.get, f"{base}/review")
    await find(f"#review-{first}")
    await run(browser.save_screenshot, str(shots / "review.png"))
    [approve, *_] = await find(f"form[action='/review/{first}/approve'] button")
    await run(approve.click)
    await eventually(lambda: shows("approved (sensitive)"), 30)
    [reply] = await eventually(lambda: replies_to(fake, approve_me["id"]), 30)
    assert reply["sensitive"] is True
    assert len(reply["media_attachments"]) == 1
    assert reply["spoiler_text"] == app.config.policy.flagged_spoiler_text

    # discard the second with a reason from the list (the page asks first)
    [form] = await find(f"form[action='/review/{second}/discard']")
    select = await run(form.find_element, By.NAME, "reason")
    await run(Select(select).select_by_value, "not_safe")
    await run((await run(form.find_element, By.CSS_SELECTOR, "button")).click)
    alert = await eventually(lambda: run(_alert, browser), 30)
    await run(alert.accept)
    await eventually(lambda: shows("requester told"), 30)
    [told] = await eventually(lambda: replies_to(fake, discard_me["id"]), 30)
    assert DISCARD_REASONS["not_safe"] in posted_text(fake, told["id"])
    assert told["media_attachments"] == []

    states = {j.id: (j.state, j.reply_state) for j in await app.queue.list_jobs()}
    assert states[first] == ("done", "none")
    assert states[second] == ("rejected", "sent")

    # the audit page names the operator
    await run(browser.get, f"{base}/audit?action=review.")
    [table] = await find("table.audit")
    text = await run(lambda: table.text)
    assert "console:alice review.approve" in text and "console:alice review.discard" in text
    for name in ("overview.png", "gallery.png", "review.png"):
        assert (shots / name).stat().st_size > 1000
    keep = Path(__import__("os").environ.get("FEDIBOT_CONSOLE_SHOTS", ""))
    if keep.name:
        keep.mkdir(parents=True, exist_ok=True)
        for shot in shots.iterdir():
            shutil.copy(shot, keep / shot.name)


async def _equals(value: Any, expected: Any) -> bool:
    return await value == expected


def _alert(browser: Any) -> Any:
    from selenium.common.exceptions import NoAlertPresentException

    try:
        return browser.switch_to.alert
    except NoAlertPresentException:
        return None
