"""A small REST client for the AI Horde image endpoints, on aiohttp.

- Every call carries `Client-Agent: fedibot:<version>:<contact>`; Horde calls carry `apikey`.
  Image downloads (pre-signed object-storage URLs) carry neither. The key is never logged
  and never part of an exception's text.
- Limits (sliding windows on an injected clock): `check` once per `check_interval_s` per
  request, `status`+`cancel` `status_per_minute` per request (they share the server's limit on
  the path /v2/generate/status/{id}), submissions one per `submit_interval_s`.
- GETs and DELETEs are retried with exponential backoff on 5xx, 429 (honouring Retry-After) and
  connection errors. A POST is retried only when the Horde surely did not take it (429, 503, or
  no connection); other failures after the body was sent raise `HordeError(ambiguous=True)`,
  because the Horde has no idempotency key and a blind retry could create a second request.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any, TypeVar

import aiohttp
from pydantic import BaseModel, ValidationError

from generator.horde.api import GenerationInput, RequestAsync, RequestError, RequestStatus
from generator.horde.api import RequestStatusCheck as CheckStatus
from generator.horde.codes import HORDE_BAD_IMAGE, HORDE_BUSY, code_for_error
from generator.horde.config import HordeConfig
from generator.horde.ratelimit import Clock, MonotonicClock, RateLimiter

log = logging.getLogger("generator.horde")

T = TypeVar("T", bound=BaseModel)
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_POST_SAFE_RETRY = frozenset({429, 503})  # the Horde refused before creating anything


def fedibot_version() -> str:
    try:
        return metadata.version("fedibot")
    except metadata.PackageNotFoundError:
        return "0.0.0"


@dataclass
class HordeError(Exception):
    """A failed Horde call. `code` is ours (generator.horde.codes); `rc` the Horde's."""

    code: str
    status: int = 0
    rc: str = ""
    message: str = ""
    ambiguous: bool = False  # a submission may or may not have been created

    def __str__(self) -> str:
        where = f"HTTP {self.status}" if self.status else "no answer"
        return f"{self.code} ({where}{', rc ' + self.rc if self.rc else ''}): {self.message}"


