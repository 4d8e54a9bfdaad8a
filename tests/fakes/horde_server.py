"""A fake AI Horde (image endpoints) on 127.0.0.1, driven by the test instead of by time.

Shapes — every answer starts from the SDK's example responses copied into
tests/fixtures/horde/ (Haidra-Org/horde-sdk 534826bf, tests/test_data/ai_horde_api/, generated
from the published swagger.json; see that folder's README):
- POST /api/v2/generate/async → 202 RequestAsync (`_v2_generate_async_post_202.json`),
  body checked against GenerationInputStable (width/height multipleOf 64, n ≤ 20, prompt
  minLength 1) → 400 RequestValidationError / rc InvalidSize.
- GET /api/v2/generate/check/{id} → RequestStatusCheck (`_v2_generate_check_id_get_200.json`).
- GET|DELETE /api/v2/generate/status/{id} → RequestStatusStable
  (`_v2_generate_status_id_get_200.json`, `…_delete_200.json`); generations carry
  `censored` and `gen_metadata` [{type: censorship, value: nsfw|csam}].
- Errors: RequestError {message, rc} (rc names from README_return_codes.md).

Behaviour — from ../shared/fixtures/horde/README.md (observed on AI Horde 5.1.5) and
Haidra-Org/AI-Horde fbd5ed46 horde/apis/v2/stable.py:
- status (GET and DELETE share it, keyed by path) allows 10 per 60 s per request id; the 11th
  is 429 with `Retry-After: 60`;
- unknown or expired ids are 404 rc RequestNotFound;
- a model no worker serves is accepted (202, warning NoAvailableWorker) with is_possible=false;
- a worker fault can end as done=true with no generations;
- censored images are placeholders with censored=true and a censorship gen_metadata entry;
- with r2=true `img` is a URL to object storage (served here under /r2/, without apikey),
  with r2=false base64 WebP.

Time: the fake reads the same injected clock as the client (for the status window, and for
`done_after_s`). A request is done after `done_after_checks` check calls or after
`done_after_s` clock seconds, whichever the Behaviour sets — never after a real sleep.
"""

from __future__ import annotations

import base64
import copy
import io
import json
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from PIL import Image

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "horde"
STATUS_LIMIT, STATUS_WINDOW = 10, 60.0  # stable.py ImageAsyncStatus: "10/minute" per path


