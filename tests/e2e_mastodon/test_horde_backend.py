"""Whole-app runs with `[generator] backend = "horde"` and `"local+horde"`: the App as
`fedibot run` wires it (Generators), against the fake Mastodon and the fake AI Horde on
127.0.0.1, on a real SQLite file.

The fake Horde finishes a request when the test says so (`Behaviour.done_after_checks`; None
holds it open until the test sets it), never after a sleep. The App's Horde client runs on the
real clock, so a request takes about a second of check interval; every wait is `eventually`
with a generous deadline.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from PIL import Image
from sqlalchemy import select

from fedibot.app import App
from fedibot.config.errors import ConfigError
from fedibot.queue.jobs import horde_jobs
from generator.service import GeneratorService
from tests.e2e_mastodon.conftest import (
    Apps,
    HoldingMastodon,
    app_config,
    bot_statuses,
    eventually,
    replies_to,
    settled,
)
from tests.e2e_mastodon.services import GatedService
from tests.fakes.horde_server import Behaviour, FakeHorde

HORDE_COLOR = (40, 120, 200)  # the fake Horde's first image of a request is this colour


@pytest.fixture
async def horde() -> AsyncIterator[FakeHorde]:
    async with FakeHorde() as server:  # its real clock: only done_after_s would read it
        yield server


def generator_section(horde: FakeHorde, backend: str, **horde_options: Any) -> dict[str, Any]:
    return {
        "backend": backend,
        "horde": {
            "base_url": horde.url,
            "api_key": "e2e-horde-key-0001",
            "contact": "https://bot.example/about",
            "models": {"tiny": "stable_diffusion"},
            **horde_options,
        },
    }


async def horde_rows(app: App) -> list[Any]:
    return await app.db.run(
        lambda conn: list(conn.execute(select(horde_jobs).order_by(horde_jobs.c.job_id)).all())
    )


def near(pixel: Any, color: tuple[int, int, int], tolerance: int = 16) -> bool:
    return all(abs(int(a) - b) <= tolerance for a, b in zip(pixel[:3], color, strict=True))


class NoLocalModel:
    """Stands in for DiffusersBackend: building it means a local model was about to load."""

    built = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        NoLocalModel.built += 1
        raise AssertionError("backend = 'horde' must not build the local diffusers backend")


async def test_horde_backend_answers_a_mention_with_the_hordes_image_and_loads_no_model(
    fake: HoldingMastodon, apps: Apps, horde: FakeHorde, monkeypatch: pytest.MonkeyPatch
) -> None:
    NoLocalModel.built = 0
    monkeypatch.setattr("generator.backend.DiffusersBackend", NoLocalModel)
    request = fake.mention("alice@remote.example", "a lighthouse at dusk")
    app = await apps.start(generator=generator_section(horde, "horde"))
    assert app.generators is not None
    assert app.generators.local is None and app.generators.horde is not None

    [reply] = await eventually(lambda: replies_to(fake, request["id"]))
    stats = await settled(app)
    assert stats["done"] == 1 and len(bot_statuses(fake)) == 1
    assert len(reply["media_attachments"]) == 1
    assert len(horde.submissions) == 1
    assert horde.submissions[0]["models"] == ["stable_diffusion"]
    [job] = await app.queue.list_jobs()
    assert job.state == "done" and job.reply_remote_id == reply["id"]
    [row] = await horde_rows(app)
    assert row.job_id == job.id and row.state == "done" and row.horde_id in horde.requests
    assert row.submissions == 1
    # The posted PNG is the Horde's image (its colour), not a local render.
    images = await app.queue.images(job.id)
    stored = await app.queue.image_bytes(job.id, images)
    with Image.open(io.BytesIO(stored[0])) as png:
        assert png.format == "PNG" and png.size == (64, 64)
        assert near(png.convert("RGB").getpixel((32, 32)), HORDE_COLOR)
    # No local model: the service never built its diffusers backend.
    assert NoLocalModel.built == 0
    assert isinstance(app._service, GeneratorService) and app._service._backend is None


async def test_local_and_horde_burst_is_answered_once_each_some_by_the_horde(
    fake: HoldingMastodon, apps: Apps, horde: FakeHorde, data_dir: Path
) -> None:
    """The local worker is held at a gate while the Horde, with no local worker seen for
    a moment, takes its `max_in_flight` share; the Horde holds its requests until the local
    worker took a job too, then everything is released."""
    horde.default = Behaviour(done_after_checks=None)  # open until the test finishes them
    generator = {
        "max_batch": 1,
        **generator_section(
            horde, "local+horde", max_in_flight=2, overflow_when_no_local_worker_s=0.01
        ),
    }
    gated = GatedService(
        GeneratorService(app_config(data_dir, fake, generator=generator).generator)
    )
    requests = [
        fake.mention(f"user{i}@remote.example", f"a lighthouse number {i}") for i in range(5)
    ]
    app = await apps.start(service=gated, generator=generator)
    assert app.generators is not None
    assert app.generators.local is not None and app.generators.horde is not None

    await eventually(lambda: len(horde.submissions) == 2)
    await eventually(gated.waiting.is_set)  # the local worker holds a job as well
    for fake_request in horde.requests.values():
        fake_request.behaviour.done_after_checks = 0
    horde.default = Behaviour(done_after_checks=0)
    gated.open()

    for r in requests:
        await eventually(lambda r=r: replies_to(fake, r["id"]))
    stats = await settled(app)
    assert stats["done"] == 5
    for r in requests:
        [reply] = replies_to(fake, r["id"])
        assert len(reply["media_attachments"]) == 1
    assert len(bot_statuses(fake)) == 5
    rows = await horde_rows(app)
    by_horde = [row.job_id for row in rows if row.state == "done"]
    assert len(by_horde) >= 2  # some by the Horde…
    assert len(by_horde) == len(horde.submissions)  # …one submission each
    assert all(row.submissions == 1 for row in rows)
    assert len(by_horde) < 5  # …and the local worker answered the rest


async def test_restart_during_a_horde_job_resumes_polling_and_replies_once(
    fake: HoldingMastodon, apps: Apps, horde: FakeHorde
) -> None:
    horde.default = Behaviour(done_after_checks=None)  # never done until the test says so
    request = fake.mention("alice@remote.example", "a lighthouse at dusk")
    generator = generator_section(horde, "horde")
    first = await apps.start(generator=generator)

    async def submitted() -> Any:
        rows = await horde_rows(first)
        return rows if rows and rows[0].horde_id else None

    [row] = await eventually(submitted)
    assert row.state == "submitted" and len(horde.submissions) == 1
    [fake_request] = horde.requests.values()
    assert row.horde_id == fake_request.id
    await eventually(lambda: fake_request.checks >= 1)  # it was being polled
    await apps.stop(first)
    assert replies_to(fake, request["id"]) == []

    fake_request.behaviour.done_after_checks = fake_request.checks + 1
    second = await apps.start(generator=generator)

    [reply] = await eventually(lambda: replies_to(fake, request["id"]))
    stats = await settled(second)
    assert stats["done"] == 1 and len(bot_statuses(fake)) == 1
    assert len(reply["media_attachments"]) == 1
    assert len(horde.submissions) == 1  # resumed by its recorded id: never submitted twice
    [row] = await horde_rows(second)
    assert row.state == "done" and row.horde_id == fake_request.id and row.submissions == 1


async def test_horde_key_from_an_unset_env_variable_stops_the_start_instead_of_being_sent(
    fake: HoldingMastodon, apps: Apps, horde: FakeHorde, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FEDIBOT_E2E_UNSET_HORDE_KEY", raising=False)
    fake.mention("alice@remote.example", "a lighthouse at dusk")
    generator = generator_section(horde, "horde", api_key="env:FEDIBOT_E2E_UNSET_HORDE_KEY")
    with pytest.raises(ConfigError, match="FEDIBOT_E2E_UNSET_HORDE_KEY"):
        await apps.start(generator=generator)
    assert horde.submissions == [] and horde.headers_seen == []


async def test_the_hordes_webhook_makes_the_bot_check_at_once(
    fake: HoldingMastodon, apps: Apps, horde: FakeHorde
) -> None:
    """The first check says "wait 20 minutes" and the bot would look again in 10; the
    Horde's webhook (AI-Horde `send_webhook`: `{"request": id, "id": gen id, ...}`) at the
    configured URL's path on the ops server makes it check now, and the reply goes out."""
    horde.will(Behaviour(done_after_checks=2, wait_time=1200))
    request = fake.mention("alice@remote.example", "a lighthouse at dusk")
    generator = generator_section(
        horde,
        "horde",
        webhook_url="https://bot.example/hooks/horde",
        max_check_interval_s=600,
    )
    app = await apps.start(generator=generator, server={"enabled": True, "port": 0})
    assert app.ops is not None and app.ops.bound_port
    rid = await eventually(lambda: next(iter(horde.check_times), None))
    assert len(horde.check_times[rid]) == 1 and replies_to(fake, request["id"]) == []
    base = f"http://127.0.0.1:{app.ops.bound_port}"
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/hooks/horde", data=b"not json") as bad:
            assert bad.status == 400
        async with http.get(f"{base}/hooks/horde") as wrong_method:
            assert wrong_method.status == 405
        hook = {"request": rid, "id": "gen-1", "kudos": 10.0, "worker_id": "w", "gen": "x"}
        async with http.post(f"{base}/hooks/horde", json=hook) as answer:
            assert answer.status == 200
    [reply] = await eventually(lambda: replies_to(fake, request["id"]), timeout=60)
    assert len(reply["media_attachments"]) == 1
    assert len(horde.check_times[rid]) == 2