class HordeClient:
    """One per process; `close()` when done (or use `async with`)."""

    def __init__(
        self,
        config: HordeConfig,
        *,
        clock: Clock | None = None,
        session: aiohttp.ClientSession | None = None,
        version: str | None = None,
    ) -> None:
        self.config = config
        self.clock: Clock = clock or MonotonicClock()
        self.base = config.base_url
        self.client_agent = f"fedibot:{version or fedibot_version()}:{config.contact or 'unknown'}"
        self._session = session
        self._own_session = session is None
        self.check_limit = RateLimiter(1, config.check_interval_s, self.clock)
        self.status_limit = RateLimiter(config.status_per_minute, 60.0, self.clock)
        self.submit_limit = RateLimiter(1, config.submit_interval_s, self.clock)
        self.calls: list[tuple[str, str]] = []  # (method, path) of every Horde call, for tests

    async def __aenter__(self) -> HordeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.config.http_timeout_s)
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None and self._own_session:
            await self._session.close()
        self._session = None

    def _headers(self) -> dict[str, str]:
        return {
            "apikey": self.config.api_key.get_secret_value(),
            "Client-Agent": self.client_agent,
        }

    # -- endpoints -------------------------------------------------------------------------

    async def submit(self, payload: GenerationInput) -> RequestAsync:
        """POST /v2/generate/async → the request id (202)."""

        async def limit() -> None:
            await self.submit_limit.acquire()

        return await self._call(
            "POST", "/v2/generate/async", RequestAsync, limit, body=payload.body(), post=True
        )

    async def check(self, request_id: str) -> CheckStatus:
        """GET /v2/generate/check/{id}: progress without images (cheap)."""

        async def limit() -> None:
            await self.check_limit.acquire(request_id)

        return await self._call("GET", f"/v2/generate/check/{request_id}", CheckStatus, limit)

    async def status(self, request_id: str) -> RequestStatus:
        """GET /v2/generate/status/{id}: progress and generations (10 per minute)."""

        async def limit() -> None:
            await self.status_limit.acquire(request_id)

        return await self._call(
            "GET", f"/v2/generate/status/{request_id}", RequestStatus, limit, key=request_id
        )

    async def cancel(self, request_id: str) -> RequestStatus:
        """DELETE /v2/generate/status/{id}: cancel; the answer carries what already finished."""

        async def limit() -> None:
            await self.status_limit.acquire(request_id)

        return await self._call(
            "DELETE", f"/v2/generate/status/{request_id}", RequestStatus, limit, key=request_id
        )

    async def download(self, url: str) -> bytes:
        """An image from a pre-signed URL: no Horde headers, a timeout and a size cap."""
        cap = self.config.max_image_bytes
        try:
            async with self.session.get(
                url, headers={"Client-Agent": self.client_agent}, allow_redirects=True
            ) as resp:
                if resp.status != 200:
                    raise HordeError(HORDE_BAD_IMAGE, resp.status, "", "image download failed")
                if (resp.content_length or 0) > cap:
                    raise HordeError(HORDE_BAD_IMAGE, resp.status, "", f"image over {cap} bytes")
                data = bytearray()
                async for chunk in resp.content.iter_chunked(65536):
                    data += chunk
                    if len(data) > cap:
                        raise HordeError(HORDE_BAD_IMAGE, 200, "", f"image over {cap} bytes")
                return bytes(data)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise HordeError(
                HORDE_BAD_IMAGE, 0, "", f"image download: {type(exc).__name__}"
            ) from None

    # -- plumbing --------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        model: type[T],
        limit: Callable[[], Awaitable[None]],
        *,
        body: dict[str, Any] | None = None,
        post: bool = False,
        key: str | None = None,
    ) -> T:
        attempt = 0
        while True:
            await limit()
            self.calls.append((method, path))
            status, retry_after, data = 0, None, None
            try:
                async with self.session.request(
                    method, self.base + path, json=body, headers=self._headers()
                ) as resp:
                    status = resp.status
                    retry_after = _seconds(resp.headers.get("Retry-After"))
                    data = await resp.json(content_type=None)
            except aiohttp.ClientConnectorError as exc:
                reason = f"cannot connect: {type(exc).__name__}"
                sent = False
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                reason = f"{type(exc).__name__} after sending"
                sent = True
            else:
                if status < 300:
                    try:
                        return model.model_validate(data)
                    except ValidationError as exc:
                        raise HordeError(
                            HORDE_BUSY, status, "", f"unexpected answer shape: {exc.error_count()}"
                        ) from None
                err = _error_body(data)
                reason, sent = f"rc {err.rc or '-'}: {err.message[:200]}", True
                retryable = status in (_POST_SAFE_RETRY if post else _RETRY_STATUS)
                if not retryable or attempt >= self.config.max_retries:
                    log.info("horde %s %s → %s %s", method, path, status, err.rc or "-")
                    raise HordeError(
                        code_for_error(err.rc, status),
                        status,
                        err.rc,
                        err.message[:300],
                        ambiguous=post and not retryable and status >= 500,
                    )
            if status == 0 and ((post and sent) or attempt >= self.config.max_retries):
                log.info("horde %s %s failed: %s", method, path, reason)
                raise HordeError(HORDE_BUSY, 0, "", reason, ambiguous=post and sent)
            wait = self._backoff(attempt, retry_after)
            if status == 429 and key is not None and retry_after is not None:
                self.status_limit.defer(key, retry_after)
            log.info("horde %s %s → %s (%s); retry in %.1fs", method, path, status, reason, wait)
            attempt += 1
            await self.clock.sleep(wait)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        wait = min(self.config.retry_max_s, self.config.retry_base_s * 2**attempt)
        return max(wait, retry_after or 0.0)


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _error_body(data: Any) -> RequestError:
    try:
        return RequestError.model_validate(data if isinstance(data, dict) else {})
    except ValidationError:
        return RequestError()
