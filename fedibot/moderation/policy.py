"""The moderation policy: may this account ask, is the prompt acceptable, is there quota left?

Checked at ingest and again just before replying. The instance lists and bans are cached in
memory (the hot path does no SQL for them) and reloaded when this process changed them
(`fedibot.moderation.allowlist.version()`) or, every `refresh_seconds`, when the audit log's
change stamp moved (another process changed them). Quotas are counted from the `jobs` table
in sliding windows: accepted jobs, except the requests-per-hour limit of a user, which also
counts that user's refused requests (`rejected`), so a flood of bad or over-quota mentions
keeps its sender out. Refusal replies are limited to one per requester per
`refusal_reply_window_minutes` (`may_reply_to_refusal`).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import and_, case, func, select
from sqlalchemy.engine import Connection

from federation.types import Account
from fedibot.config.policy import PolicyConfig, QuotaConfig
from fedibot.moderation import allowlist
from fedibot.moderation.prompt_filter import PromptFilter
from fedibot.storage.database import Database
from fedibot.storage.models import Job, JobState, ReplyState, table_of

jobs = table_of(Job)
HOUR = 3600.0
DAY = 86400.0
# Jobs that still hold a slot of the requester (everything before a terminal state).
IN_FLIGHT_STATES = (
    JobState.RECEIVED,
    JobState.QUEUED,
    JobState.GENERATING,
    JobState.GENERATED,
    JobState.REPLYING,
)

Code = Literal[
    "", "opted_out", "user_banned", "instance_not_allowed", "prompt_blocked", "quota_exceeded"
]


@dataclass(frozen=True)
class Decision:
    """`message` is safe to post to the user; `reason` goes to the refusal record."""

    allowed: bool
    code: Code = ""
    message: str = ""
    reason: str = ""
    reply: bool = False
    reset_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


ALLOWED = Decision(allowed=True)

MSG_INSTANCE = "Sorry, this bot does not take requests from accounts on {domain}."
MSG_BANNED = "Sorry, this bot does not take requests from your account."


# -- quotas -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuotaLine:
    """One limit: how much of it is used now, and when one more request fits again."""

    name: str  # the QuotaConfig field, e.g. "user_requests_per_hour"
    scope: Literal["user", "instance"]
    label: str  # "requests per hour"
    used: int
    limit: int  # 0: no limit
    window_seconds: float | None  # None: jobs in flight (no time window)
    exceeded: bool = False
    reset_at: float | None = None  # set when exceeded and computable

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _fmt_reset(reset_at: float, now: float) -> str:
    """'14:05 UTC (in 23 minutes)'; the time is rounded up to the minute so asking at the
    displayed minute always works."""
    shown = datetime.fromtimestamp(math.ceil(reset_at / 60) * 60, UTC)
    today = datetime.fromtimestamp(now, UTC).date()
    day = "" if shown.date() == today else " tomorrow"
    minutes = max(1, math.ceil((reset_at - now) / 60))
    if minutes < 60:
        wait = f"{minutes} minute{'s' if minutes != 1 else ''}"
    else:
        hours, rest = divmod(minutes, 60)
        wait = f"{hours} hour{'s' if hours != 1 else ''}"
        if rest:
            wait += f" {rest} minute{'s' if rest != 1 else ''}"
    return f"{shown:%H:%M} UTC{day} (in {wait})"


def _nth_oldest(
    conn: Connection, where: Any, since: float, offset: int, *, refused_count: bool = False
) -> float | None:
    counted = jobs.c.kind == "mention" if refused_count else jobs.c.state != JobState.REJECTED
    row = conn.execute(
        select(jobs.c.created_at)
        .where(where, jobs.c.created_at > since, counted)
        .order_by(jobs.c.created_at)
        .offset(max(0, offset))
        .limit(1)
    ).first()
    return None if row is None else float(row[0])


def quota_lines(
    conn: Connection,
    cfg: QuotaConfig,
    acct: str,
    domain: str,
    now: float,
    images: int = 1,
    exclude_job_id: int | None = None,
) -> list[QuotaLine]:
    """Usage of every limit for `acct` (on `domain`), as if asking for `images` more.
    `exclude_job_id` leaves one job out (an edited request is checked as if asked anew)."""
    # Image requests that were accepted: refusals, help and delete replies do not count...
    accepted = and_(jobs.c.state != JobState.REJECTED, jobs.c.kind == "mention")
    if exclude_job_id is not None:
        accepted = and_(accepted, jobs.c.id != exclude_job_id)
    hour_ago, day_ago = now - HOUR, now - DAY
    is_user = jobs.c.requester == acct
    if exclude_job_id is not None:
        is_user = and_(is_user, jobs.c.id != exclude_job_id)
    is_instance = jobs.c.requester_domain == domain
    in_hour = func.coalesce(func.sum(case((jobs.c.created_at > hour_ago, 1), else_=0)), 0)

    user_day, user_images = conn.execute(
        select(func.count(), func.coalesce(func.sum(jobs.c.n), 0)).where(
            is_user, accepted, jobs.c.created_at > day_ago
        )
    ).one()
    # ...except in a user's requests per hour: refused requests count there too.
    user_hour = conn.execute(
        select(func.count()).where(is_user, jobs.c.kind == "mention", jobs.c.created_at > hour_ago)
    ).scalar_one()
    in_flight = conn.execute(
        select(func.count()).where(is_user, jobs.c.state.in_(IN_FLIGHT_STATES))
    ).scalar_one()
    inst_day, inst_hour = conn.execute(
        select(func.count(), in_hour).where(is_instance, accepted, jobs.c.created_at > day_ago)
    ).one()

    lines: list[QuotaLine] = []

    def requests(
        name: str,
        scope: Literal["user", "instance"],
        used: int,
        window: float,
        where: Any,
        refused_count: bool = False,
    ) -> None:
        limit = getattr(cfg, name)
        label = "requests per hour" if window == HOUR else "requests per day"
        exceeded = bool(limit) and used >= limit
        reset = None
        if exceeded:
            oldest = _nth_oldest(
                conn, where, now - window, used - limit, refused_count=refused_count
            )
            reset = None if oldest is None else oldest + window
        lines.append(QuotaLine(name, scope, label, int(used), limit, window, exceeded, reset))

    requests("user_requests_per_hour", "user", user_hour, HOUR, is_user, refused_count=True)
    requests("user_requests_per_day", "user", user_day, DAY, is_user)

    limit = cfg.user_images_per_day
    used = int(user_images)
    exceeded = bool(limit) and used + images > limit
    reset = None
    if exceeded and images <= limit:
        freed = 0
        rows = conn.execute(
            select(jobs.c.created_at, jobs.c.n)
            .where(is_user, accepted, jobs.c.created_at > day_ago)
            .order_by(jobs.c.created_at)
        )
        for created_at, n in rows:
            freed += int(n)
            if used - freed + images <= limit:
                reset = float(created_at) + DAY
                break
    lines.append(
        QuotaLine(
            "user_images_per_day", "user", "images per day", used, limit, DAY, exceeded, reset
        )
    )
    limit = cfg.user_jobs_in_flight
    lines.append(
        QuotaLine(
            "user_jobs_in_flight",
            "user",
            "requests in progress",
            int(in_flight),
            limit,
            None,
            bool(limit) and in_flight >= limit,
        )
    )
    requests("instance_requests_per_hour", "instance", inst_hour, HOUR, is_instance)
    requests("instance_requests_per_day", "instance", inst_day, DAY, is_instance)
    return lines


def _quota_message(line: QuotaLine, domain: str, images: int, now: float) -> str:
    if line.name == "user_jobs_in_flight":
        return (
            f"You already have {line.used} requests in progress (the limit is {line.limit}). "
            "Please ask again when one of them is finished."
        )
    if line.name == "user_images_per_day" and images > line.limit:
        return f"Sorry, you can ask for at most {line.limit} images per day."
    if line.scope == "instance":
        head = f"Accounts on {domain} have reached this bot's limit of {line.limit} {line.label}."
    elif line.name == "user_images_per_day":
        head = (
            f"You have reached the limit of {line.limit} images per day "
            f"({line.used} used, {images} asked)."
        )
    else:
        head = f"You have reached the limit of {line.limit} {line.label}."
    if line.reset_at is None:
        return head + " Please try again later."
    return f"{head} You can ask again after {_fmt_reset(line.reset_at, now)}."


# -- cached lists -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Lists:
    overrides: dict[str, str]
    fediseer: dict[str, str]
    banned: frozenset[str]
    stamp: tuple[int, int]


def _load_lists(conn: Connection) -> _Lists:
    stamp = allowlist.change_stamp(conn)
    o, f, b = allowlist.overrides_t, allowlist.fediseer_t, allowlist.bans_t
    overrides = dict(conn.execute(select(o.c.domain, o.c.action)).tuples().all())
    fediseer = dict(conn.execute(select(f.c.domain, f.c.list)).tuples().all())
    banned = frozenset(conn.execute(select(b.c.acct)).scalars().all())
    return _Lists(overrides, fediseer, banned, stamp)


# -- the policy -------------------------------------------------------------------------------


class Policy:
    """One per process; share it between ingest and the replier."""

    def __init__(
        self,
        db: Database,
        policy_cfg: PolicyConfig,
        quota_cfg: QuotaConfig,
        prompt_filter: PromptFilter,
        own_domains: Iterable[str] = (),
        clock: Callable[[], float] = time.time,
        *,
        refresh_seconds: float = 5.0,
    ) -> None:
        self.db = db
        self.cfg = policy_cfg
        self.quotas = quota_cfg
        self.prompt_filter = prompt_filter
        self.own_domains = frozenset(_domain_key(d) for d in own_domains)
        self.clock = clock
        self.refresh_seconds = refresh_seconds
        self._exempt = frozenset(_acct_key(a) for a in quota_cfg.exempt) | frozenset(
            _normal_acct(a) for a in quota_cfg.exempt
        )
        self._lists: _Lists | None = None
        self._lists_version = -1
        self._checked_at = 0.0
        self._lock = asyncio.Lock()

    def _reply(self, code: str) -> bool:
        return code != "opted_out" and bool(getattr(self.cfg.reply_on_refusal, code, False))

    def _refuse(
        self, code: Code, message: str, reason: str, reset_at: float | None = None
    ) -> Decision:
        return Decision(False, code, message, reason, self._reply(code), reset_at)

    async def lists(self) -> _Lists:
        """The cached lists, reloaded when stale (see the module docstring)."""
        fresh = (
            self._lists is not None
            and self._lists_version == allowlist.version()
            and time.monotonic() - self._checked_at < self.refresh_seconds
        )
        if fresh:
            assert self._lists is not None
            return self._lists
        async with self._lock:
            version = allowlist.version()
            current = self._lists
            if current is not None and self._lists_version == version:
                if time.monotonic() - self._checked_at < self.refresh_seconds:
                    return current
                if await self.db.run(allowlist.change_stamp) == current.stamp:
                    self._checked_at = time.monotonic()
                    return current
            self._lists = await self.db.run(_load_lists)
            self._lists_version = version
            self._checked_at = time.monotonic()
            return self._lists

    async def check_requester(self, author: Account) -> Decision:
        """#nobot/#noai, bans, then the instance rule of the configured mode."""
        if self.cfg.respect_opt_out and author.opted_out:
            return self._refuse("opted_out", "", "the profile says #nobot or #noai")
        lists = await self.lists()
        acct = _acct_key(author.acct)
        try:  # overrides and bans are stored normalised (IDNs as punycode): compare alike
            acct = allowlist.normalize_acct(acct)
            domain = allowlist.normalize_domain(author.domain)
        except ValueError:
            domain = author.domain
        if acct in lists.banned:
            return self._refuse("user_banned", MSG_BANNED, f"banned user {acct}")
        verdict = allowlist.decide_domain(
            domain,
            self.cfg.mode,
            self.own_domains,
            lists.overrides.get(domain),
            lists.fediseer.get(domain),
        )
        if not verdict.allowed:
            return self._refuse(
                "instance_not_allowed",
                MSG_INSTANCE.format(domain=domain),
                f"instance {domain}: {verdict.reason}",
            )
        return ALLOWED

    def check_prompt(self, prompt: str, negative: str = "") -> Decision:
        verdict = self.prompt_filter.check(prompt, negative)
        if verdict.allowed:
            return ALLOWED
        return self._refuse("prompt_blocked", verdict.user_message, verdict.reason)

    async def quota_status(self, acct: str, images: int = 1) -> list[QuotaLine]:
        """Every limit for `acct` (user@domain) as of now, as if it asked for `images`."""
        acct_key = _acct_key(acct)
        domain = acct_key.rsplit("@", 1)[-1]
        return await self.db.run(quota_lines, self.quotas, acct_key, domain, self.clock(), images)

    def is_exempt(self, acct: str) -> bool:
        return _acct_key(acct) in self._exempt or _normal_acct(acct) in self._exempt

    async def check_quota(
        self, author: Account, images: int = 1, *, exclude_job_id: int | None = None
    ) -> Decision:
        """Refuse when one more request (of `images` images) would break a limit; the message
        names the latest reset among the broken limits (when the user can really ask again).
        `exclude_job_id`: check an edited request as if it were asked anew."""
        if self.is_exempt(author.acct):
            return ALLOWED
        now = self.clock()
        lines = await self.db.run(
            quota_lines,
            self.quotas,
            _acct_key(author.acct),
            author.domain,
            now,
            images,
            exclude_job_id,
        )
        broken = [line for line in lines if line.exceeded]
        if not broken:
            return ALLOWED
        unknown = [line for line in broken if line.reset_at is None]
        worst = unknown[0] if unknown else max(broken, key=lambda line: line.reset_at or 0.0)
        reason = ", ".join(f"{b.name} {b.used}/{b.limit}" for b in broken)
        return self._refuse(
            "quota_exceeded",
            _quota_message(worst, author.domain, images, now),
            f"quota: {reason}",
            worst.reset_at,
        )

    async def may_reply_to_refusal(self, acct: str) -> bool:
        """False when `acct` already got a refusal reply (or has one on its way) within
        `refusal_reply_window_minutes`: one reply per window, the rest are recorded only."""
        window = self.cfg.refusal_reply_window_minutes * 60
        if window <= 0:
            return True
        since = self.clock() - window
        requester = _acct_key(acct)

        def body(conn: Connection) -> bool:
            row = conn.execute(
                select(jobs.c.id)
                .where(
                    jobs.c.requester == requester,
                    jobs.c.created_at > since,
                    jobs.c.state == JobState.REJECTED,
                    jobs.c.reply_state != ReplyState.NONE,
                )
                .limit(1)
            ).first()
            return row is None

        return await self.db.run(body)

    async def check(
        self, author: Account, prompt: str, negative: str = "", images: int = 1
    ) -> Decision:
        """requester → prompt → quota; the first refusal wins."""
        decision = await self.check_requester(author)
        if not decision.allowed:
            return decision
        decision = self.check_prompt(prompt, negative)
        if not decision.allowed:
            return decision
        return await self.check_quota(author, images)

    def flagged_action(self) -> Literal["sensitive", "blur", "withhold"]:
        """What the replier does with an image the safety check flagged."""
        return self.cfg.flagged_images


def _acct_key(acct: str) -> str:
    return acct.strip().lstrip("@").lower()


def _normal_acct(acct: str) -> str:
    """user@domain with the domain in the normal form (IDNA A-label)."""
    try:
        return allowlist.normalize_acct(acct)
    except ValueError:
        return _acct_key(acct)


def _domain_key(domain: str) -> str:
    try:
        return allowlist.normalize_domain(domain)
    except ValueError:
        return domain.strip().lower()


def blur_image(path: str | Path, radius: float | None = None) -> Path:
    """Write a strongly blurred copy next to `path` (`name.blurred.png`) and return its path.
    The default radius scales with the image so the content is unrecognisable at any size."""
    from PIL import Image, ImageFilter

    src = Path(path)
    out = src.with_name(f"{src.stem}.blurred{src.suffix or '.png'}")
    with Image.open(src) as img:
        mode = img.mode if img.mode in ("RGB", "RGBA") else "RGB"
        r = radius if radius is not None else max(8.0, max(img.size) / 16)
        img.convert(mode).filter(ImageFilter.GaussianBlur(r)).save(out)
    return out
