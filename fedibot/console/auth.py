"""Sign-in for the console: operators from config (argon2 password hashes and/or tokens),
in-memory sessions with a per-session CSRF token, and a login rate limiter.

Sessions live in the serving process only: a restart signs everybody out (by design: there
is nothing to steal from the database or a file).
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from fedibot.console.config import ConsoleConfig, OperatorConfig

COOKIE = "fedibot_console"
LOGIN_COOKIE = "fedibot_console_login"


def hash_password(password: str) -> str:
    """An argon2id hash for `[[console.operators]] password_hash`."""
    from argon2 import PasswordHasher

    return PasswordHasher().hash(password)


def _verify_hash(stored: str, password: str) -> bool:
    from argon2 import PasswordHasher
    from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

    try:
        return PasswordHasher().verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


# A real hash of a random password: unknown names cost as much time as known ones.
_DUMMY_HASH: str | None = None


def _dummy_hash() -> str:
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = hash_password(secrets.token_urlsafe(16))
    return _DUMMY_HASH


def check_credentials(operators: Iterable[OperatorConfig], name: str, secret: str) -> str | None:
    """The operator's name when `secret` is their password or token; None otherwise."""
    found = next((o for o in operators if hmac.compare_digest(o.name, name)), None)
    if found is None or not secret:
        _verify_hash(_dummy_hash(), secret or "x")
        return None
    ok = False
    if found.token is not None:
        ok = hmac.compare_digest(found.token.get_secret_value().encode(), secret.encode())
    if not ok and found.password_hash:
        ok = _verify_hash(found.password_hash, secret)
    return found.name if ok else None


@dataclass
class Session:
    id: str
    operator: str
    csrf: str
    created_at: float
    last_seen: float
    opened_dms: set[int] = field(default_factory=set)
    flash: list[tuple[str, str]] = field(default_factory=list)


class Sessions:
    """Session id → Session, with absolute and idle expiry on an injected clock."""

    def __init__(self, cfg: ConsoleConfig, clock: Callable[[], float] = time.time) -> None:
        self.max_age = cfg.session_hours * 3600
        self.idle = cfg.idle_minutes * 60
        self.clock = clock
        self._by_id: dict[str, Session] = {}

    def create(self, operator: str) -> Session:
        now = self.clock()
        session = Session(secrets.token_urlsafe(32), operator, secrets.token_urlsafe(32), now, now)
        self._by_id[session.id] = session
        self._expire(now)
        return session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        session = self._by_id.get(session_id)
        if session is None:
            return None
        now = self.clock()
        if now - session.created_at > self.max_age or now - session.last_seen > self.idle:
            self._by_id.pop(session_id, None)
            return None
        session.last_seen = now
        return session

    def drop(self, session_id: str | None) -> None:
        if session_id:
            self._by_id.pop(session_id, None)

    def _expire(self, now: float) -> None:
        for sid, s in list(self._by_id.items()):
            if now - s.created_at > self.max_age or now - s.last_seen > self.idle:
                del self._by_id[sid]


def csrf_ok(expected: str, given: object) -> bool:
    return isinstance(given, str) and bool(given) and hmac.compare_digest(expected, given)


class LoginLimiter:
    """Failed sign-ins per client address and per operator name in a sliding window.

    `blocked(ip, name)` is asked before checking a password; `failed(ip, name)` records a
    failure; a success clears the name's failures (not the address's)."""

    def __init__(self, cfg: ConsoleConfig, clock: Callable[[], float] = time.time) -> None:
        self.window = cfg.login_window_minutes * 60
        self.per_ip = cfg.max_failures_per_ip
        self.per_user = cfg.max_failures_per_user
        self.clock = clock
        self._ip: dict[str, deque[float]] = {}
        self._user: dict[str, deque[float]] = {}

    def _count(self, table: dict[str, deque[float]], key: str, now: float) -> int:
        times = table.get(key)
        if not times:
            return 0
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del table[key]
            return 0
        return len(times)

    def blocked(self, ip: str, name: str) -> bool:
        now = self.clock()
        return (
            self._count(self._ip, ip, now) >= self.per_ip
            or self._count(self._user, name.lower(), now) >= self.per_user
        )

    def failed(self, ip: str, name: str) -> None:
        now = self.clock()
        self._ip.setdefault(ip, deque()).append(now)
        self._user.setdefault(name.lower(), deque()).append(now)

    def succeeded(self, name: str) -> None:
        self._user.pop(name.lower(), None)


def is_trusted(remote: str | None, proxies: list[str]) -> bool:
    if not remote or not proxies:
        return False
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(p, strict=False) for p in proxies)
