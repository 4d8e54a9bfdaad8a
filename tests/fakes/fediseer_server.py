"""A fake Fediseer API (v0.25.1 shapes) on 127.0.0.1, backed by an in-memory trust graph.

It answers /approvals, /censures_given, /hesitations_given and /whitelist with the exact shapes
of ../shared/fixtures/fediseer and reproduces the server's quirks: truthy `csv`/`domains`
flags whatever their value, paging before filtering, 400 when min_endorsements exceeds the
reference domains, hidden lists → 403, unknown → 404, bad apikey → 401, a ~10 s cache keyed by
the query string that ignores headers, `retry-after` on every answer. Switches make an
endpoint answer 401/403/404/429/500/garbage or hang (see `FakeFediseer.fail`).

Run standalone (the benchmark does): python -m tests.fakes.fediseer_server --generate 10000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import json
import random
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

OPEN, ENDORSED, PRIVATE = "OPEN", "ENDORSED", "PRIVATE"
LIST_CAP = 2000
WHITELIST_CAP = 100
DEFAULT_LIMIT = 100
RATE_LIMITS = {"approvals": 45, "censures_given": 45, "hesitations_given": 45, "whitelist": 90}
ENDPOINTS = tuple(RATE_LIMITS)

MSG_BAD_KEY = "No Instance found matching provided API key. Please ensure you've typed it correctly"
MSG_NOT_FOUND = (
    "No Instances found matching any of the provided domains. Have you remembered to register "
    "them?. You have requested this URI [{uri}] but did you mean /api/v1/{endpoint}/"
    "<string:domains_csv> ?"
)
MSG_MIN_TOO_HIGH = "You cannot request more {what} than the amount of reference domains"
MSG_HIDDEN = "You do not have access to see these {what}"


@dataclass(frozen=True)
class FakeInstance:
    """Frozen so every change goes through TrustGraph (which keeps its caches right)."""

    id: int
    domain: str
    software: str = "lemmy"
    version: str = "0.19.3"
    claimed: int = 0
    open_registrations: bool = True
    email_verify: bool | None = True
    approval_required: bool = True
    has_captcha: bool = False
    guarantor: str | None = None
    state: str = "UP"
    tags: tuple[str, ...] = ()
    visibility_endorsements: str = OPEN
    visibility_censures: str = OPEN
    visibility_hesitations: str = OPEN
    apikey: str | None = None


@dataclass(frozen=True)
class Judgement:
    """A censure or hesitation: its reason (may be a csv like "spam,csam") and evidence."""

    reason: str | None = None
    evidence: str | None = None


class TrustGraph:
    """Instances, guarantees, endorsements, censures and hesitations."""

    def __init__(self) -> None:
        self.instances: dict[str, FakeInstance] = {}
        self.roots: set[str] = set()
        self.endorsements: dict[str, dict[str, str | None]] = {}
        self.censures: dict[str, dict[str, Judgement]] = {}
        self.hesitations: dict[str, dict[str, Judgement]] = {}
        self.given: dict[str, int] = {}
        self.received: dict[str, int] = {}
        self.trusted: list[str] = []
        """The domains this graph was built to be trusted by a test or benchmark."""
        self._version = 0
        self._json_cache: dict[tuple[str, bool], tuple[int, str]] = {}

    def _changed(self) -> None:
        self._version += 1

    def add(self, domain: str, **fields: Any) -> FakeInstance:
        fields.setdefault("id", len(self.instances) + 1)
        fields.setdefault("apikey", f"key-{domain}")
        if "tags" in fields:
            fields["tags"] = tuple(fields["tags"])
        inst = FakeInstance(domain=domain, **fields)
        self.instances[domain] = inst
        self._changed()
        return inst

    def update(self, domain: str, **fields: Any) -> FakeInstance:
        """Change fields of an instance (e.g. guarantor, visibility_endorsements, apikey)."""
        if "tags" in fields:
            fields["tags"] = tuple(fields["tags"])
        inst = dataclasses.replace(self.instances[domain], **fields)
        self.instances[domain] = inst
        self._changed()
        return inst

    def by_apikey(self, key: str) -> FakeInstance | None:
        for inst in self.instances.values():
            if inst.apikey == key:
                return inst
        return None

    def endorse(self, approving: str, endorsed: str, reason: str | None = None) -> None:
        row = self.endorsements.setdefault(approving, {})
        if endorsed not in row:
            self.given[approving] = self.given.get(approving, 0) + 1
            self.received[endorsed] = self.received.get(endorsed, 0) + 1
        row[endorsed] = reason
        self._changed()

    def withdraw_endorsement(self, approving: str, endorsed: str) -> None:
        if self.endorsements.get(approving, {}).pop(endorsed, "missing") != "missing":
            self.given[approving] -= 1
            self.received[endorsed] -= 1
            self._changed()

    def censure(
        self, censuring: str, censured: str, reason: str | None = None, evidence: str | None = None
    ) -> None:
        self.censures.setdefault(censuring, {})[censured] = Judgement(reason, evidence)
        self._changed()

    def hesitate(
        self, hesitating: str, target: str, reason: str | None = None, evidence: str | None = None
    ) -> None:
        self.hesitations.setdefault(hesitating, {})[target] = Judgement(reason, evidence)
        self._changed()

    def is_endorsing(self, approving: str, endorsed: str) -> bool:
        return endorsed in self.endorsements.get(approving, {})

    def details(self, inst: FakeInstance) -> dict[str, Any]:
        """Instance.get_details() of the real server, in its key order."""
        return {
            "id": inst.id,
            "domain": inst.domain,
            "software": inst.software,
            "version": inst.version,
            "claimed": inst.claimed,
            "open_registrations": inst.open_registrations,
            "email_verify": inst.email_verify,
            "approval_required": inst.approval_required,
            "has_captcha": inst.has_captcha,
            "approvals": self.given.get(inst.domain, 0),
            "endorsements": self.received.get(inst.domain, 0),
            "guarantor": inst.guarantor,
            "censure_reasons": None,
            "sysadmins": None,
            "moderators": None,
            "state": inst.state,
            "tags": list(inst.tags),
        }

    def details_json(self, domain: str, *, without_censure_reasons: bool = False) -> str:
        """`details()` as JSON without its braces, cached until the graph changes (so the
        10,000-instance benchmark measures the client, not this fake)."""
        key = (domain, without_censure_reasons)
        hit = self._json_cache.get(key)
        if hit is not None and hit[0] == self._version:
            return hit[1]
        details = self.details(self.instances[domain])
        if without_censure_reasons:
            del details["censure_reasons"]
        text = json.dumps(details, separators=(",", ":"))[1:-1]
        self._json_cache[key] = (self._version, text)
        return text

    @classmethod
    def fixture(cls) -> TrustGraph:
        """The graph of ../shared/fixtures/fediseer/README.md, with the recorded details."""
        g = cls()
        g.add("fediseer.com", id=0, claimed=1)
        g.roots.add("fediseer.com")
        g.add("alpha.example", id=1, claimed=1, guarantor="fediseer.com", tags=["anarchism"])
        g.add(
            "beta.example",
            id=2,
            software="mastodon",
            version="4.2.8",
            claimed=1,
            email_verify=None,
            guarantor="alpha.example",
        )
        g.add("gamma.example", id=3, claimed=1, guarantor="alpha.example")
        g.add("delta.example", id=4, software="piefed", version="1.0", email_verify=None)
        g.add("spam.example", id=5, version="0.18.0")
        g.add(
            "private.example",
            id=6,
            claimed=1,
            guarantor="beta.example",
            visibility_endorsements=PRIVATE,
        )
        g.endorse("alpha.example", "beta.example", "well moderated")
        g.endorse("alpha.example", "gamma.example")
        g.endorse("beta.example", "gamma.example", "friendly admins")
        g.endorse("gamma.example", "beta.example", "well moderated")
        g.endorse("private.example", "alpha.example", "secret endorsement")
        g.endorse("alpha.example", "delta.example", "new instance")
        g.censure("alpha.example", "spam.example", "spam", "https://evidence.example/1")
        g.censure("beta.example", "spam.example", "spam,csam")
        g.censure("gamma.example", "spam.example")
        g.hesitate("beta.example", "delta.example", "lax moderation", "https://evidence.example/2")
        g.trusted = ["alpha.example", "beta.example", "gamma.example"]
        return g

    @classmethod
    def generate(
        cls,
        n_instances: int = 10_000,
        *,
        n_trusted: int = 5,
        endorse_share: float = 0.6,
        censure_share: float = 0.03,
        hesitate_share: float = 0.03,
        guaranteed_share: float = 0.8,
        seed: int = 1,
    ) -> TrustGraph:
        """A large random graph: `n_trusted` guaranteed instances that endorse, censure and
        hesitate over `n_instances` others."""
        rng = random.Random(seed)
        g = cls()
        g.add("fediseer.com", id=0, claimed=1)
        g.roots.add("fediseer.com")
        trusted = [f"trusted{j}.example" for j in range(n_trusted)]
        for domain in trusted:
            g.add(domain, claimed=1, guarantor="fediseer.com")
        softwares = [
            ("lemmy", "0.19.3"),
            ("mastodon", "4.2.8"),
            ("piefed", "1.0"),
            ("gotosocial", "0.16.0"),
            ("akkoma", "3.13.2"),
        ]
        others = [f"i{k:05d}.example" for k in range(n_instances)]
        for domain in others:
            software, version = rng.choice(softwares)
            guaranteed = rng.random() < guaranteed_share
            g.add(
                domain,
                software=software,
                version=version,
                claimed=int(guaranteed),
                guarantor=rng.choice(trusted) if guaranteed else None,
            )
        e_reasons = ["well moderated", "friendly admins", "active community", None, None]
        c_reasons = ["spam", "spam,csam", "harassment", "csam", None]
        h_reasons = ["lax moderation", "slow to act", None]
        for source in trusted:
            for domain in others:
                roll = rng.random()
                if roll < endorse_share:
                    g.endorse(source, domain, rng.choice(e_reasons))
                elif roll < endorse_share + censure_share:
                    g.censure(source, domain, rng.choice(c_reasons))
                elif roll < endorse_share + censure_share + hesitate_share:
                    g.hesitate(source, domain, rng.choice(h_reasons))
        g.trusted = trusted
        return g


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    endpoint: str
    query: tuple[tuple[str, str], ...]
    headers: CIMultiDict[str]
    at: float

    def param(self, name: str) -> str | None:
        for key, value in self.query:
            if key == name:
                return value
        return None


@dataclass
class Failure:
    mode: int | str
    times: int | None
    retry_after: float | int
    delay: float


class _Answer(Exception):
    """An error answer in Fediseer's shape."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message


