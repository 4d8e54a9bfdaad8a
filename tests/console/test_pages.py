"""Every console page and action against a real SQLite file."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from PIL import Image
from sqlalchemy import insert, select

from fedibot.moderation.allowlist import audit_t, bans_t, fediseer_t, overrides_t
from fedibot.queue.jobs import images as images_t
from fedibot.queue.jobs import jobs, workers
from fedibot.queue.review import DISCARD_REASONS
from tests.console.conftest import NOW


async def job_row(c: Any, job_id: int) -> Any:
    return await c.ctx.db.run(
        lambda conn: conn.execute(select(jobs).where(jobs.c.id == job_id)).one()
    )


async def audit_rows(c: Any, action: str | None = None) -> list[Any]:
    rows = await c.ctx.db.run(
        lambda conn: list(conn.execute(select(audit_t).order_by(audit_t.c.id)).all())
    )
    return [r for r in rows if action is None or r.action == action]


# -- overview ---------------------------------------------------------------------------------


async def test_overview_counts_charts_held_sync_and_workers(signed_in) -> None:
    c = signed_in
    for i in range(3):
        await c.seed.job(state="done", created_at=NOW - 600 - 10 * i, finished_at=NOW - 500)
    await c.seed.job(state="queued")
    held = await c.seed.job(state="withheld", flagged=True, requester="held@remote.example")
    lease = await c.seed.job(state="generating")

    def lease_it(conn: Any) -> None:
        conn.execute(
            jobs.update()
            .where(jobs.c.id == lease)
            .values(lease_owner="worker-gpu1-42", lease_expires_at=NOW + 200)
        )

    await c.ctx.db.run(lease_it)
    for worker_id, kind, host, seen in (
        ("local-gpu1-42", "local", "gpu1", NOW - 30),  # idle now, seen half a minute ago
        ("horde-bot-7", "horde", "bot", NOW - 3 * 86400),  # days ago: not listed
    ):
        await c.ctx.db.run(
            lambda conn, w=worker_id, k=kind, h=host, t=seen: conn.execute(
                workers.insert().values(id=w, kind=k, host=h, started_at=t, last_seen_at=t)
            )
        )
    page = await c.client.get("/")
    text = await page.text()
    assert page.status == 200
    assert text.count("<svg") == 2
    assert "Images per hour (last 24 h) — 3 in all" in text
    assert "p50 1.8 min" in text and "p95 2.0 min" in text
    assert f'href="/jobs/{held}"' in text and "held@remote.example" in text
    assert "worker-gpu1-42" in text  # holds a lease
    assert "local-gpu1-42" in text and "30 s ago" in text  # seen, holds nothing now
    assert "horde-bot-7" not in text
    assert "Never synced." in text
    assert '<span class="n">1</span><span class="label">withheld</span>' in text


# -- gallery ----------------------------------------------------------------------------------


async def test_gallery_shows_results_and_filters(signed_in) -> None:
    c = signed_in
    a = await c.seed.job(prompt="a red fox", requester="ann@one.example")
    b = await c.seed.job(prompt="a blue whale", requester="ben@two.example", flagged=True)
    refused = await c.seed.job(state="rejected", images_n=0, error_code="prompt_blocked")
    text = await (await c.client.get("/gallery")).text()
    assert "a red fox" in text and "a blue whale" in text
    assert f"#{refused}" not in text  # no images: only with a state filter
    assert f"/jobs/{a}/thumbs/0" in text
    for query, shown, hidden in (
        ("requester=ann@one.example", "a red fox", "a blue whale"),
        ("instance=two.example", "a blue whale", "a red fox"),
        ("flagged=1", "a blue whale", "a red fox"),
        ("state=rejected", "prompt_blocked", "a red fox"),
        ("account=other", "No results match", "a red fox"),
    ):
        body = await (await c.client.get(f"/gallery?{query}")).text()
        assert shown in body and hidden not in body, query
    assert b


async def test_gallery_pages_with_older_link(make_config, signed_in) -> None:
    c = signed_in
    ids = [await c.seed.job(prompt=f"prompt number {i}") for i in range(50)]
    text = await (await c.client.get("/gallery")).text()
    assert "prompt number 49" in text and "prompt number 1<" not in text
    assert f"before={ids[2]}" in text  # 48 per page
    older = await (await c.client.get(f"/gallery?before={ids[2]}")).text()
    assert "prompt number 1<" in older and "prompt number 0<" in older
    assert "prompt number 5<" not in older


# -- one job, images --------------------------------------------------------------------------


async def test_job_page_shows_image_parameters_labels_and_history(signed_in) -> None:
    c = signed_in
    job_id = await c.seed.job(state="withheld", flagged=True, prompt="a castle")
    await c.post(f"/review/{job_id}/approve", {"decision": "sensitive"})
    text = await (await c.client.get(f"/jobs/{job_id}")).text()
    assert "a castle\nNegative prompt: blurry\nSteps: 2, Sampler: Euler" in text
    assert "FEMALE_BREAST_EXPOSED" in text and "0.91" in text
    assert "review.approve" in text and "console:alice" in text
    assert (await c.client.get("/jobs/999")).status == 404


async def test_full_image_is_the_stored_png_and_thumbnails_are_cached(signed_in) -> None:
    c = signed_in
    job_id = await c.seed.job()
    [row] = await c.ctx.queue.images(job_id)
    full = await c.client.get(f"/jobs/{job_id}/images/0")
    assert full.status == 200 and full.content_type == "image/png"
    assert await full.read() == Path(row.path).read_bytes()
    thumb = await c.client.get(f"/jobs/{job_id}/thumbs/0")
    assert thumb.status == 200 and thumb.content_type == "image/jpeg"
    data = await thumb.read()
    assert Image.open(io.BytesIO(data)).size == (64, 64)
    cached = Path(c.ctx.config.data_dir) / "console" / "thumbs" / f"{job_id}-0.jpg"
    assert cached.read_bytes() == data
    Path(row.path).unlink()  # made once: the cache answers without the original
    assert (await c.client.get(f"/jobs/{job_id}/thumbs/0")).status == 200
    assert (await c.client.get(f"/jobs/{job_id}/images/0")).status == 404
    assert (await c.client.get(f"/jobs/{job_id}/images/1")).status == 404


async def test_direct_messages_stay_hidden_until_opened_deliberately(signed_in) -> None:
    c = signed_in
    dm = await c.seed.job(prompt="my secret portrait", visibility="direct")
    gallery = await (await c.client.get("/gallery")).text()
    assert "my secret portrait" not in gallery and "Direct message — hidden" in gallery
    assert f"/jobs/{dm}/thumbs/0" not in gallery
    page = await (await c.client.get(f"/jobs/{dm}")).text()
    assert "my secret portrait" not in page and "Open this direct message" in page
    assert (await c.client.get(f"/jobs/{dm}/images/0")).status == 403
    assert (await c.client.get(f"/jobs/{dm}/thumbs/0")).status == 403
    assert await audit_rows(c, "console.open_dm") == []

    opened = await c.post(f"/jobs/{dm}/open", {"why": "reported by a moderator"})
    assert opened.status == 303 and opened.headers["Location"] == f"/jobs/{dm}"
    [row] = await audit_rows(c, "console.open_dm")
    assert (row.actor, row.target, row.detail) == (
        "console:alice",
        f"job:{dm}",
        {"why": "reported by a moderator"},
    )
    assert "my secret portrait" in await (await c.client.get(f"/jobs/{dm}")).text()
    assert (await c.client.get(f"/jobs/{dm}/images/0")).status == 200


# -- review -----------------------------------------------------------------------------------


async def test_review_lists_withheld_with_labels_and_actions(signed_in) -> None:
    c = signed_in
    held = await c.seed.job(state="withheld", flagged=True, prompt="held one")
    await c.seed.job(state="done", prompt="posted one")
    text = await (await c.client.get("/review")).text()
    assert "held one" in text and "posted one" not in text
    assert "FEMALE_BREAST_EXPOSED 0.91" in text
    for action in ("approve", "discard", "ban"):
        assert f'action="/review/{held}/{action}"' in text


async def test_approve_as_sensitive_or_blurred_moves_to_generated(signed_in) -> None:
    c = signed_in
    one = await c.seed.job(state="withheld", flagged=True)
    two = await c.seed.job(state="withheld", flagged=True)
    assert (await c.post(f"/review/{one}/approve", {"decision": "sensitive"})).status == 303
    assert (await c.post(f"/review/{two}/approve", {"decision": "blur"})).status == 303
    for job_id, decision in ((one, "sensitive"), (two, "blur")):
        row = await job_row(c, job_id)
        assert row.state == "generated"
        assert row.params["operator_decision"] == decision
        assert row.params["reviewed_by"] == "console:alice"
    rows = await audit_rows(c, "review.approve")
    assert [(r.target, r.detail["decision"], r.actor) for r in rows] == [
        (f"job:{one}", "sensitive", "console:alice"),
        (f"job:{two}", "blur", "console:alice"),
    ]
    again = await c.post(f"/review/{one}/approve", {"decision": "sensitive"})
    assert again.status == 409
    bad = await c.post(f"/review/{one}/approve", {"decision": "publish"})
    assert bad.status == 400


async def test_discard_tells_the_requester_a_reason_from_the_list(signed_in) -> None:
    c = signed_in
    job_id = await c.seed.job(state="withheld", flagged=True)
    [image] = await c.ctx.queue.images(job_id)
    assert (await c.post(f"/review/{job_id}/discard", {"reason": "made up"})).status == 400
    assert (await job_row(c, job_id)).state == "withheld"
    assert (await c.post(f"/review/{job_id}/discard", {"reason": "rules"})).status == 303
    row = await job_row(c, job_id)
    assert (row.state, row.reply_state, row.error_code) == (
        "rejected",
        "pending",
        "discarded_by_operator",
    )
    assert row.error_message == DISCARD_REASONS["rules"]
    assert await c.ctx.queue.images(job_id) == [] and not Path(image.path).exists()
    [entry] = await audit_rows(c, "review.discard")
    assert entry.detail["reason"] == "rules" and entry.actor == "console:alice"


async def test_minors_rule_can_only_be_discarded_or_kept_never_posted(signed_in) -> None:
    c = signed_in
    minor = await c.seed.job(
        state="withheld",
        flagged=True,
        error_code="minor_exposure",
        safety={"classifier": "nudenet", "labels": {"X": 0.9}, "flagged": True},
    )
    page = await (await c.client.get("/review")).text()
    assert "minors rule" in page
    assert f'action="/review/{minor}/approve"' not in page
    assert f'action="/review/{minor}/evidence"' in page
    for decision in ("sensitive", "blur"):
        refused = await c.post(f"/review/{minor}/approve", {"decision": decision})
        assert refused.status == 409
        assert "minors rule" in await refused.text()
    assert (await job_row(c, minor)).state == "withheld"
    assert await audit_rows(c, "review.approve") == []

    kept = await c.post(f"/review/{minor}/evidence", {"note": "for the report"})
    assert kept.status == 303
    row = await job_row(c, minor)
    assert row.state == "withheld" and row.params["evidence"]["by"] == "console:alice"
    assert f"#{minor}" not in await (await c.client.get("/review")).text()
    assert f"#{minor}" in await (await c.client.get("/review?tab=evidence")).text()
    assert (await c.post(f"/review/{minor}/approve", {"decision": "blur"})).status == 409


async def test_a_reason_code_on_an_image_counts_for_the_minors_rule(signed_in) -> None:
    c = signed_in
    job_id = await c.seed.job(
        state="withheld",
        flagged=True,
        safety={"classifier": "x", "labels": {}, "flagged": True, "reason": "minor_suggestive"},
    )
    assert (await c.post(f"/review/{job_id}/approve", {"decision": "blur"})).status == 409


async def test_ban_from_review_uses_the_ban_path(signed_in) -> None:
    c = signed_in
    job_id = await c.seed.job(state="withheld", flagged=True, requester="Troll@Bad.Example")
    assert (await c.post(f"/review/{job_id}/ban", {"note": "again"})).status == 303
    bans = await c.ctx.db.run(lambda conn: conn.execute(select(bans_t)).all())
    assert [(b.acct, b.note) for b in bans] == [("troll@bad.example", "again")]
    [row] = await audit_rows(c, "users.ban")
    assert row.actor == "console:alice"


async def test_failed_jobs_can_be_retried_or_dismissed(signed_in) -> None:
    c = signed_in
    one = await c.seed.job(state="failed", images_n=0, error_code="generation_failed")
    two = await c.seed.job(state="failed", images_n=0, error_code="too_large")
    text = await (await c.client.get("/review?tab=failed")).text()
    assert "generation_failed" in text and "too_large" in text
    assert (await c.post(f"/review/{one}/retry")).status == 303
    assert (await job_row(c, one)).state == "queued"
    assert (await c.post(f"/review/{two}/dismiss")).status == 303
    assert f"#{two}" not in await (await c.client.get("/review?tab=failed")).text()
    actions = [r.action for r in await audit_rows(c) if r.action.startswith("review.")]
    assert actions == ["review.retry", "review.dismiss"]
    assert (await c.post(f"/review/{one}/retry")).status == 409


# -- allow-list -------------------------------------------------------------------------------


async def test_allowlist_shows_mode_overrides_and_provenance(signed_in) -> None:
    c = signed_in
    provenance = {
        "domain": "good.example",
        "allowed": True,
        "endorsed_by": {"alpha.example": ["well moderated"]},
        "censured_by": {},
        "hesitated_by": {},
        "guaranteed": True,
        "guarantor": "alpha.example",
        "decided_by": ["alpha.example"],
    }

    def fill(conn: Any) -> None:
        conn.execute(
            insert(fediseer_t),
            [
                {"domain": "good.example", "list": "allow", "provenance": provenance, "since": NOW},
                {"domain": "spam.example", "list": "deny", "provenance": {}, "since": NOW},
            ],
        )

    await c.ctx.db.run(fill)
    assert (
        await c.post("/allowlist/override", {"domain": "Spam.Example", "action": "allow"})
    ).status == 303
    text = await (await c.client.get("/allowlist")).text()
    assert "Mode: <strong>blocklist</strong>" in text
    assert (
        "allowed: endorsed by alpha.example (well moderated); guaranteed by alpha.example" in text
    )
    assert "manual allow" in text and "console:alice" in text
    filtered = await (await c.client.get("/allowlist?q=good")).text()
    assert "good.example" in filtered and "<td>spam.example</td><td>deny" not in filtered

    assert (await c.post("/allowlist/unset", {"domain": "spam.example"})).status == 303
    overrides = await c.ctx.db.run(lambda conn: conn.execute(select(overrides_t)).all())
    assert overrides == []
    actions = [(r.action, r.actor) for r in await audit_rows(c) if r.action.startswith("allow")]
    assert actions == [("allowlist.allow", "console:alice"), ("allowlist.unset", "console:alice")]
    bad = await c.post("/allowlist/override", {"domain": "http://x/y", "action": "deny"})
    assert bad.status == 303  # back with the message
    assert "is not a bare domain" in await (await c.client.get("/allowlist")).text()


async def test_fediseer_sync_dry_run_first_then_apply(signed_in, make_config) -> None:
    from tests.fakes.fediseer_server import FakeFediseer
    from tests.policy.conftest import TRUSTED

    c = signed_in
    async with FakeFediseer(cache_ttl=0) as fake:
        c.ctx.config = make_config(
            sections={
                "fediseer": {
                    "enabled": True,
                    "base_url": fake.base_url,
                    "trusted": TRUSTED,
                    "client_agent": "fedibot:0.1.0:admin@bot.example",
                    "deny_censured_by": 2,
                    "max_retries": 0,
                    "timeout_seconds": 2,
                }
            }
        )
        preview = await c.post("/allowlist/sync")
        text = await preview.text()
        assert preview.status == 200 and "preview (dry run)" in text
        assert "+ allow: 3" in text and "beta.example" in text
        count = await c.ctx.db.run(lambda conn: conn.execute(select(fediseer_t.c.domain)).all())
        assert count == []
        applied = await c.post("/allowlist/sync/apply")
        assert "applied" in await applied.text()
        rows = await c.ctx.db.run(lambda conn: conn.execute(select(fediseer_t.c.domain)).all())
        assert len(rows) == 4
    actions = [r.action for r in await audit_rows(c)]
    assert "console.fediseer_dry_run" in actions and "console.fediseer_sync" in actions
    assert "fediseer.sync" in actions


# -- users and audit --------------------------------------------------------------------------


async def test_users_bans_quota_and_opt_outs(signed_in) -> None:
    c = signed_in
    await c.seed.job(requester="quiet@one.example", state="rejected", error_code="opted_out",
                     images_n=0)  # fmt: skip
    await c.seed.job(requester="busy@one.example", created_at=NOW - 60)
    assert (await c.post("/users/ban", {"acct": "@Spammer@Bad.Example", "note": "spam"})).status
    text = await (await c.client.get("/users")).text()
    assert "spammer@bad.example" in text and "spam" in text
    assert "quiet@one.example" in text
    quota = await (await c.client.get("/users?acct=busy@one.example")).text()
    assert "requests per hour" in quota and "<td>1</td>" in quota
    assert "is not an account" in await (await c.client.get("/users?acct=nope")).text()
    assert (await c.post("/users/unban", {"acct": "spammer@bad.example"})).status == 303
    bans = await c.ctx.db.run(lambda conn: conn.execute(select(bans_t)).all())
    assert bans == []


async def test_audit_log_filters(signed_in) -> None:
    c = signed_in
    await c.post("/users/ban", {"acct": "a@x.example"})
    await c.post("/allowlist/override", {"domain": "x.example", "action": "deny"})
    everything = await (await c.client.get("/audit")).text()
    assert "users.ban" in everything and "allowlist.deny" in everything
    assert "console.login" in everything
    only = await (await c.client.get("/audit?action=users.")).text()
    assert "users.ban" in only and "allowlist.deny" not in only
    by_target = await (await c.client.get("/audit?target=x.example")).text()
    assert "allowlist.deny" in by_target
    assert "No entries." in await (await c.client.get("/audit?actor=console:zed")).text()
    assert "use a duration" in await (await c.client.get("/audit?since=yesterday")).text()
    assert "users.ban" in await (await c.client.get("/audit?since=1h")).text()


async def test_static_files_are_served(console) -> None:
    css = await console.client.get("/static/console.css")
    assert css.status == 200 and "fedibot console" in await css.text()
    assert (await console.client.get("/static/console.js")).status == 200


async def test_images_kept_in_the_database_are_served_and_deleted_with_a_discard(
    signed_in,
) -> None:
    from fedibot.storage.images import DatabaseImageStore, db_location

    c = signed_in
    job_id = await c.seed.job(state="withheld", flagged=True)
    [row] = await c.ctx.queue.images(job_id)
    data = Path(row.path).read_bytes()
    Path(row.path).unlink()  # the image lives only in the database, as a worker stores it

    def move_into_store(conn) -> None:
        DatabaseImageStore().put(conn, job_id, 0, data)
        conn.execute(
            images_t.update().where(images_t.c.job_id == job_id).values(path=db_location(job_id, 0))
        )

    await c.ctx.db.run(move_into_store)
    full = await c.client.get(f"/jobs/{job_id}/images/0")
    assert full.status == 200 and await full.read() == data
    await c.post(f"/review/{job_id}/discard", {"reason": "rules"})
    stored = await c.ctx.db.run(lambda conn: DatabaseImageStore().get(conn, job_id, [0]))
    assert stored == {}


async def test_allowlist_pages_fediseer_entries_fifty_at_a_time(signed_in) -> None:
    c = signed_in

    def fill(conn: Any) -> None:
        conn.execute(
            insert(fediseer_t),
            [
                {
                    "domain": f"d{i:03d}.example",
                    "list": "deny" if i == 60 else "allow",
                    "provenance": {},
                    "since": NOW,
                }
                for i in range(120)
            ],
        )

    await c.ctx.db.run(fill)
    await c.post("/allowlist/override", {"domain": "d060.example", "action": "allow"})
    first = await (await c.client.get("/allowlist")).text()
    assert "Fediseer entries (120)" in first
    assert "<td>d000.example</td>" in first and "<td>d049.example</td>" in first
    assert "<td>d050.example</td>" not in first
    assert 'href="/allowlist?q=&amp;list=&amp;offset=50">Next' in first
    assert "Previous" not in first

    second = await (await c.client.get("/allowlist?offset=50")).text()
    assert "<td>d050.example</td>" in second and "<td>d099.example</td>" in second
    assert "<td>d049.example</td>" not in second and "<td>d100.example</td>" not in second
    # the row with an override: decided by it, computed for the rows shown
    assert "<td>d060.example</td><td>deny</td><td>allowed (override) — manual allow" in second
    assert 'href="/allowlist?q=&amp;list=&amp;offset=0">← Previous' in second
    assert 'offset=100">Next' in second

    last = await (await c.client.get("/allowlist?offset=100")).text()
    assert "<td>d119.example</td>" in last and "<td>d099.example</td>" not in last
    assert "Next" not in last and 'offset=50">← Previous' in last
    # paging keeps the filter
    filtered = await (await c.client.get("/allowlist?list=allow&offset=50")).text()
    assert "Fediseer entries (119)" in filtered
    assert 'href="/allowlist?q=&amp;list=allow&amp;offset=0">← Previous' in filtered
    # the overrides table: one decision each (from one query for all of them)
    assert "<td>d060.example</td><td>allow</td>\n      <td>allowed (override)</td>" in first


async def test_overview_24h_queries_read_the_covering_indexes_only(signed_in) -> None:
    """Migration 0007: the overview's two 24-hour queries never touch the jobs table."""

    def plans(conn: Any) -> list[str]:
        found = []
        for sql in (
            "SELECT state, count(*) FROM jobs WHERE finished_at IS NOT NULL"
            " AND finished_at > 1 GROUP BY state",
            "SELECT finished_at, created_at, n, kind FROM jobs WHERE finished_at IS NOT NULL"
            " AND finished_at > 1 AND state = 'done'",
        ):
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql).all()
            found.append(" ".join(str(r[-1]) for r in rows))
        return found

    counts, charts = await signed_in.ctx.db.run(plans)
    assert "COVERING INDEX ix_console_finished_state" in counts
    assert "COVERING INDEX ix_console_done_charts" in charts
