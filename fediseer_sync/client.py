"""An aiohttp client for the read side of the Fediseer API (v0.25).

Quirks it handles (see ../shared/fixtures/fediseer/README.md):
- `csv`/`domains` flags are truthy whatever their value, so they are only ever sent as `true`;
- `/approvals` pages before it filters, so lists are read with one large `limit` and paged by
  `total` (which counts raw rows, an upper bound of the instances);
- GET responses are cached ~10 s by query string ignoring headers, so a request that carries
  an `apikey` also carries a unique `_` cache-buster;
- 401/403/404/400 raise distinct FediseerRefused subclasses, 429 waits out `Retry-After` a
  bounded number of times, 5xx/timeouts/garbage retry with exponential backoff and jitter.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
from pydantic import SecretStr

from fediseer_sync.config import FediseerConfig
from fediseer_sync.domains import normalize_domain
from fediseer_sync.errors import (
    FediseerBadResponse,
    FediseerRateLimited,
    FediseerUnavailable,
    refused,
)
from fediseer_sync.models import InstanceEntry, split_reasons

log = logging.getLogger(__name__)

MAX_LIST_LIMIT = 2000
"""Fediseer caps one page of /approvals, /censures_given, /hesitations_given at 2000."""
WHITELIST_LIMIT = 100
"""/whitelist answers 400 above limit=100."""
MAX_PAGES = 1000

Sleep = Callable[[float], Awaitable[None]]


class FediseerClient:
    """Read endorsements, censures, hesitations and the whitelist. Use as an async context
    manager, or pass your own `session` (then you close it)."""

    def __init__(
        self,
        base_url: str = "https://fediseer.com/api/v1",
        *,
        apikey: SecretStr | str | None = None,
        client_agent: str = "fedibot:0.1.0:unknown",
        timeout: float = 30.0,
        max_retries: int = 3,
        backoff_base: float = 1.0,
        backoff_max: float = 30.0,
        max_rate_limit_waits: int = 2,
        max_retry_after: float = 120.0,
        page_size: int = MAX_LIST_LIMIT,
        session: aiohttp.ClientSession | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if isinstance(apikey, str):
            apikey = SecretStr(apikey)
        self.base_url = base_url.rstrip("/")
        self._apikey = apikey
        self.client_agent = client_agent
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_rate_limit_waits = max_rate_limit_waits
        self.max_retry_after = max_retry_after
        self.page_size = max(1, min(page_size, MAX_LIST_LIMIT))
        self._session = session
        self._own_session = session is None
        self._sleep = sleep
        self._seq = itertools.count()

    @classmethod
    def from_config(cls, config: FediseerConfig, **kwargs: Any) -> FediseerClient:
        kwargs.setdefault("apikey", config.apikey)
        kwargs.setdefault("client_agent", config.client_agent)
        kwargs.setdefault("timeout", config.timeout_seconds)
        kwargs.setdefault("max_retries", config.max_retries)
        return cls(config.base_url, **kwargs)

    def __repr__(self) -> str:
        key = "set" if self._apikey else "none"
        return f"FediseerClient({self.base_url!r}, apikey={key}, agent={self.client_agent!r})"

    async def __aenter__(self) -> FediseerClient:
        self._ensure_session()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
            self._own_session = True
        return self._session

    # -- public reads -------------------------------------------------------------------------

    async def approvals(
        self,
        domains: Sequence[str],
        *,
        min_endorsements: int | None = None,
        reasons: Sequence[str] = (),
    ) -> list[InstanceEntry]:
        """Instances endorsed by `domains` (all pages). A single domain gives that domain's own
        reasons; several give the union (Fediseer does not say who gave which reason)."""
        params = _filters("min_endorsements", min_endorsements, reasons)
        items = await self._paged(_list_path("approvals", domains), params, "instances")
        return _entries(items, "endorsement_reasons")

    async def censures_given(
        self,
        domains: Sequence[str],
        *,
        min_censures: int | None = None,
        reasons: Sequence[str] = (),
    ) -> list[InstanceEntry]:
        """Instances censured by `domains` (all pages)."""
        params = _filters("min_censures", min_censures, reasons)
        items = await self._paged(_list_path("censures_given", domains), params, "instances")
        return _entries(items, "censure_reasons")

    async def hesitations_given(
        self,
        domains: Sequence[str],
        *,
        min_hesitations: int | None = None,
        reasons: Sequence[str] = (),
    ) -> list[InstanceEntry]:
        """Instances hesitated on by `domains` (all pages)."""
        params = _filters("min_hesitations", min_hesitations, reasons)
        items = await self._paged(_list_path("hesitations_given", domains), params, "instances")
        return _entries(items, "hesitation_reasons")

    async def approvals_domains(
        self,
        domains: Sequence[str],
        *,
        min_endorsements: int | None = None,
        reasons: Sequence[str] = (),
    ) -> list[str]:
        """Just the endorsed domains (`domains=true`; never `csv`, never a false flag)."""
        params = _filters("min_endorsements", min_endorsements, reasons)
        params.append(("domains", "true"))
        return _strings(await self._paged(_list_path("approvals", domains), params, "domains"))

    async def whitelist_domains(self, *, min_endorsements: int | None = None) -> list[str]:
        """Every guaranteed instance (all pages of /whitelist, which allows limit ≤ 100)."""
        params: list[tuple[str, str]] = [("domains", "true")]
        if min_endorsements is not None:
            params.append(("endorsements", str(int(min_endorsements))))
        items = await self._paged("/whitelist", params, "domains", limit=WHITELIST_LIMIT)
        return _strings(items)

    # -- plumbing -----------------------------------------------------------------------------

    async def _paged(
        self, path: str, params: list[tuple[str, str]], key: str, *, limit: int | None = None
    ) -> list[Any]:
        """Read every page. Fediseer pages before it filters, so a short or even empty page
        does not mean the end: `total` (raw rows, ≥ instances) bounds the page count."""
        limit = limit or self.page_size
        out: list[Any] = []
        page = 1
        while True:
            body = await self.get_json(path, [*params, ("page", str(page)), ("limit", str(limit))])
            items = body.get(key)
            if not isinstance(items, list):
                raise FediseerBadResponse(f"{path}: answer has no {key!r} list")
            out.extend(items)
            total = body.get("total")
            if isinstance(total, int) and not isinstance(total, bool):
                pages = max(1, math.ceil(total / limit))
                more = page < pages
            else:
                more = len(items) >= limit
            if not more:
                break
            page += 1
            if page > MAX_PAGES:
                raise FediseerBadResponse(f"{path}: more than {MAX_PAGES} pages")
        return _dedupe(out)

    def _headers(self) -> dict[str, str]:
        headers = {"Client-Agent": self.client_agent, "Accept": "application/json"}
        if self._apikey is not None:
            headers["apikey"] = self._apikey.get_secret_value()
        return headers

    async def get_json(self, path: str, params: Iterable[tuple[str, str]] = ()) -> dict[str, Any]:
        """GET base_url + path and return the JSON object, handling retries and errors."""
        session = self._ensure_session()
        url = self.base_url + path
        base_params = list(params)
        failures = 0
        rate_waits = 0
        while True:
            query = list(base_params)
            if self._apikey is not None:
                query.append(("_", f"{time.time_ns()}{next(self._seq)}"))
            problem: FediseerUnavailable
            try:
                async with session.get(
                    url,
                    params=query,
                    headers=self._headers(),
                    timeout=aiohttp.ClientTimeout(total=self.timeout),
                ) as resp:
                    status = resp.status
                    raw = await resp.read()
                    retry_after = resp.headers.get("Retry-After")
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = FediseerUnavailable(f"{path}: {type(exc).__name__}: {exc}".rstrip(": "))
            else:
                if status == 200:
                    try:
                        body = json.loads(raw)
                    except ValueError:
                        body = None
                    if isinstance(body, dict):
                        return body
                    problem = FediseerBadResponse(f"{path}: answer is not a JSON object")
                elif status == 429:
                    wait = _parse_retry_after(retry_after)
                    if rate_waits >= self.max_rate_limit_waits or (
                        wait is not None and wait > self.max_retry_after
                    ):
                        raise FediseerRateLimited(
                            f"{path}: rate limited ({_message(raw)})", retry_after=wait
                        )
                    rate_waits += 1
                    wait = self._backoff(rate_waits - 1) if wait is None else wait
                    log.warning("Fediseer rate limit on %s; waiting %.1f s", path, wait)
                    await self._sleep(wait)
                    continue
                elif status >= 500:
                    problem = FediseerUnavailable(f"{path}: HTTP {status}: {_message(raw)}")
                else:
                    raise refused(status, _message(raw), path)
            if failures >= self.max_retries:
                raise problem
            delay = self._backoff(failures)
            failures += 1
            log.warning("Fediseer request failed (%s); retry %d in %.2fs", problem, failures, delay)
            await self._sleep(delay)

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with 'equal jitter': half fixed, half random."""
        ceiling = min(self.backoff_max, self.backoff_base * (2**attempt))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


