"""The Mastodon-API adapter (Mastodon, GoToSocial, Pleroma/Akkoma) on Mastodon.py.

Mastodon.py is blocking, so every call runs in a worker thread (`asyncio.to_thread`); the
SSE user stream runs in its own daemon thread, the WebSocket stream (aiohttp) in a task;
both hand events to the event loop through a queue. Only the documented client API is
used, plus plain GETs of `/api/v1/notifications` (Mastodon.py knows no `include_types[]`).

Which server it is (`federation.mastodon_flavour`) is read from the instance endpoint at
start. Receiving: mention notifications arrive over the user stream (SSE, or WebSocket where
SSE is not served, found once per start; polling every `poll_interval` when neither works)
and through catch-up (`types[]`/`include_types[]=mention`, `min_id=cursor`, paged until
empty) at start, after every stream (re)connect and every `catch_up_interval_seconds`. The
cursor moves only in catch-up, and only past notifications whose mention the sink has
accepted. A first start (no cursor) looks at the newest page only.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import random
import re
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlparse

import aiohttp
import requests
from mastodon import Mastodon
from mastodon.errors import (
    MastodonAPIError,
    MastodonError,
    MastodonIllegalArgumentError,
    MastodonIOError,
    MastodonMalformedEventError,
    MastodonNetworkError,
    MastodonRatelimitError,
)
from mastodon.streaming import StreamListener

from federation.base import CursorStore, MentionSink
from federation.budgets import (
    MASTODON_DEFAULTS,
    BudgetLimit,
    ServerHint,
    effective_limits,
    lowered,
)
from federation.errors import (
    AdapterError,
    AuthError,
    PermanentError,
    RemoteGone,
    ReplyForbidden,
    TransientError,
)
from federation.html_text import html_to_text
from federation.mastodon_config import MastodonAccountConfig
from federation.mastodon_convert import (
    InstanceLimits,
    domain_of,
    id_key,
    ignorable,
    instance_limits,
    mentions_account,
    status_to_mention,
    to_account,
    to_attachments,
    to_visibility,
)
from federation.mastodon_flavour import (
    MASTODON,
    Flavour,
    Software,
    StreamKind,
    TokenPlace,
    detect_flavour,
    mime_accepted,
    normalise_language,
)
from federation.pacing import (
    Backoff,
    Budget,
    parse_ratelimit_headers,
    retry_after_seconds,
)
from federation.types import (
    Account,
    MediaItem,
    Mention,
    OutgoingPost,
    PostLookup,
    PostResult,
    Visibility,
)
from federation.visibility import reply_visibility

log = logging.getLogger(__name__)

USER_AGENT = "fedibot"
WS_CLOSE_SECONDS = 5.0  # how long a WebSocket close handshake may take
NOTIFICATIONS_PAGE = 80  # Mastodon's maximum page size for notifications
# A handshake answered with one of these says "this streaming API is not served here"
# (404: no route; 400/426: a plain GET where an upgrade is required; 405: wrong method).
_NOT_SERVED = (400, 404, 405, 426)
# A 403 with such a text is about the bot's own token or account, not about one reply.
_AUTH_403 = re.compile(r"scope|token|login|suspend|disabled|credential", re.IGNORECASE)
ELLIPSIS = "…"
# Mastodon's mention syntax: "@" not preceded by a word character or "/".
_MENTION_START = re.compile(r"(?<![\w/])@(?=[A-Za-z0-9_])")
_ZWSP = "\u200b"
# A `@` or `#` that starts a mention or hashtag in plain text (`### x` stays as it is).
_TAGGABLE = re.compile(r"[@#](?=\w)")
# How many of the bot's own recent statuses `find_post` reads for a post without a parent.
OWN_STATUSES_PAGE = 40

# One recorded response: (method, path, status code, headers).
_Response = tuple[str, str, int, Mapping[str, str]]


class _StreamStopped(Exception):
    """Raised inside the stream thread to leave Mastodon.py's blocking read loop."""


def _status_code(exc: BaseException) -> int | None:
    if isinstance(exc, MastodonAPIError) and len(exc.args) > 1 and isinstance(exc.args[1], int):
        return exc.args[1]
    return None


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, MastodonAPIError) and len(exc.args) > 3 and exc.args[3]:
        return str(exc.args[3])
    return str(exc.args[0]) if exc.args else type(exc).__name__


def neutralise_mentions(text: str) -> str:
    """Make every `@name` inert (a zero-width space after the @), so the server creates no
    mention and notifies nobody: a prompt echoed in a reply must not ping third parties."""
    return _MENTION_START.sub("@" + _ZWSP, text)


def compose_status_text(text: str, recipient_acct: str | None, limit: int) -> str:
    """The status text: `@recipient ` first, no other live mention, at most `limit` chars."""
    lead = ""
    body = text or ""
    if recipient_acct:
        acct = recipient_acct.lstrip("@")
        user = acct.split("@", 1)[0]
        lead = f"@{acct} "
        stripped = body.lstrip()
        for prefix in (f"@{acct}", f"@{user}"):
            if stripped.lower().startswith(prefix.lower()) and (
                len(stripped) == len(prefix) or stripped[len(prefix)].isspace()
            ):
                body = stripped[len(prefix) :]
                break
    out = lead + neutralise_mentions(body.strip())
    if len(out) <= limit:
        return out.rstrip() or lead.strip()
    room = max(0, limit - len(lead) - len(ELLIPSIS))
    cut = neutralise_mentions(body.strip())[:room].rstrip()
    return (lead + cut + ELLIPSIS)[:limit] if limit > len(lead) else lead.strip()[:limit]


class _Listener(StreamListener):
    """Mastodon.py stream callbacks → events on the adapter's queue (runs in the thread)."""

    def __init__(self, stream: _Stream) -> None:
        super().__init__()
        self._stream = stream
        self.response: requests.Response | None = None

    def handle_stream(self, response: requests.Response) -> None:
        self.response = response
        self._stream.emit("connected")
        read1 = getattr(response.raw, "read1", None)
        if read1 is None:  # urllib3 < 2: Mastodon.py's own reader
            super().handle_stream(response)
            return
        self._read_events(read1)

    def _read_events(self, read1: Callable[[int], bytes]) -> None:
        """Mastodon.py reads the stream one byte per call: ~10 ms of CPU for one 5 kB
        notification, far more while the generator thread holds the GIL. This reads whatever
        has arrived and splits it into lines; parsing and dispatch stay Mastodon.py's."""
        event: dict[str, str] = {}
        pending = b""
        while True:
            chunk = read1(65536)
            if not chunk:  # the server closed the stream
                return
            *lines, pending = (pending + chunk).split(b"\n")
            for raw in lines:
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    raise MastodonMalformedEventError("Malformed UTF-8") from err
                if line:
                    event = self._parse_line(line, event)
                else:
                    self._dispatch(event)
                    event = {}

    def handle_heartbeat(self) -> None:
        if self._stream.stopped.is_set():
            raise _StreamStopped

    def on_any_event(self, name: str, data: Any = None, for_stream: str | None = None) -> None:
        if self._stream.stopped.is_set():
            raise _StreamStopped

    def on_notification(self, notification: Any) -> None:
        self._stream.emit("notification", notification)

    def on_status_update(self, status: Any) -> None:
        self._stream.adapter._remember_edit(status)
        self._stream.emit("status_update", status)

    def on_delete(self, status_id: Any) -> None:
        self._stream.adapter._remember_deleted(str(status_id))

    def on_unknown_event(self, name: str, unknown_event: Any = None) -> None:
        pass