def _template(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


ASYNC_202 = _template("_v2_generate_async_post_202.json")
CHECK_200 = _template("_v2_generate_check_id_get_200.json")
STATUS_200 = _template("_v2_generate_status_id_get_200.json")
GENERATION = STATUS_200["generations"][0]


class _RealClock:
    def now(self) -> float:
        import time

        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        import asyncio

        await asyncio.sleep(seconds)


@dataclass
class Behaviour:
    """How one submitted request plays out."""

    done_after_checks: int | None = 2  # done on the Nth check call
    done_after_s: float | None = None  # or: done this many clock seconds after submission
    faulted: bool = False  # check/status say faulted=true (after the first check)
    no_generations: bool = False  # done, restarted=2, no generations
    censor: list[str | None] = field(default_factory=list)  # per image: None | nsfw | csam
    impossible: bool = False  # is_possible=false forever
    expire_after_checks: int | None = None  # 404 from this check on
    queue_position: int = 3
    wait_time: int = 20


@dataclass
class FakeRequest:
    id: str
    payload: dict[str, Any]
    behaviour: Behaviour
    submitted_at: float
    checks: int = 0
    cancelled: bool = False
    expired: bool = False
    status_calls: deque[float] = field(default_factory=deque)

    @property
    def n(self) -> int:
        return int(self.payload.get("params", {}).get("n", 1))


class FakeHorde:
    """The server plus knobs. Use `async with FakeHorde() as fake:`; `fake.url` is the API root
    (…/api) to put in HordeConfig.base_url."""

    def __init__(self, clock: Any = None, *, served_models: set[str] | None = None) -> None:
        self.clock = clock or _RealClock()
        self.served_models = served_models  # None: every model is served
        self.default = Behaviour()
        self.behaviours: deque[Behaviour] = deque()  # consumed one per submission
        self.requests: dict[str, FakeRequest] = {}
        self.submissions: list[dict[str, Any]] = []
        self.headers_seen: list[dict[str, str]] = []  # per Horde API call
        self.download_headers: list[dict[str, str]] = []
        self.check_times: dict[str, list[float]] = {}
        self.status_times: dict[str, list[float]] = {}
        self.rate_limited: int = 0
        self.fail_next: dict[str, deque[tuple[int, str]]] = {}  # endpoint → (HTTP, rc)
        self.reject_words: dict[str, str] = {}  # word in prompt → rc (e.g. CorruptPrompt)
        self.latency_s: float = 0.0  # clock seconds before each API answer
        self._images: dict[str, bytes] = {}
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    async def __aenter__(self) -> FakeHorde:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_post("/api/v2/generate/async", self.submit)
        app.router.add_get("/api/v2/generate/check/{id}", self.check)
        app.router.add_get("/api/v2/generate/status/{id}", self.status)
        app.router.add_delete("/api/v2/generate/status/{id}", self.status)
        app.router.add_get("/r2/{name}", self.r2)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -- knobs -----------------------------------------------------------------------------

    def will(self, *behaviours: Behaviour) -> None:
        """The next submissions play out like these (then `default`)."""
        self.behaviours.extend(behaviours)

    def fail(self, endpoint: str, status: int, rc: str, times: int = 1) -> None:
        """The next `times` calls to endpoint (async|check|status|delete) answer an error."""
        self.fail_next.setdefault(endpoint, deque()).extend([(status, rc)] * times)

    def expire(self, request_id: str) -> None:
        self.requests[request_id].expired = True

    # -- handlers --------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith("/api/"):
            self.headers_seen.append(dict(request.headers))
            if self.latency_s:
                await self.clock.sleep(self.latency_s)
            endpoint = request.path.split("/")[4]  # async | check | status
            if request.method == "DELETE":
                endpoint = "delete"
            queued = self.fail_next.get(endpoint)
            if queued:
                status, rc = queued.popleft()
                headers = {"Retry-After": "1"} if status == 429 else None
                return _error(status, rc, f"fake {rc}", headers)
        return await handler(request)

    async def submit(self, request: web.Request) -> web.Response:
        body = await request.json()
        if not request.headers.get("apikey"):
            return _error(401, "InvalidAPIKey", "No API key")
        params = body.get("params", {})
        prompt = body.get("prompt", "")
        if not prompt:
            return _error(400, "MissingPrompt", "prompt required")
        for word, rc in self.reject_words.items():
            if word in prompt:
                return _error(400 if rc == "CorruptPrompt" else 403, rc, "rejected")
        w, h = int(params.get("width", 512)), int(params.get("height", 512))
        if w % 64 or h % 64:
            return _error(
                400, "InvalidSize", "Invalid size. The image dimensions must be a multiple of 64"
            )
        if not 1 <= int(params.get("n", 1)) <= 20:
            return _error(400, "BadRequest", "n out of range", errors={"n": "1..20"})
        behaviour = copy.deepcopy(self.behaviours.popleft() if self.behaviours else self.default)
        models = body.get("models") or []
        served = self.served_models is None or any(m in self.served_models for m in models)
        answer = copy.deepcopy(ASYNC_202)
        if served and not behaviour.impossible:
            answer.pop("warnings")
        else:
            behaviour.impossible = True
        rid = str(uuid.uuid4())
        self.requests[rid] = FakeRequest(rid, body, behaviour, self.clock.now())
        self.submissions.append(body)
        answer.update(id=rid, kudos=10.0 * int(params.get("n", 1)), message="")
        return web.json_response(answer, status=202)

    def _find(self, request: web.Request) -> FakeRequest | web.Response:
        req = self.requests.get(request.match_info["id"])
        if req is None or req.expired:
            return _error(404, "RequestNotFound", "Request Not found")
        return req

    def _done(self, req: FakeRequest) -> bool:
        b = req.behaviour
        if b.impossible:
            return False
        if b.done_after_checks is not None and req.checks >= b.done_after_checks:
            return True
        return b.done_after_s is not None and self.clock.now() - req.submitted_at >= b.done_after_s

    def _progress(self, req: FakeRequest) -> dict[str, Any]:
        b = req.behaviour
        out = copy.deepcopy(CHECK_200)
        done = self._done(req) or req.cancelled
        faulted = b.faulted and req.checks >= 1
        out.update(
            done=done or faulted,
            faulted=faulted,
            is_possible=not b.impossible,
            finished=req.n if done and not b.no_generations else 0,
            waiting=0 if done else req.n,
            restarted=2 if b.no_generations and done else 0,
            queue_position=0 if done else b.queue_position,
            wait_time=0 if done else b.wait_time,
            kudos=10.0 * req.n if done else 0.0,
        )
        return out

    async def check(self, request: web.Request) -> web.Response:
        req = self._find(request)
        if isinstance(req, web.Response):
            return req
        req.checks += 1
        self.check_times.setdefault(req.id, []).append(self.clock.now())
        b = req.behaviour
        if b.expire_after_checks is not None and req.checks >= b.expire_after_checks:
            req.expired = True
            return _error(404, "RequestNotFound", "Request Not found")
        return web.json_response(self._progress(req))

    async def status(self, request: web.Request) -> web.Response:
        req = self._find(request)
        if isinstance(req, web.Response):
            return req
        now = self.clock.now()
        window = req.status_calls
        while window and window[0] <= now - STATUS_WINDOW:
            window.popleft()
        if len(window) >= STATUS_LIMIT:
            self.rate_limited += 1
            return web.json_response(
                {"message": "10 per 1 minute"}, status=429, headers={"Retry-After": "60"}
            )
        window.append(now)
        self.status_times.setdefault(req.id, []).append(now)
        if request.method == "DELETE":
            req.cancelled = True
        out = copy.deepcopy(STATUS_200)
        out.update(self._progress(req))
        out["shared"] = bool(req.payload.get("shared"))
        finished = self._done(req) and not req.behaviour.no_generations
        out["generations"] = self._generations(req) if finished else []
        return web.json_response(out)

    def _generations(self, req: FakeRequest) -> list[dict[str, Any]]:
        params = req.payload.get("params", {})
        w, h = int(params.get("width", 512)), int(params.get("height", 512))
        seed0 = int(params["seed"]) if str(params.get("seed", "")).isdigit() else 1234
        models = req.payload.get("models") or ["stable_diffusion"]
        gens = []
        for i in range(req.n):
            mark = req.behaviour.censor[i] if i < len(req.behaviour.censor) else None
            gen = copy.deepcopy(GENERATION)
            gid = str(uuid.uuid4())
            data = _webp(w, h, "black" if mark else (40 + 20 * i, 120, 200))
            if req.payload.get("r2", True):
                self._images[gid] = data
                img = f"http://127.0.0.1:{self.port}/r2/{gid}.webp?X-Amz-Signature=fake"
            else:
                img = base64.b64encode(data).decode()
            gen.update(
                img=img,
                seed=str(seed0 + i),
                id=gid,
                model=models[0],
                worker_id=str(uuid.UUID(int=i + 1)),
                worker_name=f"fake-worker-{i}",
                state="censored" if mark else "ok",
                censored=bool(mark),
                gen_metadata=[{"type": "censorship", "value": mark}] if mark else [],
            )
            gens.append(gen)
        return gens

    async def r2(self, request: web.Request) -> web.Response:
        self.download_headers.append(dict(request.headers))
        data = self._images.get(request.match_info["name"].removesuffix(".webp"))
        if data is None:
            return web.Response(status=404)
        return web.Response(body=data, content_type="image/webp")


_WEBP_CACHE: dict[tuple[int, int, Any], bytes] = {}


def _webp(w: int, h: int, color: Any) -> bytes:
    key = (w, h, color)
    if key not in _WEBP_CACHE:
        buf = io.BytesIO()
        Image.new("RGB", (w, h), color).save(buf, "WEBP", quality=50)
        _WEBP_CACHE[key] = buf.getvalue()
    return _WEBP_CACHE[key]


def _error(
    status: int,
    rc: str,
    message: str,
    headers: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> web.Response:
    body: dict[str, Any] = {"message": message, "rc": rc}
    if errors:
        body["errors"] = errors
    return web.json_response(body, status=status, headers=headers)