def _list_path(endpoint: str, domains: Sequence[str]) -> str:
    if isinstance(domains, str):
        domains = [domains]
    cleaned = [normalize_domain(d) for d in domains if d.strip()]
    if not cleaned:
        raise ValueError("at least one domain is needed")
    return f"/{endpoint}/{','.join(cleaned)}"


def _filters(min_name: str, minimum: int | None, reasons: Sequence[str]) -> list[tuple[str, str]]:
    params: list[tuple[str, str]] = []
    if minimum is not None:
        params.append((min_name, str(int(minimum))))
    if reasons:
        params.append(("reasons_csv", ",".join(r.strip() for r in reasons)))
    return params


def _normal(domain: str) -> str | None:
    """The normal form (IDNA A-label) of a domain Fediseer sent; None (skipped, logged) when
    it is no domain name at all."""
    try:
        return normalize_domain(domain)
    except ValueError:
        log.warning("Fediseer answer holds an invalid domain name %r; skipped", domain[:100])
        return None


def _entries(items: list[Any], reasons_key: str) -> list[InstanceEntry]:
    out = []
    for item in items:
        domain = item.get("domain") if isinstance(item, dict) else None
        if not isinstance(domain, str) or not domain:
            raise FediseerBadResponse("an instance in the answer has no domain")
        normal = _normal(domain)
        if normal is None:
            continue
        guarantor = item.get("guarantor")
        if isinstance(guarantor, str) and guarantor:
            guarantor = _normal(guarantor) or guarantor
        out.append(
            InstanceEntry(
                domain=normal,
                reasons=split_reasons(item.get(reasons_key)),
                guarantor=guarantor if isinstance(guarantor, str) and guarantor else None,
            )
        )
    return out


def _strings(items: list[Any]) -> list[str]:
    if not all(isinstance(i, str) for i in items):
        raise FediseerBadResponse("the domains list holds something that is not a string")
    return [d for d in map(_normal, items) if d is not None]


def _dedupe(items: list[Any]) -> list[Any]:
    """Drop repeats across pages (a server that ignores `page` would repeat page one)."""
    seen: set[str] = set()
    out = []
    for item in items:
        key = item.get("domain") if isinstance(item, dict) else item
        if isinstance(key, str):
            if key in seen:
                continue
            seen.add(key)
        out.append(item)
    return out


def _message(raw: bytes) -> str:
    """Fediseer errors are `{"message": "..."}`; otherwise show a short piece of the text."""
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"]
    text = raw[:200].decode("utf-8", "replace").strip()
    return text or "(empty answer)"


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
