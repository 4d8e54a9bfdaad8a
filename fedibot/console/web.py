"""The console's aiohttp application: routes, sign-in, CSRF, security headers, pages.

Every route except `/login` and `/static/…` needs a session (`_auth` middleware); every POST
needs the session's CSRF token in the form field `csrf` (`_csrf` middleware). Images are
addressed by (job id, index) integers only; their bytes come from `fedibot.console.images`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from aiohttp import web

from fedibot.console import auth, charts, images, queries
from fedibot.console.context import ConsoleContext
from fedibot.moderation.allowlist import (
    Allowlist,
    decide_domain,
    normalize_acct,
    normalize_domain,
    write_audit,
)
from fedibot.queue import review

log = logging.getLogger("fedibot.console")

HERE = Path(__file__).resolve().parent
PUBLIC = ("/login", "/static/")
SESSION = web.RequestKey("session", auth.Session)
CTX = web.AppKey("ctx", ConsoleContext)
STATE = web.AppKey("state", object)
MAX_ID = r"\d{1,18}"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ConsoleState:
    """Per-app mutable state: sessions, the login limiter, the templates."""

    def __init__(self, ctx: ConsoleContext) -> None:
        cfg = ctx.config.console
        self.sessions = auth.Sessions(cfg, ctx.clock)
        self.limiter = auth.LoginLimiter(cfg, ctx.clock)
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(HERE / "templates")),
            autoescape=True,  # every template, whatever its name
            auto_reload=False,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["time"] = fmt_time
        self.env.filters["ago"] = lambda t: fmt_ago(t, ctx.clock())
        self.env.filters["seconds"] = fmt_seconds
        self.env.filters["score"] = lambda v: f"{float(v):.2f}"
        self.env.globals["qs"] = lambda args: urlencode(args)


def fmt_time(epoch: float | None) -> str:
    if epoch is None:
        return ""
    return f"{datetime.fromtimestamp(epoch, UTC):%Y-%m-%d %H:%M} UTC"


def fmt_ago(epoch: float | None, now: float) -> str:
    if epoch is None:
        return "never"
    delta = now - epoch
    if delta < 0:
        return f"in {fmt_seconds(-delta)}"
    return f"{fmt_seconds(delta)} ago"


def fmt_seconds(value: float | None) -> str:
    if value is None:
        return "–"
    if value < 90:
        return f"{value:.1f} s" if value < 10 else f"{value:.0f} s"
    if value < 600:
        return f"{value / 60:.1f} min"
    if value < 5400:
        return f"{value / 60:.0f} min"
    if value < 172800:
        return f"{value / 3600:.1f} h"
    return f"{value / 86400:.1f} d"


# ------------------------------------------------------------------------ helpers


def ctx_of(request: web.Request) -> ConsoleContext:
    return request.app[CTX]


def state_of(request: web.Request) -> ConsoleState:
    value = request.app[STATE]
    assert isinstance(value, ConsoleState)
    return value


def session_of(request: web.Request) -> auth.Session:
    return request[SESSION]


def actor(request: web.Request) -> str:
    return f"console:{session_of(request).operator}"


def client_ip(request: web.Request) -> str:
    cfg = ctx_of(request).config.console
    remote = request.remote or "unknown"
    if auth.is_trusted(remote, cfg.trusted_proxies):
        forwarded = [p.strip() for p in request.headers.get("X-Forwarded-For", "").split(",")]
        for hop in reversed([p for p in forwarded if p]):
            if not auth.is_trusted(hop, cfg.trusted_proxies):
                return hop
    return remote


def is_https(request: web.Request) -> bool:
    cfg = ctx_of(request).config.console
    if cfg.secure_cookies == "always":
        return True
    if cfg.secure_cookies == "never":
        return False
    if request.secure:
        return True
    if auth.is_trusted(request.remote, cfg.trusted_proxies):
        proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        return proto == "https"
    return False


def render(request: web.Request, name: str, status: int = 200, **values: Any) -> web.Response:
    st = state_of(request)
    session = request.get(SESSION)
    flash: list[tuple[str, str]] = []
    if session is not None:
        flash, session.flash = session.flash, []
    body = st.env.get_template(name).render(
        session=session,
        csrf=session.csrf if session is not None else "",
        path=request.path,
        flash=flash,
        **values,
    )
    return web.Response(text=body, content_type="text/html", status=status)


def flash(request: web.Request, kind: str, message: str) -> None:
    session_of(request).flash.append((kind, message))


def redirect(location: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(location)


def int_param(request: web.Request, name: str) -> int:
    return int(request.match_info[name])


def opt_int(value: str | None) -> int | None:
    if value and value.isdigit() and len(value) <= 18:
        return int(value)
    return None


async def audit(request: web.Request, action: str, target: str, **detail: Any) -> None:
    ctx = ctx_of(request)
    now = ctx.clock()
    name = actor(request) if request.get(SESSION) is not None else "console:-"
    await ctx.db.run(write_audit, now, name, action, target, detail)


def allowlist_for(request: web.Request) -> Allowlist:
    ctx = ctx_of(request)
    return Allowlist(
        ctx.db,
        mode=ctx.config.policy.mode,
        own_domains=ctx.config.own_domains,
        actor=actor(request),
        clock=ctx.clock,
    )


def dm_hidden(request: web.Request, job: Any) -> bool:
    """Direct-message results stay hidden until the operator opens them (audited)."""
    return job.visibility == "direct" and job.id not in session_of(request).opened_dms


# ------------------------------------------------------------------------ middlewares


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
        _headers(response, request)
        raise
    _headers(response, request)
    return response


def _headers(response: web.StreamResponse, request: web.Request) -> None:
    h = response.headers
    h.setdefault(
        "Content-Security-Policy",
        "default-src 'none'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    )
    h.setdefault("X-Content-Type-Options", "nosniff")
    h.setdefault("X-Frame-Options", "DENY")
    h.setdefault("Referrer-Policy", "same-origin")
    if not request.path.startswith("/static/"):
        h.setdefault("Cache-Control", "no-store")


@web.middleware
async def require_session(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path == "/login" or request.path.startswith("/static/"):
        return await handler(request)
    st = state_of(request)
    session = st.sessions.get(request.cookies.get(auth.COOKIE))
    if session is None:
        if request.method in ("GET", "HEAD"):
            target = request.path_qs if request.path != "/" else ""
            raise redirect("/login" + (f"?{urlencode({'next': target})}" if target else ""))
        raise web.HTTPForbidden(text="sign in first")
    request[SESSION] = session
    if request.method not in ("GET", "HEAD"):
        form = await request.post()
        if not auth.csrf_ok(session.csrf, form.get("csrf")):
            log.warning("console: form without a valid CSRF token refused (%s)", request.path)
            raise web.HTTPForbidden(text="the form's security token is missing or stale")
    return await handler(request)


# ------------------------------------------------------------------------ sign-in


def _login_token(request: web.Request) -> str:
    """The sign-in form's CSRF token (double-submit cookie). An existing one is kept, so a
    second sign-in page (another tab, the browser's favicon request) does not break the
    first."""
    current = request.cookies.get(auth.LOGIN_COOKIE, "")
    if 24 <= len(current) <= 64 and current.replace("-", "").replace("_", "").isalnum():
        return current
    return secrets.token_urlsafe(24)


async def login_page(request: web.Request) -> web.Response:
    token = _login_token(request)
    response = render(
        request,
        "login.html",
        login_csrf=token,
        next=_safe_next(request.query.get("next", "")),
        error="",
    )
    _set_cookie(request, response, auth.LOGIN_COOKIE, token, max_age=1800)
    return response


def _safe_next(value: str) -> str:
    """Only a path on this site (never //host or a scheme)."""
    if value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


def _set_cookie(
    request: web.Request, response: web.StreamResponse, name: str, value: str, max_age: int
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=is_https(request),
    )


async def login_submit(request: web.Request) -> web.StreamResponse:
    st = state_of(request)
    ctx = ctx_of(request)
    form = await request.post()
    cookie_token = request.cookies.get(auth.LOGIN_COOKIE, "")
    if not cookie_token or not auth.csrf_ok(cookie_token, form.get("csrf")):
        raise web.HTTPForbidden(text="the form's security token is missing or stale; reload")
    name = str(form.get("name", "")).strip()[:64]
    secret = str(form.get("password", ""))[:1024]
    ip = client_ip(request)
    next_path = _safe_next(str(form.get("next", "/")))

    def again(message: str, status: int) -> web.Response:
        token = _login_token(request)
        response = render(
            request, "login.html", status=status, login_csrf=token, next=next_path, error=message
        )
        _set_cookie(request, response, auth.LOGIN_COOKIE, token, max_age=1800)
        return response

    if st.limiter.blocked(ip, name):
        return again("Too many failed sign-ins. Wait a few minutes and try again.", 429)
    operator = await asyncio.to_thread(
        auth.check_credentials, ctx.config.console.operators, name, secret
    )
    if operator is None:
        st.limiter.failed(ip, name)
        await ctx.db.run(
            write_audit, ctx.clock(), "console:-", "console.login_failed", name, {"ip": ip}
        )
        return again("Wrong name or password.", 401)
    st.limiter.succeeded(name)
    old = request.cookies.get(auth.COOKIE)
    st.sessions.drop(old)
    session = st.sessions.create(operator)
    await ctx.db.run(
        write_audit, ctx.clock(), f"console:{operator}", "console.login", operator, {"ip": ip}
    )
    response = web.HTTPSeeOther(next_path)
    _set_cookie(
        request, response, auth.COOKIE, session.id, int(ctx.config.console.session_hours * 3600)
    )
    response.del_cookie(auth.LOGIN_COOKIE, path="/")
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    await audit(request, "console.logout", session_of(request).operator)
    state_of(request).sessions.drop(session_of(request).id)
    response = web.HTTPSeeOther("/login")
    response.del_cookie(auth.COOKIE, path="/")
    raise response


# ------------------------------------------------------------------------ overview


async def overview_page(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    data = await ctx.db.run(queries.overview, ctx.clock())
    return render(
        request,
        "overview.html",
        o=data,
        images_chart=charts.bar_chart(data.images_per_hour, "Images per hour", "images"),
        reply_chart=charts.line_chart(
            {"p50": data.reply_p50_per_hour, "p95": data.reply_p95_per_hour},
            "Time to reply per hour (p50, p95)",
        ),
        now=ctx.clock(),
    )


# ------------------------------------------------------------------------ gallery and jobs


async def gallery_page(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    q = request.query
    state = q.get("state", "")
    if state and state not in queries.GALLERY_STATES:
        state = ""
    f = queries.GalleryFilter(
        state=state,
        account=q.get("account", "")[:64],
        requester=q.get("requester", "")[:320],
        instance=q.get("instance", "")[:255],
        flagged=q.get("flagged") == "1",
        before=opt_int(q.get("before")),
    )
    cards, next_before = await ctx.db.run(queries.gallery, f, ctx.config.console.page_size)
    return render(
        request,
        "gallery.html",
        cards=cards,
        f=f,
        next_args=f.query_args(before=next_before) if next_before else None,
        states=queries.GALLERY_STATES,
        accounts=[a.name for a in ctx.config.accounts],
        hidden=lambda job: dm_hidden(request, job),
    )


async def job_page(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    job_id = int_param(request, "job_id")
    detail = await ctx.db.run(queries.job_detail, job_id)
    if detail is None:
        raise web.HTTPNotFound(text=f"no job {job_id}")
    hidden = dm_hidden(request, detail.job)
    parameters: list[str | None] = []
    if not hidden:
        for image in detail.images:
            try:
                data = await images.image_bytes(ctx, job_id, image.index)
            except images.ImageMissing:
                parameters.append(None)
                continue
            parameters.append(await asyncio.to_thread(images.png_parameters, data))
    codes = review.reason_codes(detail.job, detail.images)
    return render(
        request,
        "job.html",
        d=detail,
        hidden=hidden,
        parameters=parameters,
        codes=codes,
        minor=review.is_minor_rule(codes),
        reasons=review.DISCARD_REASONS,
        withheld=review.WITHHELD,
    )


async def open_dm(request: web.Request) -> web.StreamResponse:
    ctx = ctx_of(request)
    job_id = int_param(request, "job_id")
    visibility = await ctx.db.run(queries.job_visibility, job_id)
    if visibility is None:
        raise web.HTTPNotFound(text=f"no job {job_id}")
    form = await request.post()
    why = str(form.get("why", "")).strip()[:500]
    session_of(request).opened_dms.add(job_id)
    await audit(request, "console.open_dm", f"job:{job_id}", why=why)
    raise redirect(f"/jobs/{job_id}")


async def _image_response(request: web.Request, thumb: bool) -> web.StreamResponse:
    ctx = ctx_of(request)
    job_id, index = int_param(request, "job_id"), int_param(request, "index")
    visibility = await ctx.db.run(queries.job_visibility, job_id)
    if visibility is None:
        raise web.HTTPNotFound()
    if visibility == "direct" and job_id not in session_of(request).opened_dms:
        raise web.HTTPForbidden(text="a direct message's image: open the job first")
    try:
        if thumb:
            data = await images.thumbnail_bytes(ctx, job_id, index)
        else:
            data = await images.image_bytes(ctx, job_id, index)
    except images.ImageMissing:
        raise web.HTTPNotFound() from None
    return web.Response(
        body=data,
        content_type="image/jpeg" if thumb else "image/png",
        headers={"Cache-Control": "private, max-age=3600"},
    )


async def image_full(request: web.Request) -> web.StreamResponse:
    return await _image_response(request, thumb=False)


async def image_thumb(request: web.Request) -> web.StreamResponse:
    return await _image_response(request, thumb=True)


# ------------------------------------------------------------------------ review


REVIEW_TABS = ("withheld", "evidence", "failed")


async def review_page(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    tab = request.query.get("tab", "withheld")
    if tab not in REVIEW_TABS:
        tab = "withheld"
    cards = await ctx.db.run(queries.review_items, tab, 40)
    minor = {c.job.id: review.is_minor_rule(review.reason_codes(c.job, c.images)) for c in cards}
    codes = {c.job.id: review.reason_codes(c.job, c.images) for c in cards}
    return render(
        request,
        "review.html",
        cards=cards,
        tab=tab,
        tabs=REVIEW_TABS,
        minor=minor,
        codes=codes,
        reasons=review.DISCARD_REASONS,
        hidden=lambda job: dm_hidden(request, job),
    )


async def _review_action(request: web.Request, fn: Callable[..., Awaitable[Any]]) -> None:
    try:
        await fn()
    except review.ReviewError as exc:
        status = 409 if exc.code in ("minor_rule", "not_withheld", "raced", "evidence") else 400
        if exc.code == "not_found":
            status = 404
        raise _refusal(request, status, str(exc)) from None


_REFUSALS: dict[int, type[web.HTTPException]] = {
    400: web.HTTPBadRequest,
    404: web.HTTPNotFound,
    409: web.HTTPConflict,
}


def _refusal(request: web.Request, status: int, message: str) -> web.HTTPException:
    """An error page to raise (the operator sees why, with a way back)."""
    page = render(request, "error.html", status=status, message=message)
    assert page.text is not None
    return _REFUSALS[status](text=page.text, content_type="text/html")


async def review_approve(request: web.Request) -> web.StreamResponse:
    ctx = ctx_of(request)
    job_id = int_param(request, "job_id")
    form = await request.post()
    decision = str(form.get("decision", ""))
    await _review_action(
        request, lambda: review.approve(ctx.queue, job_id, decision, actor(request))
    )
    flash(request, "ok", f"Job {job_id} approved ({decision}); it will be posted.")
    raise redirect("/review")


async def review_discard(request: web.Request) -> web.StreamResponse:
    ctx = ctx_of(request)
    job_id = int_param(request, "job_id")
    form = await request.post()
    reason = str(form.get("reason", ""))
    await _review_action(request, lambda: review.discard(ctx.queue, job_id, reason, actor(request)))
    removed = await images.delete_job_images(ctx, job_id)
    flash(request, "ok", f"Job {job_id} discarded ({removed} image(s) deleted); requester told.")
    raise redirect("/review")


async def review_evidence(request: web.Request) -> web.StreamResponse:
    ctx = ctx_of(request)
    job_id = int_param(request, "job_id")
    form = await request.post()
    note = str(form.get("note", ""))[:500]
    await _review_action(
        request, lambda: review.keep_as_evidence(ctx.queue, job_id, actor(request), note)
    )
    flash(request, "ok", f"Job {job_id} kept as evidence (never posted).")
    raise redirect("/review")


async def review_dismiss(request: web.Request) -> web.StreamResponse:
    ctx = ctx_of(request)
    job_id = int_param(request, "job_id")
    await _review_action(request, lambda: review.dismiss_failed(ctx.queue, job_id, actor(request)))
    flash(request, "ok", f"Failed job {job_id} dismissed.")
    raise redirect("/review?tab=failed")


async def review_retry(request: web.Request) -> web.StreamResponse:
    ctx = ctx_of(request)
    job_id = int_param(request, "job_id")
    ok = await ctx.queue.retry(job_id)
    if not ok:
        raise _refusal(request, 409, f"job {job_id} is not failed or cancelled")
    await audit(request, "review.retry", f"job:{job_id}")
    flash(request, "ok", f"Job {job_id} queued again.")
    raise redirect("/review?tab=failed")


async def review_ban(request: web.Request) -> web.StreamResponse:
    ctx = ctx_of(request)
    job_id = int_param(request, "job_id")
    job = await ctx.queue.get(job_id)
    if job is None:
        raise web.HTTPNotFound(text=f"no job {job_id}")
    form = await request.post()
    note = str(form.get("note", "")).strip()[:500] or f"from review of job {job_id}"
    try:
        acct = normalize_acct(job.requester)
    except ValueError:
        raise _refusal(request, 400, f"{job.requester!r} is not an account") from None
    await allowlist_for(request).ban(acct, note)
    flash(request, "ok", f"{acct} banned.")
    raise redirect("/review")


# ------------------------------------------------------------------------ allow-list


ALLOWLIST_PAGE = 50  # Fediseer entries a page (offset paging: the list is sorted by domain)


async def allowlist_page(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    q = request.query.get("q", "")[:255]
    which = request.query.get("list", "")
    offset = opt_int(request.query.get("offset")) or 0
    limit = ALLOWLIST_PAGE
    mode = ctx.config.policy.mode
    own = ctx.config.own_domains  # a computed property: once a request, not once a row
    page = await ctx.db.run(queries.allowlist_page, q, which, offset, limit, mode, own)
    rows = []
    for e in page.entries:  # plain strings: the template only prints them
        o = page.override_by.get(e.domain)
        v = decide_domain(e.domain, mode, own, o.action if o else None, e.action)
        decision = f"{'allowed' if v.allowed else 'denied'} ({v.source})"
        if o is not None:
            decision += f" — manual {o.action}"
        rows.append((e.domain, e.action, decision, e.explain(), fmt_time(e.since)))
    return render(
        request,
        "allowlist.html",
        mode=mode,
        overrides=page.overrides,
        rows=rows,
        total=page.total,
        offset=offset,
        limit=limit,
        q=q,
        which=which,
        override_by=page.override_by,
        verdicts=page.verdicts,
        runs=page.runs,
        fediseer=ctx.config.fediseer,
    )


async def allowlist_override(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    action = str(form.get("action", ""))
    note = str(form.get("note", "")).strip()[:500]
    try:
        domain = normalize_domain(str(form.get("domain", "")))
        if action not in ("allow", "deny"):
            raise ValueError("choose allow or deny")
    except ValueError as exc:
        flash(request, "error", str(exc))
        raise redirect("/allowlist") from None
    outcome = await allowlist_for(request).set_override(domain, action, note)
    flash(request, "ok", f"{domain}: manual {action} {outcome}.")
    raise redirect("/allowlist")


async def allowlist_unset(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    try:
        domain = normalize_domain(str(form.get("domain", "")))
    except ValueError as exc:
        flash(request, "error", str(exc))
        raise redirect("/allowlist") from None
    removed = await allowlist_for(request).unset(domain)
    flash(request, "ok", f"{domain}: override removed." if removed else f"{domain}: none.")
    raise redirect("/allowlist")


async def _sync(request: web.Request, *, dry_run: bool, force: bool) -> Any:
    from fedibot.moderation.fediseer_apply import sync_fediseer

    ctx = ctx_of(request)
    return await sync_fediseer(
        ctx.db,
        ctx.config.fediseer,
        dry_run=dry_run,
        force=force,
        client=ctx.fediseer_client,
        actor=actor(request),
        clock=ctx.clock,
    )


async def sync_preview(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    if not ctx.config.fediseer.trusted:
        flash(request, "error", "fediseer.trusted is empty in the config: nothing to sync from.")
        raise redirect("/allowlist")
    outcome = await _sync(request, dry_run=True, force=False)
    await audit(
        request, "console.fediseer_dry_run", "", run_id=outcome.run_id, status=outcome.status
    )
    return render(request, "sync.html", outcome=outcome, applied=False)


async def sync_apply(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    if not ctx.config.fediseer.trusted:
        flash(request, "error", "fediseer.trusted is empty in the config: nothing to sync from.")
        raise redirect("/allowlist")
    form = await request.post()
    force = form.get("force") == "1"
    outcome = await _sync(request, dry_run=False, force=force)
    await audit(
        request,
        "console.fediseer_sync",
        "",
        run_id=outcome.run_id,
        status=outcome.status,
        forced=force,
    )
    return render(request, "sync.html", outcome=outcome, applied=True)


# ------------------------------------------------------------------------ users


async def users_page(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    bans = await ctx.db.run(queries.bans)
    opted = await ctx.db.run(queries.opted_out)
    acct_raw = request.query.get("acct", "").strip()
    quota = None
    acct = ""
    error = ""
    if acct_raw:
        try:
            acct = normalize_acct(acct_raw)
        except ValueError as exc:
            error = str(exc)
        else:
            from fedibot.moderation.policy import quota_lines

            domain = acct.rsplit("@", 1)[1]
            quota = await ctx.db.run(quota_lines, ctx.config.quotas, acct, domain, ctx.clock(), 1)
    exempt = {a.strip().lstrip("@").lower() for a in ctx.config.quotas.exempt}
    return render(
        request,
        "users.html",
        bans=bans,
        opted=opted,
        acct=acct or acct_raw,
        quota=quota,
        exempt=acct in exempt,
        error=error,
    )


async def users_ban(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    try:
        acct = normalize_acct(str(form.get("acct", "")))
    except ValueError as exc:
        flash(request, "error", str(exc))
        raise redirect("/users") from None
    note = str(form.get("note", "")).strip()[:500]
    new = await allowlist_for(request).ban(acct, note)
    flash(request, "ok", f"{acct} banned." if new else f"{acct}: already banned (note updated).")
    raise redirect("/users")


async def users_unban(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    try:
        acct = normalize_acct(str(form.get("acct", "")))
    except ValueError as exc:
        flash(request, "error", str(exc))
        raise redirect("/users") from None
    gone = await allowlist_for(request).unban(acct)
    flash(request, "ok", f"{acct} unbanned." if gone else f"{acct} was not banned.")
    raise redirect("/users")


# ------------------------------------------------------------------------ audit


async def audit_page(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    q = request.query
    since = None
    since_raw = q.get("since", "").strip()
    error = ""
    if since_raw:
        from fedibot.cli.common import parse_since

        try:
            since = parse_since(since_raw, ctx.clock())
        except ValueError as exc:
            error = str(exc)
    f = queries.AuditFilter(
        actor=q.get("actor", "")[:128],
        action=q.get("action", "")[:64],
        target=q.get("target", "")[:320],
        since=since,
        before=opt_int(q.get("before")),
    )
    rows, next_before = await ctx.db.run(queries.audit_page, f, 100)
    args = f.query_args(before=next_before) if next_before else None
    if args is not None and since_raw:
        args["since"] = since_raw
    return render(
        request, "audit.html", rows=rows, f=f, since=since_raw, next_args=args, error=error
    )


# ------------------------------------------------------------------------ the app


def build_app(ctx: ConsoleContext) -> web.Application:
    app = web.Application(
        middlewares=[security_headers, require_session], client_max_size=64 * 1024
    )
    app[CTX] = ctx
    app[STATE] = ConsoleState(ctx)
    r = app.router
    r.add_get("/login", login_page, name="login")
    r.add_post("/login", login_submit)
    r.add_post("/logout", logout, name="logout")
    r.add_get("/", overview_page, name="overview")
    r.add_get("/gallery", gallery_page, name="gallery")
    r.add_get(f"/jobs/{{job_id:{MAX_ID}}}", job_page, name="job")
    r.add_post(f"/jobs/{{job_id:{MAX_ID}}}/open", open_dm, name="open_dm")
    r.add_get(f"/jobs/{{job_id:{MAX_ID}}}/images/{{index:{MAX_ID}}}", image_full, name="image")
    r.add_get(f"/jobs/{{job_id:{MAX_ID}}}/thumbs/{{index:{MAX_ID}}}", image_thumb, name="thumb")
    r.add_get("/review", review_page, name="review")
    for action, handler in (
        ("approve", review_approve),
        ("discard", review_discard),
        ("evidence", review_evidence),
        ("dismiss", review_dismiss),
        ("retry", review_retry),
        ("ban", review_ban),
    ):
        r.add_post(f"/review/{{job_id:{MAX_ID}}}/{action}", handler, name=f"review_{action}")
    r.add_get("/allowlist", allowlist_page, name="allowlist")
    r.add_post("/allowlist/override", allowlist_override)
    r.add_post("/allowlist/unset", allowlist_unset)
    r.add_post("/allowlist/sync", sync_preview)
    r.add_post("/allowlist/sync/apply", sync_apply)
    r.add_get("/users", users_page, name="users")
    r.add_post("/users/ban", users_ban)
    r.add_post("/users/unban", users_unban)
    r.add_get("/audit", audit_page, name="audit")
    r.add_static("/static/", HERE / "static", name="static", follow_symlinks=False)
    return app


__all__ = ["build_app"]