class _Stream:
    """One SSE user-stream connection in a daemon thread; ends with an "ended" event, or an
    "unsupported" one when the server does not serve the SSE user stream at all."""

    kind = StreamKind.SSE

    def __init__(
        self, adapter: MastodonAdapter, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue
    ) -> None:
        self.adapter = adapter
        self.loop = loop
        self.queue = queue
        self.stopped = threading.Event()
        self.listener = _Listener(self)
        self.started_at = time.monotonic()
        self.thread = threading.Thread(
            target=self._run, name=f"mastodon-stream-{adapter.name}", daemon=True
        )

    def start(self) -> None:
        self.thread.start()

    def emit(self, kind: str, payload: Any = None) -> None:
        if self.stopped.is_set():
            return
        try:
            self.loop.call_soon_threadsafe(
                self.queue.put_nowait, (kind, payload, time.monotonic(), self)
            )
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self.stopped.set()

    def _run(self) -> None:
        error: BaseException | None = None
        self.adapter._sse_status = None
        try:
            self.adapter._stream_client().stream_user(
                self.listener, timeout=self.adapter.stream_read_timeout
            )
        except _StreamStopped:
            pass
        except Exception as exc:
            error = exc
        status = self.adapter._sse_status
        if error is not None and self.listener.response is None and status in _NOT_SERVED:
            self.emit("unsupported", status)
            return
        self.emit("ended", error)

    def stop(self) -> None:
        """Stop without blocking the caller.

        Closing a `requests` response from another thread blocks until the reader's recv
        returns (a buffer lock), so the socket is shut down instead, which wakes the reader;
        failing that, the thread leaves at the next heartbeat (the stopped flag).
        """
        self.stopped.set()
        response = self.listener.response
        if response is None:
            return
        for sock in _sockets_of(response):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
                return


def _sockets_of(response: requests.Response) -> list[socket.socket]:
    """The socket under a streaming `requests` response (urllib3 1.x and 2.x layouts)."""
    raw = getattr(response, "raw", None)
    found = []
    for path in (("_connection", "sock"), ("_fp", "fp", "raw", "_sock")):
        obj: Any = raw
        for attr in path:
            obj = getattr(obj, attr, None)
        if isinstance(obj, socket.socket):
            found.append(obj)
    return found


def _ws_url(url: str) -> str:
    """http(s)://host → ws(s)://host (no trailing slash); ws(s) URLs stay."""
    url = url.rstrip("/")
    if url.startswith("https://"):
        return "wss://" + url[len("https://") :]
    if url.startswith("http://"):
        return "ws://" + url[len("http://") :]
    return url


def _parse_time(value: Any) -> float | None:
    if isinstance(value, datetime):
        return value.timestamp() if value.tzinfo else None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except (TypeError, ValueError):
        return None