def _truthy(value: str | None) -> bool:
    """flask-restx `type=bool`: bool("false") is True; only a missing or empty value is false."""
    return value is not None and value != ""


def _int_arg(query: Any, name: str, default: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise _Answer(400, f"Input payload validation failed: {name}") from exc


class FakeFediseer:
    """The fake server. `async with FakeFediseer() as fake:` then `fake.base_url`."""

    def __init__(
        self,
        graph: TrustGraph | None = None,
        *,
        cache_ttl: float = 10.0,
        enforce_rate_limits: bool = False,
    ) -> None:
        self.graph = graph if graph is not None else TrustGraph.fixture()
        self.cache_ttl = cache_ttl
        self.enforce_rate_limits = enforce_rate_limits
        self.received: list[ReceivedRequest] = []
        self.failures: dict[str, Failure] = {}
        self._cache: dict[str, tuple[float, bytes]] = {}
        self._windows: dict[str, list[float]] = {}
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self.app = web.Application()
        self.app.router.add_get("/api/v1/approvals/{domains}", self._approvals)
        self.app.router.add_get("/api/v1/censures_given/{domains}", self._censures_given)
        self.app.router.add_get("/api/v1/hesitations_given/{domains}", self._hesitations_given)
        self.app.router.add_get("/api/v1/whitelist", self._whitelist)

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._closing = asyncio.Event()
        self._runner = web.AppRunner(
            self.app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, shutdown_timeout=1.0)
        await site.start()
        bound_host, bound_port = self._runner.addresses[0][:2]
        self.base_url = f"http://{bound_host}:{bound_port}/api/v1"
        return self.base_url

    async def close(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeFediseer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- switches -------------------------------------------------------------------------

    def fail(
        self,
        endpoint: str,
        mode: int | str,
        *,
        times: int | None = None,
        retry_after: float | int = 1,
        delay: float = 30.0,
    ) -> None:
        """Make `endpoint` ("approvals", "censures_given", "hesitations_given", "whitelist" or
        "*") answer `mode`: an HTTP status (401, 403, 404, 429, 500, 502...), "garbage" (200 with
        HTML) or "slow" (hang `delay` seconds, then answer normally). `times=None`: until
        `clear_failures()`; otherwise only the next `times` requests."""
        if endpoint != "*" and endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}")
        self.failures[endpoint] = Failure(mode, times, retry_after, delay)

    def clear_failures(self) -> None:
        self.failures.clear()

    def clear_cache(self) -> None:
        self._cache.clear()

    def requests_to(self, endpoint: str) -> list[ReceivedRequest]:
        return [r for r in self.received if r.endpoint == endpoint]

    # -- plumbing -------------------------------------------------------------------------

    def _headers(self, endpoint: str, body: bytes, retry_after: float | int = 60) -> dict:
        limit = RATE_LIMITS[endpoint]
        used = len(self._windows.get(endpoint, ()))
        return {
            "content-type": "application/json",
            "etag": hashlib.sha1(body).hexdigest(),
            "retry-after": str(
                int(retry_after) if float(retry_after).is_integer() else retry_after
            ),
            "x-ratelimit-limit": str(limit),
            "x-ratelimit-remaining": str(max(0, limit - used)),
            "x-ratelimit-reset": str(int(time.time()) + 60),
        }

    def _json(
        self, endpoint: str, status: int, body: dict, retry_after: float | int = 60
    ) -> web.Response:
        raw = json.dumps(body, separators=(",", ":")).encode()
        return web.Response(
            status=status, body=raw, headers=self._headers(endpoint, raw, retry_after)
        )

    async def _serve(self, request: web.Request, endpoint: str, build: Any) -> web.Response:
        now = time.monotonic()
        self.received.append(
            ReceivedRequest(
                request.method,
                request.path,
                endpoint,
                tuple(request.query.items()),
                CIMultiDict(request.headers),
                now,
            )
        )
        window = [t for t in self._windows.get(endpoint, []) if now - t < 60]
        window.append(now)
        self._windows[endpoint] = window
        failure = self.failures.get(endpoint) or self.failures.get("*")
        if failure is not None:
            answer = await self._failure(request, endpoint, failure)
            if answer is not None:
                return answer
        if self.enforce_rate_limits and len(window) > RATE_LIMITS[endpoint]:
            wait = max(1, int(60 - (now - window[0])))
            return self._json(
                endpoint, 429, {"message": f"{RATE_LIMITS[endpoint]} per 1 minute"}, wait
            )
        key = request.path_qs
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            raw = cached[1]
            return web.Response(status=200, body=raw, headers=self._headers(endpoint, raw))
        try:
            raw = build(request)
        except _Answer as answer:
            return self._json(endpoint, answer.status, {"message": answer.message})
        if self.cache_ttl > 0:
            self._cache[key] = (now + self.cache_ttl, raw)
        return web.Response(status=200, body=raw, headers=self._headers(endpoint, raw))

    async def _failure(
        self, request: web.Request, endpoint: str, failure: Failure
    ) -> web.Response | None:
        if failure.times is not None:
            if failure.times <= 0:
                return None
            failure.times -= 1
        mode = failure.mode
        if mode == "slow":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), failure.delay)
            return None
        if mode == "garbage":
            return web.Response(
                status=200,
                text="<html><body>502 Bad Gateway</body></html>",
                content_type="text/html",
            )
        status = int(mode)
        messages = {
            401: MSG_BAD_KEY,
            403: MSG_HIDDEN.format(what="endorsements"),
            404: MSG_NOT_FOUND.format(uri=request.path, endpoint=endpoint),
            429: f"{RATE_LIMITS[endpoint]} per 1 minute",
        }
        message = messages.get(status, "Internal Server Error" if status >= 500 else "Error")
        return self._json(endpoint, status, {"message": message}, failure.retry_after)

    # -- endpoints ------------------------------------------------------------------------

    def _requester(self, request: web.Request) -> FakeInstance | None:
        key = request.headers.get("apikey")
        if not key:
            return None
        inst = self.graph.by_apikey(key)
        if inst is None:
            raise _Answer(401, MSG_BAD_KEY)
        return inst

    def _references(
        self, request: web.Request, endpoint: str, visibility_attr: str, what: str, min_name: str
    ) -> tuple[list[FakeInstance], int]:
        """Checks in the real server's order: apikey, registered, min, visibility."""
        requester = self._requester(request)
        names = [d.strip().lower() for d in request.match_info["domains"].split(",")]
        found = [self.graph.instances[d] for d in dict.fromkeys(names) if d in self.graph.instances]
        if not found:
            raise _Answer(404, MSG_NOT_FOUND.format(uri=request.path, endpoint=endpoint))
        minimum = _int_arg(request.query, min_name, 1)
        if minimum > len(names):
            raise _Answer(400, MSG_MIN_TOO_HIGH.format(what=what))
        visible = []
        for inst in sorted(found, key=lambda i: i.id):
            vis = getattr(inst, visibility_attr)
            if vis == ENDORSED and (
                requester is None
                or (
                    requester is not inst
                    and not self.graph.is_endorsing(inst.domain, requester.domain)
                )
            ):
                continue
            if vis == PRIVATE and requester is not inst:
                continue
            visible.append(inst)
        if not visible:
            raise _Answer(403, MSG_HIDDEN.format(what=what))
        return visible, minimum

    @staticmethod
    def _page(request: web.Request, items: list[str], cap: int) -> list[str]:
        page = max(1, _int_arg(request.query, "page", 1))
        limit = _int_arg(request.query, "limit", DEFAULT_LIMIT)
        if cap == WHITELIST_CAP and limit > cap:
            raise _Answer(400, f"limit cannot be more than {cap}")
        limit = max(1, min(limit, cap))
        return items[(page - 1) * limit : page * limit]

    @staticmethod
    def _full(request: web.Request) -> bool:
        """Whether the answer lists whole instances (neither `csv` nor `domains` is truthy)."""
        return not (_truthy(request.query.get("csv")) or _truthy(request.query.get("domains")))

    @staticmethod
    def _shape(
        request: web.Request, domains: list[str], items: list[str], total: int | None
    ) -> bytes:
        """The body: `items` are JSON objects already serialised (one per domain)."""
        tail = "" if total is None else f',"total":{total}'
        if _truthy(request.query.get("csv")):
            head = json.dumps({"csv": ",".join(domains)})[:-1]
        elif _truthy(request.query.get("domains")):
            head = json.dumps({"domains": domains}, separators=(",", ":"))[:-1]
        else:
            head = '{"instances":[' + ",".join(items) + "]"
        return (head + tail + "}").encode()

    @staticmethod
    def _passes(reasons: list[str | None], minimum: int, reasons_csv: str | None) -> bool:
        if reasons_csv:
            wanted = {r.strip().lower() for r in reasons_csv.split(",") if r.strip()}
            return any(
                sum(1 for r in reasons if r is not None and w in r.lower()) >= minimum
                for w in wanted
            )
        return len(reasons) >= minimum

    async def _approvals(self, request: web.Request) -> web.Response:
        return await self._serve(request, "approvals", self._build_approvals)

    def _build_approvals(self, request: web.Request) -> bytes:
        refs, minimum = self._references(
            request, "approvals", "visibility_endorsements", "endorsements", "min_endorsements"
        )
        rows = [self.graph.endorsements.get(r.domain, {}) for r in refs]
        total = sum(len(r) for r in rows)
        targets = sorted({d for r in rows for d in r})
        reasons_csv = request.query.get("reasons_csv")
        full = self._full(request)
        domains, items = [], []
        for domain in self._page(request, targets, LIST_CAP):
            reasons = [r[domain] for r in rows if domain in r]
            if not self._passes(reasons, minimum, reasons_csv):
                continue
            domains.append(domain)
            if full:
                given = json.dumps([r for r in reasons if r is not None])
                items.append(f'{{"endorsement_reasons":{given},{self.graph.details_json(domain)}}}')
        return self._shape(request, domains, items, total)

    async def _censures_given(self, request: web.Request) -> web.Response:
        return await self._serve(
            request, "censures_given", lambda r: self._build_judgements(r, "censure")
        )

    async def _hesitations_given(self, request: web.Request) -> web.Response:
        return await self._serve(
            request, "hesitations_given", lambda r: self._build_judgements(r, "hesitation")
        )

    def _build_judgements(self, request: web.Request, kind: str) -> bytes:
        endpoint = f"{kind}s_given"
        refs, minimum = self._references(
            request, endpoint, f"visibility_{kind}s", f"{kind}s", f"min_{kind}s"
        )
        table = self.graph.censures if kind == "censure" else self.graph.hesitations
        rows = [table.get(r.domain, {}) for r in refs]
        total = sum(len(r) for r in rows)
        targets = sorted({d for r in rows for d in r})
        reasons_csv = request.query.get("reasons_csv")
        full = self._full(request)
        domains, items = [], []
        for domain in self._page(request, targets, LIST_CAP):
            judgements = [r[domain] for r in rows if domain in r]
            if not self._passes([j.reason for j in judgements], minimum, reasons_csv):
                continue
            domains.append(domain)
            if not full:
                continue
            reasons = [j.reason for j in judgements if j.reason]
            evidence = [j.evidence for j in judgements if j.evidence]
            head = json.dumps(
                {
                    f"{kind}_reasons": reasons or None,
                    f"{kind}_evidence": evidence if reasons else None,
                    "rebuttal": None,
                    f"{kind}_count": len(judgements),
                },
                separators=(",", ":"),
            )[:-1]
            details = self.graph.details_json(domain, without_censure_reasons=kind == "censure")
            items.append(f"{head},{details}}}")
        return self._shape(request, domains, items, total)

    async def _whitelist(self, request: web.Request) -> web.Response:
        return await self._serve(request, "whitelist", self._build_whitelist)

    def _build_whitelist(self, request: web.Request) -> bytes:
        self._requester(request)
        guaranteed = sorted(
            (
                i
                for i in self.graph.instances.values()
                if i.guarantor is not None or i.domain in self.graph.roots
            ),
            key=lambda i: -i.id,
        )
        min_endorsements = _int_arg(request.query, "endorsements", 0)
        page_domains = self._page(request, [i.domain for i in guaranteed], WHITELIST_CAP)
        domains, items = [], []
        for domain in page_domains:
            inst = self.graph.instances[domain]
            if self.graph.received.get(domain, 0) < min_endorsements:
                continue
            domains.append(domain)
            head = json.dumps(
                {
                    "visibility_endorsements": inst.visibility_endorsements,
                    "visibility_censures": inst.visibility_censures,
                    "visibility_hesitations": inst.visibility_hesitations,
                    "flags": [],
                },
                separators=(",", ":"),
            )[:-1]
            items.append(f"{head},{self.graph.details_json(domain)}}}")
        return self._shape(request, domains, items, len(guaranteed))


async def _serve_forever(args: argparse.Namespace) -> None:
    graph = (
        TrustGraph.generate(args.generate, n_trusted=args.trusted, seed=args.seed)
        if args.generate
        else TrustGraph.fixture()
    )
    fake = FakeFediseer(graph, cache_ttl=args.cache_ttl)
    base_url = await fake.start(args.host, args.port)
    print(f"READY {base_url} {','.join(graph.trusted)}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await fake.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--generate",
        type=int,
        default=0,
        metavar="N",
        help="serve a generated graph of N instances (default: the fixture graph)",
    )
    parser.add_argument("--trusted", type=int, default=5, help="trusted instances when generating")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cache-ttl", type=float, default=10.0)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_forever(args))


if __name__ == "__main__":
    main()
