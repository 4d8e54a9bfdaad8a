"""Posting budgets end to end on a real SQLite file and a FakeMastodon over HTTP: spent
uploads survive restarts, a held job shows in `queue stats` / `/metrics` / `doctor`, the grid
option gets a held multi-image reply out as one upload, and a reply ready at start waits for
the adapter's start instead of failing."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from prometheus_client import generate_latest

from fedibot.app import App
from fedibot.cli.main import main
from fedibot.ops.metrics import REGISTRY, record_budgets
from tests.e2e_mastodon.conftest import (
    Apps,
    HoldingMastodon,
    eventually,
    raw_config,
    replies_to,
    settled,
    to_toml,
    tune,
)

SMALL_MEDIA = {"media": {"limit": 4, "per_seconds": 1800}}


def tune_keep_budgets(app: App) -> None:
    """Fast polls as in the other e2e tests, but the durable budgets as configured."""
    for adapter in app.adapters.values():
        kept = adapter.budgets  # type: ignore[attr-defined]
        tune(adapter)  # type: ignore[arg-type]
        adapter.budgets = kept  # type: ignore[attr-defined]


def budget_config(data_dir: Path, fake: HoldingMastodon, **sections: Any) -> Any:
    raw = raw_config(data_dir, fake, **sections)
    raw["accounts"][0]["budgets"] = SMALL_MEDIA
    from fedibot.config.loader import parse_config

    return parse_config(raw)


@pytest.fixture
async def budget_apps(data_dir: Path, fake: HoldingMastodon) -> AsyncIterator[Apps]:
    started = Apps(functools.partial(budget_config, data_dir, fake), prepare=tune_keep_budgets)
    yield started
    await started.stop_all()


async def cli(tmp_path: Path, data_dir: Path, fake: HoldingMastodon, *args: str) -> Any:
    raw = raw_config(data_dir, fake)
    raw["accounts"][0]["budgets"] = SMALL_MEDIA
    config_file = tmp_path / "config.toml"
    config_file.write_text(to_toml(raw))
    # in a thread: the commands run their own event loop
    result = await asyncio.to_thread(
        CliRunner().invoke, main, ["--config", str(config_file), *args]
    )
    assert result.exit_code in (0, 1), result.output
    return result


async def test_spent_uploads_survive_restarts_held_jobs_show_and_a_grid_gets_them_out(
    fake: HoldingMastodon, budget_apps: Apps, data_dir: Path, tmp_path: Path
) -> None:
    # 1. Two images spend 2 of the 4 uploads per 30 minutes.
    app = await budget_apps.start(replies={"grid": "never"})
    first = fake.mention("alice@remote.example", "a lighthouse --n 2")["id"]
    await eventually(lambda: replies_to(fake, first), timeout=60)
    await settled(app)
    await budget_apps.stop(app)
    assert fake.count("POST", "/api/v2/media") == 2

    # 2. After a restart four more images do not fit: the job is held, the requester told.
    app = await budget_apps.start(replies={"grid": "never"})
    second = fake.mention("bob@remote.example", "a harbour at night --n 4")["id"]
    notice = await eventually(lambda: replies_to(fake, second), timeout=60)
    assert notice[0]["media_attachments"] == [] and "minutes" in notice[0]["content"]

    async def held() -> Any:
        jobs = [j for j in await app.queue.list_jobs() if j.requester.startswith("bob")]
        return jobs[0] if jobs and jobs[0].state == "generated" else None

    job = await eventually(held)  # between its (1 s) retries the held job waits in `generated`
    assert fake.count("POST", "/api/v2/media") == 2

    views = await app.replier.gate.ledger.snapshot()  # type: ignore[union-attr]
    record_budgets(views, time.time())
    metrics = generate_latest(REGISTRY).decode()
    assert 'fedibot_budget_held_jobs{account="main",kind="media"} 1.0' in metrics
    assert 'fedibot_budget_limit{account="main",kind="media"} 4.0' in metrics
    await budget_apps.stop(app)

    stats = json.loads((await cli(tmp_path, data_dir, fake, "queue", "stats", "--json")).output)
    [media] = [b for b in stats["budgets"] if b["kind"] == "media"]
    assert (media["limit"], media["spent"], media["held_jobs"]) == (4, 2, [job.id])
    assert 1700 < media["frees_up_in_seconds"] <= 1800
    text = (await cli(tmp_path, data_dir, fake, "queue", "stats")).output
    assert "posting budgets" in text and "1 job(s) held" in text
    doctor = json.loads(
        (await cli(tmp_path, data_dir, fake, "doctor", "--json", "--skip-accounts")).output
    )
    assert any(c["check"] == "budget main media" for c in doctor["checks"])

    # 3. With grid = "when_short" the held images go out now, as one grid upload.
    app = await budget_apps.start(replies={"grid": "when_short"})
    replies = await eventually(
        lambda: [r for r in replies_to(fake, second) if r["media_attachments"]], timeout=60
    )
    await settled(app)
    [reply] = replies
    [grid] = reply["media_attachments"]
    images = await app.queue.images(job.id)
    for place, image in zip(
        ("Top left", "Top right", "Bottom left", "Bottom right"), images, strict=True
    ):
        assert f"{place}: Seed: {image.seed}." in grid["description"]
    assert fake.count("POST", "/api/v2/media") == 3
    [media] = [v for v in await app.replier.gate.ledger.snapshot() if v.kind == "media"]  # type: ignore[union-attr]
    assert (media.spent, media.reserved, media.held_jobs) == (3, 0, [])


async def test_a_reply_ready_at_start_waits_for_the_adapters_start(
    fake: HoldingMastodon, apps: Apps, caplog: pytest.LogCaptureFixture
) -> None:
    # A first run renders the images; the status post is held and the run stopped.
    fake.hold_statuses(after_create=False)
    request = fake.mention("alice@remote.example", "a kite over the sea")["id"]
    app = await apps.start()
    await eventually(lambda: fake.held >= 1, timeout=60)
    await apps.stop(app)
    fake.release()

    # Restarted with the reply ready at once, while the server refuses the first logins.
    fake.fail_next("/api/v1/accounts/verify_credentials", 503, times=2)
    caplog.set_level(logging.INFO)
    app = await apps.start(clock=lambda: time.time() + 400)
    await eventually(lambda: replies_to(fake, request), timeout=60)
    await settled(app)
    assert "call start() first" not in caplog.text
    assert "posting failed unexpectedly" not in caplog.text
    assert len(replies_to(fake, request)) == 1


class ManualClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


async def test_a_held_job_gets_one_follow_up_notice_when_its_promised_time_passes(
    fake: HoldingMastodon, apps: Apps
) -> None:
    clock = ManualClock()
    app = await apps.start(clock=clock, replies={"notify_wait_seconds": 60, "grid": "never"})
    adapter = app.adapters["main"]
    adapter.budgets["media"] = adapter.budgets["media"].model_copy(  # type: ignore[attr-defined]
        update={"limit": 1, "per_seconds": 600}
    )
    first = fake.mention("alice@remote.example", "a red kite")["id"]
    await eventually(lambda: replies_to(fake, first), timeout=60)

    second = fake.mention("bob@remote.example", "a blue kite")["id"]
    [notice] = await eventually(lambda: replies_to(fake, second), timeout=60)
    assert "about 10 minutes" in notice["content"] and not notice["media_attachments"]
    job = await eventually(lambda: app.queue.find("mastodon", "main", second))
    await eventually(lambda: _held(app, job.id))

    # The promised time passes, and the upload then fails: one follow-up, no more.
    fake.fail_next("/api/v2/media", 503, times=1)
    clock.now += 700
    app.replier._wake.set()
    notices = await eventually(lambda: replies_to(fake, second)[1:], timeout=60)
    assert "taking longer" in notices[0]["content"]
    await eventually(lambda: _held(app, job.id))
    # The failed attempt spent its upload slot (the server counts refused requests too):
    # the next one is free a period later.
    clock.now += 600
    app.replier._wake.set()
    await eventually(
        lambda: [r for r in replies_to(fake, second) if r["media_attachments"]], timeout=60
    )
    await settled(app)
    texts = [r for r in replies_to(fake, second) if not r["media_attachments"]]
    assert len(texts) == 2  # the notice and one follow-up
    row = await app.queue.get(job.id)
    assert row is not None and row.params["wait_followup_sent"] is True


async def _held(app: App, job_id: int) -> bool:
    row = await app.queue.get(job_id)
    return row is not None and row.state == "generated" and row.reply_attempts >= 1