class _StreamNotServed(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class _WsStream:
    """One WebSocket user stream (`/api/v1/streaming?stream=user`) in an asyncio task.

    Same events as `_Stream`. Messages are `{"stream": [...], "event": ..., "payload": ...}`
    with the entity JSON-encoded in `payload` (GoToSocial `internal/stream/stream.go`
    Message; Akkoma `views/streamer_view.ex`). The token goes where the server takes it
    (`Flavour.token_places`, the first that works is remembered); no error or log line
    carries the handshake URL, which may hold the token.
    """

    kind = StreamKind.WEBSOCKET

    def __init__(
        self, adapter: MastodonAdapter, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue
    ) -> None:
        self.adapter = adapter
        self.queue = queue
        self.stopped = threading.Event()
        self.started_at = time.monotonic()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.ensure_future(self._run())
        self.adapter._ws_tasks.add(self.task)
        self.task.add_done_callback(self.adapter._ws_tasks.discard)

    def emit(self, kind: str, payload: Any = None) -> None:
        if not self.stopped.is_set():
            self.queue.put_nowait((kind, payload, time.monotonic(), self))

    def stop(self) -> None:
        self.stopped.set()
        if self.task is not None:
            self.task.cancel()

    async def _run(self) -> None:
        error: BaseException | None = None
        try:
            await self._connect_and_read()
        except asyncio.CancelledError:
            return
        except _StreamNotServed as exc:
            self.emit("unsupported", exc.status)
            return
        except Exception as exc:
            error = exc
        self.emit("ended", error)

    async def _connect_and_read(self) -> None:
        adapter = self.adapter
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=adapter.config.request_timeout_seconds
        )
        async with aiohttp.ClientSession(timeout=timeout) as session:
            ws = await self._handshake(session)
            try:
                self.emit("connected")
                async for msg in ws:
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        self._handle(msg.data)
                    elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSED):
                        break
                if ws.close_code not in (None, 1000, 1001):
                    raise ConnectionError(f"stream closed by the server (code {ws.close_code})")
            finally:
                # A server that keeps pinging and never answers the close frame would keep
                # aiohttp's close() reading forever: the session's exit drops the socket.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ws.close(), WS_CLOSE_SECONDS)

    async def _handshake(self, session: aiohttp.ClientSession) -> aiohttp.ClientWebSocketResponse:
        adapter = self.adapter
        token = adapter.config.access_token.get_secret_value()
        places = adapter.ws_token_places()
        refused: int | None = None
        for place in places:
            query: list[tuple[str, str]] = [("stream", "user")]
            headers = {"User-Agent": USER_AGENT}
            protocols: tuple[str, ...] = ()
            if place is TokenPlace.HEADER:
                headers["Authorization"] = f"Bearer {token}"
            elif place is TokenPlace.PROTOCOL:
                protocols = (token,)
            else:
                query.append(("access_token", token))
            url = f"{adapter.streaming_url}/api/v1/streaming?{urlencode(query)}"
            try:
                ws = await session.ws_connect(
                    url,
                    headers=headers,
                    protocols=protocols,
                    heartbeat=max(1.0, adapter.stream_read_timeout / 3),
                    autoping=True,
                )
            except aiohttp.WSServerHandshakeError as exc:
                if exc.status in (401, 403):
                    refused = exc.status
                    continue  # this server wants the token elsewhere
                if exc.status in _NOT_SERVED:
                    raise _StreamNotServed(exc.status) from None
                raise ConnectionError(f"WebSocket handshake answered {exc.status}") from None
            except aiohttp.ClientError as exc:  # str(exc) may name the URL: not shown
                raise ConnectionError(f"WebSocket connect failed: {type(exc).__name__}") from None
            adapter._ws_token_place = place
            return ws
        raise AuthError(
            f"{adapter.config.base_url} refused the token on the WebSocket stream ({refused})"
        )

    def _handle(self, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError:  # e.g. Akkoma's "pong"
            return
        if not isinstance(message, Mapping):
            return
        event, payload = message.get("event"), message.get("payload")
        if event is None and message.get("error"):
            # Mastodon streaming/index.js: a subscription the token may not make (scopes) is
            # refused over the open socket, which then carries nothing. End it: the reconnect
            # backoff and the catch-up that follows every reconnect keep mentions coming.
            error = str(message.get("error"))[:200]
            log.warning(
                "%s: the stream refused the subscription: %s (%s); give the token the "
                "`read` scope",
                self.adapter.name,
                error,
                message.get("status"),
            )
            raise ConnectionError(f"stream subscription refused: {error}")
        if event == "delete":
            self.adapter._remember_deleted(str(payload))
            return
        if event not in ("notification", "status.update"):
            return
        try:
            entity = json.loads(payload) if isinstance(payload, str) else payload
        except ValueError:
            log.warning("%s: unreadable %s event on the stream", self.adapter.name, event)
            return
        if not isinstance(entity, Mapping):
            return
        if event == "notification":
            self.emit("notification", entity)
        else:
            self.adapter._remember_edit(entity)
            self.emit("status_update", entity)


class MastodonAdapter:
    """A bot account on a Mastodon-API server; implements `federation.base.Adapter`."""

    platform = "mastodon"
    # Mastodon keeps the stable `idempotency_key` an hour itself (and `find_post` looks after
    # that): the short per-attempt request token is not used.
    idempotency_window = 0.0

    # Tunables (attributes so tests and the lead can adjust them without config keys).
    max_inline_wait = 2.0  # a budget wait longer than this raises TransientError instead
    media_poll_initial_delay = 0.1
    media_poll_max_delay = 2.0
    media_processing_timeout = 60.0
    stream_read_timeout = 90.0  # Mastodon sends a heartbeat every ~15 s
    refetch_after_seconds = 5.0  # a stream mention older than this is re-fetched (edits)
    stream_stable_after = 30.0  # a stream alive this long resets the reconnect backoff
    poll_interval = 15.0  # catch-up interval when no streaming API works
    first_start_lookback = 3600.0  # a first start answers mentions at most this old

    def __init__(self, config: MastodonAccountConfig, cursors: CursorStore) -> None:
        self.config = config
        self.name = config.name
        self.cursor_key = f"mastodon:{config.name}:notifications"
        self._cursors = cursors
        self._local = threading.local()
        self._client = self._make_client(record=True)
        self._streamer: Mastodon | None = None
        self.me: Account | None = None
        self._bot_id: str | None = None
        self.local_domain = domain_of(config.base_url) or "localhost"
        self.limits = InstanceLimits()
        # Posting budgets: Mastodon's defaults or `[accounts.budgets]` (federation/budgets.py).
        self.budgets = effective_limits(MASTODON_DEFAULTS, config.budgets)
        statuses, media = self.budgets["statuses"], self.budgets["media"]
        self.status_budget = Budget("statuses", statuses.limit, statuses.per_seconds)
        self.media_budget = Budget("media", media.limit, media.per_seconds)
        self.api_budget = Budget("api", None, None)
        self._failures = Backoff(base=2.0, cap=300.0)
        self.reconnect_backoff = Backoff(base=1.0, cap=120.0)
        self._delivered: OrderedDict[str, str] = OrderedDict()  # notification id → status id
        self._delivered_status: OrderedDict[str, str] = OrderedDict()  # status → notification
        self._state_lock = threading.Lock()
        self._edits: OrderedDict[str, Any] = OrderedDict()
        self._deleted: OrderedDict[str, None] = OrderedDict()
        self._catch_up_lock: asyncio.Lock | None = None
        self._stream: _Stream | _WsStream | None = None
        self._ws_tasks: set[asyncio.Task[None]] = set()
        self.flavour: Flavour = MASTODON
        self.streaming_url = _ws_url(config.base_url)
        # Receiving: which stream kinds are still worth trying (found once per start) and
        # what is in use: "sse", "websocket", "polling" (no stream works), "catch-up"
        # (streaming off in config) or "" (not listening yet).
        self._stream_kinds: list[StreamKind] = []
        self.receive_mode = ""
        self.stream_not_served: dict[str, int] = {}  # kind → the status that said so
        self._sse_status: int | None = None
        self._ws_token_place: TokenPlace | None = None
        # Set while a stream is open and the catch-up after its connect has run: from then
        # on a new mention arrives over the stream (tests and `doctor` wait on it).
        self.stream_synced = asyncio.Event()
        self.media_api = "/api/v2/media"

    def __repr__(self) -> str:  # never the token
        return f"MastodonAdapter(name={self.name!r}, base_url={self.config.base_url!r})"

    # ---------------------------------------------------------------- Mastodon.py plumbing

    def _make_client(self, *, record: bool) -> Mastodon:
        session = requests.Session()
        if record:
            session.hooks["response"].append(self._record_response)
        return Mastodon(
            access_token=self.config.access_token.get_secret_value(),
            api_base_url=self.config.base_url,
            ratelimit_method="throw",
            request_timeout=self.config.request_timeout_seconds,
            session=session,
            user_agent=USER_AGENT,
            version_check_mode="none",
        )

    def _stream_client(self) -> Mastodon:
        if self._streamer is None:
            self._streamer = self._make_client(record=False)
            self._streamer.session.hooks["response"].append(self._record_stream_status)
        return self._streamer

    def _record_stream_status(self, response: requests.Response, *args: Any, **kw: Any) -> None:
        if "/api/v1/streaming" in urlparse(response.request.url or "").path:
            self._sse_status = response.status_code

    def ws_token_places(self) -> tuple[TokenPlace, ...]:
        """Where the WebSocket handshake puts the token: the place that worked, else the
        flavour's order."""
        if self._ws_token_place is not None:
            return (self._ws_token_place,)
        return self.flavour.token_places

    def _record_response(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        responses = getattr(self._local, "responses", None)
        if responses is not None:
            request = response.request
            responses.append(
                (
                    request.method or "",
                    urlparse(request.url or "").path,
                    response.status_code,
                    response.headers,
                )
            )

    def _invoke(
        self, fn: Callable[..., Any], args: tuple, kwargs: dict
    ) -> tuple[bool, Any, list[_Response]]:
        self._local.responses = []
        try:
            return True, fn(*args, **kwargs), self._local.responses
        except Exception as exc:
            return False, exc, self._local.responses
        finally:
            self._local.responses = None

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run one Mastodon.py call in a thread; learn rate limits; map its errors."""
        ok, value, responses = await asyncio.to_thread(self._invoke, fn, args, kwargs)
        self._learn(responses)
        if ok:
            self._failures.reset()
            return value
        raise self._map_error(value, responses) from value

    def _budget_for(self, method: str, path: str) -> Budget:
        if method == "POST" and path.rstrip("/").endswith("/api/v1/statuses"):
            return self.status_budget
        if method == "POST" and path.rstrip("/") in ("/api/v2/media", "/api/v1/media"):
            return self.media_budget
        return self.api_budget

    def _learn(self, responses: list[_Response]) -> None:
        now = time.time()
        for method, path, status, headers in responses:
            budget = self._budget_for(method, path)
            budget.observe(parse_ratelimit_headers(headers, now))
            if status == 429:
                wait = retry_after_seconds(headers, now)
                budget.exhausted_for(wait if wait is not None else 60.0)

    def _map_error(self, exc: BaseException, responses: list[_Response]) -> AdapterError:
        last = responses[-1] if responses else None
        status = _status_code(exc) or (last[2] if last and last[2] >= 400 else None)
        where = self.config.base_url
        if isinstance(exc, MastodonRatelimitError) or status == 429:
            wait = retry_after_seconds(last[3]) if last else None
            if wait is None:
                wait = self._failures.next_delay()
            return TransientError(
                f"rate limited by {where}", retry_after=wait + random.uniform(0.0, 1.0)
            )
        if isinstance(exc, MastodonNetworkError):
            return TransientError(
                f"network error talking to {where}: {exc}", retry_after=self._failures.next_delay()
            )
        error: AdapterError
        if status in (401, 403):
            error = AuthError(f"{where} refused the credentials ({status}): {_error_text(exc)}")
            error.http_status = status
            return error
        if status in (404, 410):
            return RemoteGone(f"not found on {where} ({status}): {_error_text(exc)}")
        if status is not None and status >= 500:
            return TransientError(
                f"{where} failed ({status})", retry_after=self._failures.next_delay()
            )
        if status is not None and 400 <= status < 500:
            error = PermanentError(f"{where} refused ({status}): {_error_text(exc)}")
            error.http_status = status
            return error
        if isinstance(exc, MastodonIllegalArgumentError | MastodonIOError):
            return PermanentError(f"cannot send to {where}: {exc}")
        if isinstance(exc, MastodonError):  # e.g. an HTML page instead of JSON (maintenance)
            return TransientError(
                f"unexpected answer from {where}: {exc}", retry_after=self._failures.next_delay()
            )
        return PermanentError(f"unexpected error with {where}: {exc!r}")

    # ----------------------------------------------------------------------------- start

    async def start(self) -> Account:
        me = await self._call(self._client.account_verify_credentials)
        v2: Any = None
        v1: Any = None
        try:
            v2 = await self._call(self._client.instance_v2)
        except PermanentError:
            v2 = None
        if not isinstance(v2, Mapping) or not (v2.get("configuration") or {}).get("statuses"):
            with contextlib.suppress(PermanentError):
                v1 = await self._call(self._client.instance_v1)
        v2_body = v2 if isinstance(v2, Mapping) else None
        v1_body = v1 if isinstance(v1, Mapping) else None
        if v2_body is not None and v1_body is None and not str(v2_body.get("version") or ""):
            with contextlib.suppress(PermanentError):
                v1 = await self._call(self._client.instance_v1)
                v1_body = v1 if isinstance(v1, Mapping) else None
        self.limits = instance_limits(v2_body, v1_body)
        self.flavour = detect_flavour(v2_body, v1_body)
        self.streaming_url = self._find_streaming_url(v2_body, v1_body)
        self._ws_token_place = None
        self._stream_kinds = list(self.flavour.stream_order)
        self.stream_not_served = {}
        self.media_api = await self._media_endpoint()
        self.local_domain = (self.limits.domain or self.local_domain).lower()
        self._bot_id = str(me["id"])
        if self.config.set_bot_flag and not me.get("bot"):
            try:
                me = await self._call(self._client.account_update_credentials, bot=True)
            except PermanentError as exc:
                log.warning("%s: could not set the bot flag: %s", self.name, exc)
        if self.config.accept_private_mentions:
            await self._accept_private_mentions()
        self.me = to_account(me, self.local_domain)
        log.info("%s: logged in as %s on %s", self.name, self.me.acct, self.flavour.describe())
        return self.me

    async def _media_endpoint(self) -> str:
        """The upload endpoint Mastodon.py will pick: v2 (asynchronous) from version 3.1.4
        on, by the instance's version string; Akkoma/Pleroma report API level 2.7.2 and get
        the synchronous v1 (which both serve: router.ex `post("/media", :create)`)."""
        try:
            v2 = await asyncio.to_thread(self._client.verify_minimum_version, "3.1.4", cached=True)
        except Exception:
            v2 = True
        return "/api/v2/media" if v2 else "/api/v1/media"

    def _find_streaming_url(
        self, v2: Mapping[str, Any] | None, v1: Mapping[str, Any] | None
    ) -> str:
        """The WebSocket base the instance announces (Mastodon may stream from another
        host), else the API's own host."""
        for body, path in (
            (v2, ("configuration", "urls", "streaming")),
            (v1, ("urls", "streaming_api")),
        ):
            value: Any = body
            for key in path:
                value = value.get(key) if isinstance(value, Mapping) else None
            if isinstance(value, str) and value.startswith(
                ("ws://", "wss://", "http://", "https://")
            ):
                return _ws_url(value)
        return _ws_url(self.config.base_url)

    def describe(self) -> str:
        """One line for `fedibot doctor`: the server, how mentions arrive, the limits."""
        lim = self.limits
        receiving = {
            "sse": "streaming over SSE",
            "websocket": "streaming over WebSocket",
            "polling": f"polling every {self.poll_interval:g}s (no streaming API works)",
            "catch-up": "catch-up only (streaming off in config)",
        }.get(self.receive_mode, self.receive_mode or "streaming not checked")
        not_served = ", ".join(f"{k} {v}" for k, v in self.stream_not_served.items())
        if not_served:
            receiving += f" ({not_served})"
        listed = lim.supported_mime_types
        images = [m for m in listed if m.startswith("image/") or m == "application/octet-stream"]
        mimes = ",".join(images) if images else ("no images listed" if listed else "not listed")
        return (
            f"{self.flavour.describe()} (version {self.flavour.raw_version!r}); {receiving}; "
            f"notifications {self.flavour.notification_type_param}, "
            f"{self.flavour.notifications_page} per page; media {self.media_api} ({mimes}); "
            f"{lim.max_characters} chars, "
            f"{lim.max_media_attachments} images, alt text {lim.description_limit}; "
            f"language as {self.flavour.language_form}"
        )

    async def _accept_private_mentions(self) -> None:
        try:
            policy = await self._call(self._client.notifications_policy)
        except RemoteGone:
            log.info("%s: server has no notification policy (fine: nothing filtered)", self.name)
            return
        except PermanentError as exc:
            log.warning("%s: cannot read the notification policy: %s", self.name, exc)
            return
        if isinstance(policy, Mapping) and policy.get("for_private_mentions") == "accept":
            return
        try:
            await self._call(
                self._client.update_notifications_policy, for_private_mentions="accept"
            )
        except PermanentError as exc:
            log.warning("%s: cannot accept private mentions from strangers: %s", self.name, exc)

    # ----------------------------------------------------------- budgets (federation.budgets)

    def budget_limits(self) -> dict[str, BudgetLimit]:
        return {
            "statuses": lowered(self.budgets["statuses"], self.status_budget.server_limit),
            "media": lowered(self.budgets["media"], self.media_budget.server_limit),
        }

    def budget_cost(self, post: OutgoingPost) -> dict[str, int]:
        cost = {"statuses": 1}
        if post.media:
            cost["media"] = len(post.media)
        return cost

    def budget_hints(self) -> dict[str, ServerHint]:
        now = time.time()
        hints = {}
        for kind, budget in (("statuses", self.status_budget), ("media", self.media_budget)):
            limit, remaining, reset_in = budget.server_view()
            reset_at = None if reset_in is None else now + reset_in
            hints[kind] = ServerHint(limit=limit, remaining=remaining, reset_at=reset_at)
        return hints

    def _require_started(self) -> str:
        if self._bot_id is None:
            raise RuntimeError(f"{self!r}: call start() first")
        return self._bot_id

    # ------------------------------------------------------------------------- receiving

    def _remember_edit(self, status: Any) -> None:
        with self._state_lock:
            self._edits[str(status.get("id"))] = status
            self._edits.move_to_end(str(status.get("id")))
            while len(self._edits) > 1000:
                self._edits.popitem(last=False)

    def _remember_deleted(self, status_id: str) -> None:
        with self._state_lock:
            self._deleted[status_id] = None
            while len(self._deleted) > 1000:
                self._deleted.popitem(last=False)

    def _latest(self, status: Any) -> Any:
        """The newest version of a status we have seen (stream `status.update` events)."""
        with self._state_lock:
            edited = self._edits.get(str(status.get("id")))
        if edited is None:
            return status
        old, new = status.get("edited_at"), edited.get("edited_at")
        if new is not None and (old is None or new >= old):
            return edited
        return status

    def _mark_delivered(self, notification_id: str, status_id: str) -> None:
        self._delivered[notification_id] = status_id
        self._delivered_status[status_id] = notification_id
        while len(self._delivered) > 20000:
            _, sid = self._delivered.popitem(last=False)
            self._delivered_status.pop(sid, None)

    def _to_mention(self, status: Any, notification_id: str | None) -> Mention | None:
        bot_id = self._require_started()
        try:
            return status_to_mention(
                status,
                bot_name=self.name,
                bot_account_id=bot_id,
                local_domain=self.local_domain,
                notification_id=notification_id,
                api_host=domain_of(self.config.base_url),
            )
        except Exception:  # a malformed entity must not stop everything behind it
            log.exception("%s: cannot read status %r", self.name, status.get("id"))
            return None

    async def catch_up(self, sink: MentionSink) -> int:
        """Deliver every mention notification after the cursor, oldest first.

        Returns how many mentions were passed to `sink`. The cursor advances past a
        notification only after `sink` returned for it (or it was not for the bot);
        an exception from `sink` propagates with the cursor still before that mention.
        """
        self._require_started()
        if self._catch_up_lock is None:
            self._catch_up_lock = asyncio.Lock()
        async with self._catch_up_lock:
            return await self._catch_up(sink)

    def _get_json(self, path: str, query: list[tuple[str, str]]) -> Any:
        """A plain authorised GET on the client's session (recorded like Mastodon.py's
        calls); errors raised as Mastodon.py raises them, never with the token."""
        token = self.config.access_token.get_secret_value()
        try:
            response = self._client.session.get(
                self.config.base_url + path,
                params=query,
                headers={"Authorization": f"Bearer {token}", "User-Agent": USER_AGENT},
                timeout=self.config.request_timeout_seconds,
            )
        except requests.RequestException as exc:
            raise MastodonNetworkError(f"{type(exc).__name__} on GET {path}") from None
        if response.status_code >= 400:
            try:
                body = response.json()
                text = body.get("error") if isinstance(body, Mapping) else None
            except ValueError:
                text = None
            raise MastodonAPIError(
                "Mastodon API returned error",
                response.status_code,
                response.reason,
                text or response.reason,
            )
        try:
            return response.json()
        except ValueError:
            raise MastodonError(f"GET {path} did not answer JSON") from None

    async def _notifications(self, **bounds: str) -> list[Any]:
        """One page of mention notifications, with the type filter and page size this
        server knows (`types[]` / `include_types[]`, 80 / 40)."""
        query = [
            (self.flavour.notification_type_param, "mention"),
            ("limit", str(self.flavour.notifications_page)),
            *((k, v) for k, v in bounds.items()),
        ]
        page = await self._call(self._get_json, "/api/v1/notifications", query)
        return [n for n in page or [] if isinstance(n, Mapping)]

    async def _deliver_notification(self, notification: Any, sink: MentionSink) -> bool:
        nid = str(notification.get("id"))
        if nid in self._delivered or notification.get("type") != "mention":
            return False
        mention = self._to_mention(notification.get("status") or {}, nid)
        if mention is None:
            return False
        mention = await self._with_parent_pictures(mention)
        await sink(mention)
        self._mark_delivered(nid, mention.remote_id)
        await self._cursors.set_cursor(self.cursor_key, nid)
        return True

    async def _first_catch_up(self, sink: MentionSink) -> int:
        """No cursor yet: the newest page only, mentions younger than
        `first_start_lookback`, oldest first; the cursor then stands at the newest."""
        page = await self._notifications()
        items = sorted(page, key=lambda n: id_key(str(n.get("id"))))
        if not items:  # nothing yet: from now on everything is new
            await self._cursors.set_cursor(self.cursor_key, "0")
            return 0
        cutoff = time.time() - self.first_start_lookback
        delivered = 0
        skipped = 0
        for notification in items:
            created = _parse_time(notification.get("created_at"))
            if created is not None and created < cutoff:
                skipped += 1
                continue
            delivered += await self._deliver_notification(notification, sink)
        await self._cursors.set_cursor(self.cursor_key, str(items[-1].get("id")))
        if skipped:
            log.info(
                "%s: first start: %d mention(s) older than %.0fs left unanswered",
                self.name,
                skipped,
                self.first_start_lookback,
            )
        return delivered

    async def _catch_up(self, sink: MentionSink) -> int:
        cursor = await self._cursors.get_cursor(self.cursor_key)
        if cursor is None:
            return await self._first_catch_up(sink)
        position = cursor
        delivered = 0
        while True:
            page = await self._notifications(min_id=position)
            items = sorted(
                (n for n in page or [] if id_key(str(n.get("id"))) > id_key(position)),
                key=lambda n: id_key(str(n.get("id"))),
            )
            if not items:
                break
            for notification in items:
                delivered += await self._deliver_notification(notification, sink)
                position = str(notification.get("id"))
            if position != cursor:
                await self._cursors.set_cursor(self.cursor_key, position)
                cursor = position
        return delivered

    async def _deliver_stream_notification(
        self, notification: Any, received_at: float, sink: MentionSink
    ) -> None:
        if notification.get("type") != "mention":
            return
        nid = str(notification.get("id"))
        if nid in self._delivered:
            return
        status = notification.get("status")
        if not status or ignorable(status, self._require_started()):
            return
        sid = str(status.get("id"))
        with self._state_lock:
            if sid in self._deleted:
                return
        status = self._latest(status)
        if time.monotonic() - received_at >= self.refetch_after_seconds:
            try:  # waited in the queue: fetch the current version (edited? deleted?)
                status = await self._call(self._client.status, sid)
            except RemoteGone:
                return
        mention = self._to_mention(status, nid)
        if mention is None:
            return
        mention = await self._with_parent_pictures(mention)
        await sink(mention)
        self._mark_delivered(nid, mention.remote_id)

    async def _with_parent_pictures(self, mention: Mention) -> Mention:
        """A reply without pictures of its own that asks for `--strength` starts from the
        pictures of the status it answers (fetched through the API, so their URLs are the
        bot's server's own). Replies to the bot's own posts are left alone."""
        if (
            mention.attachments
            or not mention.in_reply_to_id
            or "--strength" not in mention.text
            or mention.context.get("in_reply_to_account_id") == self._bot_id
        ):
            return mention
        try:
            parent = await self._call(self._client.status, mention.in_reply_to_id)
        except Exception:  # gone or unreadable: the request has no picture then
            log.info(
                "%s: parent %s of %s unreadable",
                self.name,
                mention.in_reply_to_id,
                mention.remote_id,
            )
            return mention
        found = to_attachments(parent or {}, source="parent")
        return dataclasses.replace(mention, attachments=found) if found else mention

    async def _deliver_edit(self, status: Any, sink: MentionSink) -> None:
        """An edit of a request already handed over: hand over its new form (edited_at set);
        the sink decides whether the job can still change."""
        sid = str(status.get("id"))
        nid = self._delivered_status.get(sid)
        bot_id = self._require_started()
        if nid is None or ignorable(status, bot_id) or not mentions_account(status, bot_id):
            return
        mention = self._to_mention(status, nid)
        if mention is not None:
            await sink(mention)

    def _new_stream(
        self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue
    ) -> _Stream | _WsStream | None:
        if not self._stream_kinds:
            return None
        stream: _Stream | _WsStream
        if self._stream_kinds[0] is StreamKind.SSE:
            stream = _Stream(self, loop, queue)
        else:
            stream = _WsStream(self, loop, queue)
        stream.start()
        return stream

    async def listen(self, sink: MentionSink) -> None:
        """Stream + catch-up forever. Raises AuthError when the token stops working."""
        if self._bot_id is None:
            await self.start()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any, float, _Stream]] = asyncio.Queue()
        interval = self.config.catch_up_interval_seconds
        next_catch_up = loop.time()
        reconnect_at: float | None = None
        if not self.config.use_streaming:
            self.receive_mode = "catch-up"
        elif self._stream_kinds:
            reconnect_at = loop.time()
        else:  # found out earlier in this start: nothing streams here
            self.receive_mode = "polling"
            interval = min(interval, self.poll_interval)
        catch_up_backoff = Backoff(base=2.0, cap=interval)
        gap_pending = False  # a stream connected; the catch-up closing its gap is due
        self.stream_synced.clear()
        try:
            while True:
                now = loop.time()
                if self._stream is None and reconnect_at is not None and now >= reconnect_at:
                    reconnect_at = None
                    self._stream = self._new_stream(loop, queue)
                if now >= next_catch_up:
                    closing_gap, gap_pending = gap_pending, False
                    if await self._safe_catch_up(sink):
                        catch_up_backoff.reset()
                        next_catch_up = loop.time() + interval
                        if closing_gap and self._stream is not None:
                            self.stream_synced.set()
                    else:
                        gap_pending = gap_pending or closing_gap
                        next_catch_up = loop.time() + catch_up_backoff.next_delay()
                deadline = min(next_catch_up, reconnect_at if reconnect_at is not None else 1e18)
                try:
                    kind, payload, received_at, stream = await asyncio.wait_for(
                        queue.get(), timeout=max(0.0, deadline - loop.time())
                    )
                except TimeoutError:
                    continue
                if kind == "connected":
                    if self.receive_mode != stream.kind.value:
                        self.receive_mode = stream.kind.value
                        log.info(
                            "%s: receiving mentions over %s streaming (%s)",
                            self.name,
                            "WebSocket" if stream.kind is StreamKind.WEBSOCKET else "SSE",
                            self.flavour.describe(),
                        )
                    else:
                        log.debug("%s: stream reconnected", self.name)
                    next_catch_up = loop.time()  # close the gap since the last event
                    gap_pending = True
                elif kind == "unsupported":
                    if stream is self._stream:
                        self._stream = None
                        self.stream_synced.clear()
                        gone = self._stream_kinds.pop(0)
                        self.stream_not_served[gone.value] = int(payload)
                        if self._stream_kinds:
                            log.info(
                                "%s: %s streaming not served (%s); trying %s",
                                self.name,
                                gone.value,
                                payload,
                                self._stream_kinds[0].value,
                            )
                            reconnect_at = loop.time()
                        else:
                            self.receive_mode = "polling"
                            interval = min(interval, self.poll_interval)
                            catch_up_backoff = Backoff(base=2.0, cap=interval)
                            next_catch_up = min(next_catch_up, loop.time() + interval)
                            log.warning(
                                "%s: no streaming API works on %s (%s); polling every %gs",
                                self.name,
                                self.flavour.describe(),
                                ", ".join(f"{k} {v}" for k, v in self.stream_not_served.items()),
                                interval,
                            )
                elif kind == "ended":
                    current = self._stream
                    if current is not None and stream is current:
                        self._stream = None
                        self.stream_synced.clear()
                        if time.monotonic() - current.started_at > self.stream_stable_after:
                            self.reconnect_backoff.reset()
                        delay = self.reconnect_backoff.next_delay()
                        log.warning(
                            "%s: stream ended (%s); reconnecting in %.1fs",
                            self.name,
                            payload or "closed",
                            delay,
                        )
                        reconnect_at = loop.time() + delay
                elif kind in ("notification", "status_update"):
                    try:
                        if kind == "notification":
                            await self._deliver_stream_notification(payload, received_at, sink)
                        else:
                            await self._deliver_edit(payload, sink)
                    except AuthError:
                        raise
                    except Exception:
                        # Not acknowledged: the next catch-up delivers it again.
                        log.exception("%s: handling a stream event failed", self.name)
                        next_catch_up = min(next_catch_up, loop.time() + 5.0)
        finally:
            self.stream_synced.clear()
            if self._stream is not None:
                self._stream.stop()
                self._stream = None

    async def probe_stream(self, timeout: float = 10.0) -> str:
        """Find how mentions would arrive, as `listen` does (for `fedibot doctor`):
        sets and returns `receive_mode`. Call after `start()`."""
        if not self.config.use_streaming:
            self.receive_mode = "catch-up"
            return self.receive_mode
        loop = asyncio.get_running_loop()
        while self._stream_kinds:
            queue: asyncio.Queue = asyncio.Queue()
            stream = self._new_stream(loop, queue)
            assert stream is not None
            try:
                kind, payload, _, _ = await asyncio.wait_for(queue.get(), timeout)
            except TimeoutError:
                kind, payload = "ended", "no answer"
            finally:
                stream.stop()
            if kind == "connected":
                self.receive_mode = stream.kind.value
                return self.receive_mode
            if kind == "unsupported":
                self.stream_not_served[self._stream_kinds.pop(0).value] = int(payload)
                continue
            self.receive_mode = f"stream failing: {payload or 'closed'}"
            return self.receive_mode
        self.receive_mode = "polling"
        return self.receive_mode

    async def _safe_catch_up(self, sink: MentionSink) -> bool:
        try:
            await self.catch_up(sink)
            return True
        except AuthError:
            raise
        except AdapterError as exc:
            log.warning("%s: catch-up failed: %s", self.name, exc)
        except Exception:
            log.exception("%s: catch-up stopped at a mention the sink did not take", self.name)
        return False

    # --------------------------------------------------------------------------- posting

    def reply_visibility(self, requested: Visibility) -> Visibility:
        """The visibility actually used: the request's, with public capped by config."""
        return reply_visibility(requested, self.config.public_reply_visibility)

    async def _pace(self, media_count: int) -> None:
        waits = {"statuses": self.status_budget.wait_for(1), "api": self.api_budget.wait_for(1)}
        if media_count:
            waits["media"] = self.media_budget.wait_for(media_count)
        name, wait = max(waits.items(), key=lambda kv: kv[1])
        if wait > self.max_inline_wait:
            raise TransientError(
                f"{self.name}: {name} rate-limit budget spent",
                retry_after=wait + random.uniform(0.0, 1.0),
            )
        if wait > 0:
            await asyncio.sleep(wait)

    def _check_media(self, path: Path, mime_type: str) -> None:
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise PermanentError(f"cannot read image {path.name}: {exc}") from exc
        limit = self.limits.image_size_limit
        if limit is not None and size > limit:
            raise PermanentError(f"image {path.name} is {size} bytes; the server takes {limit}")
        if not mime_accepted(mime_type, self.limits.supported_mime_types):
            raise PermanentError(f"the server does not take {mime_type} images")

    async def _wait_processed(self, media: Any) -> str:
        """Poll `GET /api/v1/media/:id` until a 202 upload has its URL (bounded)."""
        delay = self.media_poll_initial_delay
        deadline = time.monotonic() + self.media_processing_timeout
        while media.get("url") is None:
            if time.monotonic() > deadline:
                raise TransientError("the server is still processing an upload", retry_after=30.0)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.media_poll_max_delay)
            media = await self._call(self._client.media, str(media["id"]))
        return str(media["id"])

    async def post(self, post: OutgoingPost) -> PostResult:
        bot_id = self._require_started()
        # Answers to a person are capped by config; the bot's own posts (campaigns, no
        # recipient) go out exactly as configured.
        visibility = self.reply_visibility(post.visibility) if post.recipient else post.visibility
        if len(post.media) > self.limits.max_media_attachments:
            raise PermanentError(
                f"{len(post.media)} images; the server takes {self.limits.max_media_attachments}"
            )
        for item in post.media:
            self._check_media(item.path, item.mime_type)
        max_chars = self.limits.max_characters
        spoiler = post.spoiler_text or ""
        if len(spoiler) > max_chars // 2:
            spoiler = spoiler[: max_chars // 2 - 1] + ELLIPSIS
        recipient = post.recipient.acct if post.recipient else None
        text = compose_status_text(post.text, recipient, max_chars - len(spoiler))
        await self._pace(0 if post.media_refs else len(post.media))

        uploaded = []
        for item in () if post.media_refs else post.media:
            self.media_budget.record_call()
            uploaded.append(
                await self._call(
                    self._client.media_post,
                    str(item.path),
                    mime_type=item.mime_type,
                    description=(item.alt_text or "")[: self.limits.description_limit] or None,
                    file_name=item.path.name,
                )
            )
        media_ids = list(post.media_refs) or [await self._wait_processed(m) for m in uploaded]

        language = normalise_language(post.language, self.flavour.language_form)
        status = await self._post_status(
            post,
            text,
            media_ids=media_ids or None,
            visibility=visibility.value,
            spoiler_text=spoiler or None,
            language=language,
        )
        result = PostResult(remote_id=str(status["id"]), url=status.get("url") or status.get("uri"))
        if to_visibility(status.get("visibility")).rank < visibility.rank:
            # The server made it wider than asked: take it down at once.
            with contextlib.suppress(AdapterError):
                await self._call(self._client.status_delete, result.remote_id)
            raise PermanentError(
                f"{self.config.base_url} posted {status.get('visibility')!r}, asked {visibility}"
            )
        if str(status.get("account", {}).get("id")) != bot_id:
            log.warning("%s: posted status %s is not by the bot?", self.name, result.remote_id)
        return result

    async def _post_status(
        self, post: OutgoingPost, text: str, *, language: str | None, **fields: Any
    ) -> Any:
        """`POST /api/v1/statuses`; a 422 with a language is tried once more without it
        (Akkoma takes ISO 639-1 only); a 403 on a reply is `ReplyForbidden`."""
        key = post.idempotency_key
        try:
            self.status_budget.record_call()
            try:
                return await self._call(
                    self._client.status_post,
                    text,
                    in_reply_to_id=post.in_reply_to_id,
                    sensitive=post.sensitive,
                    language=language,
                    idempotency_key=key,
                    **fields,
                )
            except PermanentError as err:
                if language is None or err.http_status != 422:
                    raise
                log.info(
                    "%s: %s refused the post with language %r (%s); sending it without",
                    self.name,
                    self.config.base_url,
                    language,
                    err,
                )
            self.status_budget.record_call()
            # Akkoma caches every answer under its Idempotency-Key (the 422 too): the retry
            # is a different request and needs a key of its own, derived so it stays stable.
            return await self._call(
                self._client.status_post,
                text,
                in_reply_to_id=post.in_reply_to_id,
                sensitive=post.sensitive,
                idempotency_key=f"{key}-nolang" if key else None,
                **fields,
            )
        except AuthError as err:
            said = _error_text(err.__cause__) if err.__cause__ is not None else ""
            if post.in_reply_to_id and err.http_status == 403 and self._reply_refusal(said):
                forbidden = ReplyForbidden(
                    f"{self.config.base_url} does not let the bot reply to "
                    f"{post.in_reply_to_id} (403): {said}"
                )
                forbidden.http_status = 403
                raise forbidden from err
            raise

    def _reply_refusal(self, said: str) -> bool:
        """Whether a 403 on a reply says "not this reply" rather than "not this bot".

        GoToSocial answers an interaction policy that excludes the bot with 403 "Forbidden:
        you do not have permission to reply to this status" (`processing/status/create.go`).
        Mastodon answers a reply it will not allow with 404 and keeps 403 "This action is
        not allowed" for a suspended or disabled account: that stays an AuthError.
        """
        if _AUTH_403.search(said):
            return False
        return "repl" in said.lower() or self.flavour.software is Software.GOTOSOCIAL

    async def find_existing_reply(self, post: OutgoingPost) -> PostResult | None:
        bot_id = self._require_started()
        if not post.in_reply_to_id:
            return None
        try:
            context = await self._call(self._client.status_context, post.in_reply_to_id)
        except RemoteGone:
            return None
        replies = [
            s
            for s in context.get("descendants") or []
            if str(s.get("account", {}).get("id")) == bot_id
            and str(s.get("in_reply_to_id")) == str(post.in_reply_to_id)
            # a result has images, a notice or error reply has none: never mistake one
            # for the other (e.g. a "your images will follow" notice for the result)
            and bool(s.get("media_attachments")) == bool(post.media)
        ]
        if not replies:
            return None
        first = min(replies, key=lambda s: id_key(str(s.get("id"))))
        return PostResult(remote_id=str(first["id"]), url=first.get("url") or first.get("uri"))

    # ------------------------------------------------------- the post-once contract

    def escape_text(self, text: str) -> str:
        """User text in a plain-text status: no live `@mention` or `#tag` (a zero-width
        space after each `@`/`#`); it reads the same."""
        return _TAGGABLE.sub(lambda m: m.group(0) + _ZWSP, text)

    async def upload(self, item: MediaItem) -> str:
        """Upload one image and wait until the server has processed it; its media id."""
        self._require_started()
        self._check_media(item.path, item.mime_type)
        wait = max(self.media_budget.wait_for(1), self.api_budget.wait_for(1))
        if wait > self.max_inline_wait:
            raise TransientError(
                f"{self.name}: media rate-limit budget spent",
                retry_after=wait + random.uniform(0.0, 1.0),
            )
        if wait > 0:
            await asyncio.sleep(wait)
        self.media_budget.record_call()
        media = await self._call(
            self._client.media_post,
            str(item.path),
            mime_type=item.mime_type,
            description=(item.alt_text or "")[: self.limits.description_limit] or None,
            file_name=item.path.name,
        )
        return await self._wait_processed(media)

    async def media_available(self, ref: str) -> bool:
        """Mastodon answers `GET /api/v1/media/:id` only for the account's media not yet
        attached to a status: 200 → attach it; 404 → gone (cleaned up) or attached."""
        self._require_started()
        try:
            media = await self._call(self._client.media, ref)
        except RemoteGone:
            return False
        await self._wait_processed(media)
        return True

    async def find_post(self, post: OutgoingPost, lookup: PostLookup) -> PostResult | None:
        """An earlier attempt's status: under the parent for a reply, else among the bot's
        recent statuses. Mastodon keeps no marker, so a status matches by one of the recorded
        uploads, or (text-only) by the same kind (media or not) and the same text."""
        bot_id = self._require_started()
        parent = post.in_reply_to_id
        if parent:
            try:
                context = await self._call(self._client.status_context, parent)
            except RemoteGone:
                return None
            candidates = context.get("descendants") or []
        else:
            candidates = await self._call(
                self._client.account_statuses, bot_id, limit=OWN_STATUSES_PAGE
            )
        refs = set(lookup.media_refs)
        wanted = _fingerprint(lookup.text or post.text)
        for status in sorted(candidates or [], key=lambda s: id_key(str(s.get("id")))):
            sid = str(status.get("id"))
            if (
                sid in lookup.exclude
                or str(status.get("account", {}).get("id")) != bot_id
                or (str(status.get("in_reply_to_id") or "") or None) != (parent or None)
            ):
                continue
            attached = {str(m.get("id")) for m in status.get("media_attachments") or []}
            if refs and attached & refs:
                return PostResult(remote_id=sid, url=status.get("url") or status.get("uri"))
            if bool(attached) != bool(post.media) or not wanted:
                continue
            text = html_to_text(status.get("content"), keep_mentions=True)
            if wanted in _fingerprint(text, length=None):
                return PostResult(remote_id=sid, url=status.get("url") or status.get("uri"))
        return None

    async def request_exists(self, mention: Mention) -> bool:
        self._require_started()
        try:
            await self._call(self._client.status, mention.remote_id)
        except RemoteGone:
            return False
        return True

    async def delete(self, remote_id: str) -> None:
        self._require_started()
        with contextlib.suppress(RemoteGone):  # already gone is what we wanted
            await self._call(self._client.status_delete, remote_id)

    async def close(self) -> None:
        if self._stream is not None:
            self._stream.stop()
            self._stream = None
        for task in list(self._ws_tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for client in (self._client, self._streamer):
            if client is not None:
                with contextlib.suppress(Exception):
                    client.session.close()


def _fingerprint(text: str, length: int | None = 60) -> str:
    """What a status' text is recognised by: its first letters and digits, lower case (the
    server adds links and mention markup, the bot zero-width spaces and an ellipsis)."""
    return "".join(ch for ch in text.lower() if ch.isalnum())[:length]
