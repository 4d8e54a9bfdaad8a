"""Fixtures for the console: a real SQLite file, seeded jobs with real PNGs, a signed-in
aiohttp test client."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from PIL import Image
from sqlalchemy import insert, update

from fedibot.config.loader import FedibotConfig, parse_config
from fedibot.console.auth import hash_password
from fedibot.console.context import ConsoleContext
from fedibot.console.web import build_app
from fedibot.queue.jobs import JobQueue, NewJob, QueueSettings, images, jobs
from fedibot.storage.database import Database
from fedibot.storage.migrate import upgrade
from generator.pngmeta import Parameters, save_png

PASSWORD = "correct horse battery staple"
TOKEN = "tok-" + "x" * 28
NOW = 1_800_000_000.0


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="session")
def password_hash() -> str:
    """Cheap argon2 parameters: the tests sign in often on shared CPUs."""
    from argon2 import PasswordHasher

    hashed = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    assert PasswordHasher().verify(hashed, PASSWORD)  # the default hasher reads it
    assert hash_password(PASSWORD).startswith("$argon2id$")
    return hashed


def console_raw(
    data_dir: Path, password_hash: str, sections: dict[str, Any] | None = None, **console: Any
) -> dict[str, Any]:
    return {
        **(sections or {}),
        "data_dir": str(data_dir),
        "database": {"url": f"sqlite:///{data_dir / 'console.db'}"},
        "server": {"enabled": False},
        "console": {
            "enabled": True,
            "port": 0,
            "operators": [
                {"name": "alice", "password_hash": password_hash},
                {"name": "bob", "token": TOKEN},
            ],
            **console,
        },
    }


@dataclass
class Seeder:
    """Makes jobs in given states, with real PNG files under the data dir."""

    queue: JobQueue
    data_dir: Path
    n: int = 0
    made: list[int] = field(default_factory=list)

    async def job(
        self,
        *,
        state: str = "done",
        prompt: str = "a lighthouse at dusk",
        requester: str = "alice@remote.example",
        visibility: str = "public",
        images_n: int = 1,
        flagged: bool = False,
        safety: dict[str, Any] | None = None,
        error_code: str | None = None,
        params: dict[str, Any] | None = None,
        request: dict[str, Any] | None = None,
        created_at: float | None = None,
        finished_at: float | None = None,
        kind: str = "mention",
    ) -> int:
        self.n += 1
        result = await self.queue.enqueue(
            NewJob(
                platform="mastodon",
                bot_account="main",
                remote_id=f"r{self.n}",
                requester=requester,
                requester_domain=requester.rsplit("@", 1)[-1],
                prompt=prompt,
                negative_prompt="blurry",
                model="tiny",
                width=64,
                height=64,
                steps=2,
                guidance=5.0,
                seed=1000 + self.n,
                visibility=visibility,
                kind=kind,
                params=params or {},
                request=request or {},
            )
        )
        job_id = result.job_id
        rows = []
        for index in range(images_n):
            path = self.data_dir / "images" / str(job_id) / f"{index}.png"
            color = (40 * index % 255, 120, 200)
            save_png(
                Image.new("RGB", (64, 64), color),
                path,
                Parameters(prompt, "blurry", 2, "Euler", 5.0, 1000 + self.n, 64, 64, "tiny"),
            )
            rows.append(
                {
                    "job_id": job_id,
                    "index": index,
                    "seed": 1000 + self.n + index,
                    "path": str(path),
                    "width": 64,
                    "height": 64,
                    "flagged": flagged,
                    "safety": safety
                    or {
                        "classifier": "nudenet",
                        "labels": {"FEMALE_BREAST_EXPOSED": 0.91 if flagged else 0.01},
                        "flagged": flagged,
                    },
                }
            )
        values: dict[str, Any] = {"state": state, "error_code": error_code}
        if created_at is not None:
            values["created_at"] = created_at
        if finished_at is not None:
            values["finished_at"] = finished_at

        def body(conn: Any) -> None:
            if rows:
                conn.execute(insert(images), rows)
            conn.execute(update(jobs).where(jobs.c.id == job_id).values(**values))

        await self.queue.db.run(body)
        self.made.append(job_id)
        return job_id


@dataclass
class Console:
    client: TestClient  # type: ignore[type-arg]
    ctx: ConsoleContext
    seed: Seeder
    clock: Clock
    csrf: str = ""

    async def login(self, name: str = "alice", secret: str = PASSWORD) -> Any:
        page = await self.client.get("/login")
        token = form_token(await page.text())
        response = await self.client.post(
            "/login",
            data={"csrf": token, "name": name, "password": secret, "next": "/"},
            allow_redirects=False,
        )
        if response.status == 303:
            home = await self.client.get("/")
            self.csrf = form_token(await home.text())
        return response

    async def post(self, path: str, data: dict[str, Any] | None = None, **kw: Any) -> Any:
        body = {"csrf": self.csrf, **(data or {})}
        return await self.client.post(path, data=body, allow_redirects=False, **kw)


def form_token(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no csrf field in the page"
    return match.group(1)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_config(tmp_path: Path, password_hash: str) -> Callable[..., FedibotConfig]:
    def build(sections: dict[str, Any] | None = None, **console: Any) -> FedibotConfig:
        return parse_config(console_raw(tmp_path / "data", password_hash, sections, **console))

    return build


@pytest.fixture
def console_options() -> dict[str, Any]:
    """Override in a module: {"sections": {...}, **console keys}."""
    return {}


@pytest.fixture
async def console(
    make_config: Callable[..., FedibotConfig], clock: Clock, console_options: dict[str, Any]
) -> AsyncIterator[Console]:
    config = make_config(**console_options)
    db = Database(config.database.url)
    await upgrade(db)
    queue = JobQueue(db, QueueSettings(clock=clock))
    ctx = ConsoleContext(config, db, queue, clock)
    client = TestClient(TestServer(build_app(ctx)))
    await client.start_server()
    try:
        yield Console(client, ctx, Seeder(queue, Path(config.data_dir)), clock)
    finally:
        await client.close()
        await db.dispose()


@pytest.fixture
async def signed_in(console: Console) -> Console:
    response = await console.login()
    assert response.status == 303
    return console
