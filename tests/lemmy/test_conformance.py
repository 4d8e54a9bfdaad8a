"""Every call the adapter makes, checked against Lemmy's published API for both versions.

The reference is the installed `lemmy-js-client` packages (see lemmy_reference.py): their
route tables (method + path) and type definitions (field names, required fields, enum
values). Three checks:

1. every `Call` the version mappings (`LemmyApi`, `LemmyApiV4`) can build;
2. every request the adapter really sends during a full session against the fake (start,
   polling, replies with images, private messages, look-ups, deletes, a re-login);
3. the fake itself: its routes exist in the reference and its answers have the reference's
   field names (unknown fields are errors; see PARTIAL for what may be left out).

Without the reference these tests FAIL with the install command (they never skip).
"""

from __future__ import annotations

import inspect
import logging
import re
from typing import Any, get_type_hints

import pytest

from federation.lemmy import LemmyAdapter
from federation.lemmy_api import Call, InboxItem, LemmyApi, api_for
from federation.types import MediaItem
from tests.fakes.lemmy_server import FakeLemmy, LoggedRequest
from tests.lemmy import lemmy_reference
from tests.lemmy.lemmy_reference import Reference, ReferenceMissing
from tests.lemmy.test_posting import reply_to

# Response types the fake fills only with what a client reads: missing *required* fields are
# tolerated there (unknown or misspelt fields are still errors everywhere).
PARTIAL = frozenset(
    {"LocalUser", "LocalUserView", "LocalSite", "Site", "SiteAggregates", "MyUserInfo"}
)

# Sample arguments for the Call-building methods of the version mappings. A new method with a
# parameter not listed here fails test 1 until a sample is added, so it cannot go unchecked.
SAMPLES: dict[str, Any] = {
    "username": "bot",
    "password": "secret",
    "content": "hello",
    "post_id": 3,
    "parent_id": 4,
    "comment_id": 5,
    "recipient_id": 6,
    "pm_id": 7,
    "person_id": 8,
    "item": None,  # see INBOX_ITEMS
}
INBOX_ITEMS = [
    InboxItem(kind=kind, read_type=read_type, inbox_id=9, creator={})
    for kind, read_type in [
        ("mention", "person_mention"),
        ("reply", "comment_reply"),
        ("private_message", "private_message"),
        ("mention", "notification"),
        ("skip", "notification"),
    ]
]


def reference(api_version: str) -> Reference:
    try:
        return lemmy_reference.load(api_version)
    except ReferenceMissing as exc:
        pytest.fail(str(exc), pytrace=False)


def reference_for(path: str, api_version: str) -> Reference:
    """The reference a path belongs to: version detection asks a 1.0 server `/api/v3/site`
    (1.0 still serves `/api/v3`, lemmy `crates/api/routes_v3`)."""
    if path.startswith("/api/v3/") or path.startswith("/pictrs/"):
        return reference("v3")
    if path.startswith("/api/v4/"):
        return reference("v4")
    return reference(api_version)


def check_call(
    ref: Reference, method: str, path: str, query: dict[str, str], body: Any
) -> list[str]:
    route = ref.route(method, path)
    if route is None:
        same_path = sorted({r.method for r in ref.routes if r.path == path})
        hint = f" (the reference has {same_path} there)" if same_path else ""
        return [f"{method} {path}: no such route in lemmy-js-client@{ref.package_version}{hint}"]
    problems = ref.check_query(route, query) if query or method == "GET" else []
    if method != "GET":
        problems += ref.check_body(route, body)
    return problems


def api_calls(api: LemmyApi) -> list[tuple[str, Call]]:
    """Every Call the mapping can build, with sample arguments (both parent cases)."""
    calls: list[tuple[str, Call]] = []
    for name, method in inspect.getmembers(api, inspect.ismethod):
        if name.startswith("_"):
            continue
        hints = get_type_hints(method)
        returned = str(hints.get("return"))
        if "Call" not in returned:
            continue
        params = [p for p in inspect.signature(method).parameters.values()]
        if any(p.name in ("call", "body") for p in params):
            continue  # transforms of another call (next_page): checked through the fake
        missing = [p.name for p in params if p.name not in SAMPLES]
        if missing:
            pytest.fail(f"LemmyApi.{name}: add a sample for {missing} to SAMPLES")
        variants = [{p.name: SAMPLES[p.name] for p in params}]
        optional_parent = [
            p for p in params if p.name == "parent_id" and "None" in str(p.annotation)
        ]
        if optional_parent:
            variants.append({**variants[0], "parent_id": None})
        if "item" in variants[0]:  # mark_read: one of each inbox kind
            variants = [{"item": item} for item in INBOX_ITEMS]
        for kwargs in variants:
            result = method(**kwargs)
            for call in result if isinstance(result, list) else [result]:
                if call is not None:
                    calls.append((name, call))
    return calls


@pytest.mark.parametrize("api_version", ["v3", "v4"])
def test_the_reference_packages_are_installed(api_version: str) -> None:
    ref = reference(api_version)
    alias, version = lemmy_reference.PACKAGES[api_version]
    assert ref.package_version == version, f"{alias}: expected {version}, found {ref}"
    assert ref.prefix == f"/api/{api_version}"
    assert len(ref.routes) > 50  # the whole table was read, not a fragment


@pytest.mark.parametrize("api_version", ["v3", "v4"])
def test_every_call_the_version_mapping_builds_matches_the_reference(api_version: str) -> None:
    ref = reference(api_version)
    api = api_for(api_version)
    calls = api_calls(api)
    assert len(calls) >= 12, calls  # the introspection found the mapping's methods
    problems = []
    for name, call in calls:
        problems += [
            f"{name}: {p}"
            for p in check_call(ref, call.method, call.path, call.params or {}, call.json)
        ]
    assert not problems, "\n".join(problems)


async def _full_session(fake: FakeLemmy, adapter: LemmyAdapter, sink: Any, images: Any) -> None:
    """Every adapter feature once: start, polls (all inbox kinds, a second page), replies
    with images, a private message, look-ups, existence checks, deletes, a re-login."""
    alice = fake.add_user("alice", domain="remote.example")
    carol = fake.add_user("carol")
    for index in range(52):  # more than one page
        fake.mention(alice, f"request {index}")
    fake.private_message(carol, "a dog")
    fake.mod_action(carol)
    fake.subscribed_post(carol)
    fake.mention_in_post(carol, "see my post")
    await adapter.start()
    await adapter.catch_up(sink)
    first = sink.mentions[0]
    pm_mention = next(m for m in sink.mentions if m.is_private_message)
    comment = await adapter.post(reply_to(first, "Here.", [MediaItem(images(1)[0], "a cat")]))
    fake.reply_to_bot(alice, int(comment.remote_id), "thanks")
    await adapter.catch_up(sink)
    sent_pm = await adapter.post(reply_to(pm_mention, "There.", [MediaItem(images(1)[0], "b")]))
    assert await adapter.find_existing_reply(reply_to(first, "Here.")) is not None
    assert await adapter.find_existing_reply(reply_to(pm_mention, "There.")) is not None
    assert await adapter.request_exists(first) and await adapter.request_exists(pm_mention)
    fake.expire_tokens()
    await adapter.delete(comment.remote_id)
    await adapter.delete(sent_pm.remote_id)


@pytest.mark.parametrize("api_version", ["v3", "v4"])
async def test_every_request_the_adapter_sends_matches_the_reference(
    api_version: str, fake: FakeLemmy, make_adapter, sink, images, caplog: pytest.LogCaptureFixture
) -> None:
    ref = reference(api_version)
    with caplog.at_level(logging.ERROR):
        await _full_session(fake, make_adapter(), sink, images)
    sent = [r for r in fake.requests]
    assert len(sent) > 20
    problems = []
    for r in sent:
        ref = reference_for(r.path, api_version)
        problems += check_call(ref, r.method, r.path, r.query, r.json)
        route = ref.route(r.method, r.path)
        if route is not None and route.multipart and r.multipart_fields != ("images[]",):
            problems.append(f"{r.method} {r.path}: form fields {r.multipart_fields}, not images[]")
    # Every kind of call was exercised (a session that skipped one would prove nothing).
    ref = reference(api_version)
    routes = [ref.route(r.method, r.path) for r in sent]
    used = {route.name for route in routes if route is not None}
    expected = {
        "v3": {"getSite", "login", "saveUserSettings", "getUnreadCount", "getPersonMentions",
               "getReplies", "getPrivateMessages", "markPersonMentionAsRead",
               "markCommentReplyAsRead", "markPrivateMessageAsRead", "uploadImage",
               "createComment", "getComment", "getComments", "createPrivateMessage",
               "deleteComment", "deletePrivateMessage"},
        "v4": {"getSite", "login", "getMyUser", "saveUserSettings", "listNotifications",
               "markNotificationAsRead", "uploadImage", "createComment", "getComment",
               "getComments", "createPrivateMessage", "deleteComment", "deletePrivateMessage"},
    }[api_version]  # fmt: skip
    assert expected <= used, f"not exercised: {sorted(expected - used)}"
    assert any("page_cursor" in r.query or r.query.get("page") == "2" for r in sent)
    assert not problems, "\n".join(dict.fromkeys(_squash(p) for p in problems))


@pytest.mark.parametrize("api_version", ["v3", "v4"])
async def test_the_fakes_routes_and_answers_match_the_reference(
    api_version: str, fake: FakeLemmy, make_adapter, sink, images, caplog: pytest.LogCaptureFixture
) -> None:
    ref = reference(api_version)
    with caplog.at_level(logging.ERROR):
        await _full_session(fake, make_adapter(), sink, images)
    problems = []
    runner = fake._runner
    assert runner is not None
    for resource in runner.app.router.resources():
        info = resource.get_info()
        path = info.get("path") or info.get("formatter") or ""
        if "{" in path:
            continue  # image downloads: plain files, not part of the client's table
        for route in resource:
            if route.method == "HEAD":
                continue
            if ref.route(route.method, path) is None and not (
                api_version == "v4" and path == "/api/v3/site"
            ):
                problems.append(f"the fake serves {route.method} {path}, which Lemmy has not")
    for r in fake.requests:
        problems += _check_answer(reference_for(r.path, api_version), r)
    assert not problems, "\n".join(dict.fromkeys(_squash(p) for p in problems))


def _squash(problem: str) -> str:
    """One line per kind of problem, not one per list element."""
    return re.sub(r"\[\d+\]", "[]", problem)


def _check_answer(ref: Reference, r: LoggedRequest) -> list[str]:
    route = ref.route(r.method, r.path)
    if route is None or r.response is None:
        return []
    where = f"{r.method} {r.path} → {r.status}"
    if r.status >= 400:
        body = r.response
        ok = isinstance(body, dict) and isinstance(body.get("error"), str)
        ok = ok and set(body) <= {"error", "message"}
        return [] if ok else [f"{where}: error body {body!r} is not {{error, message?}}"]
    if not route.response_type:
        return []
    found = ref.check_value(where, route.response_type, r.response, closed=True)
    return [p for p in found if not _partial_miss(p)]


def _partial_miss(problem: str) -> bool:
    return "required field" in problem and any(f" of {name} " in problem + " " for name in PARTIAL)


# --- the checker can fail: known-bad calls are caught ----------------------------------------


@pytest.mark.parametrize(
    ("api_version", "method", "path", "query", "body", "expected"),
    [
        ("v4", "GET", "/api/v4/comment/list", {"type_": "All", "sort": "New"}, None, "'All'"),
        ("v4", "POST", "/api/v4/comment", {}, {"comment_id": 1, "deleted": True}, "'comment_id'"),
        (
            "v4",
            "POST",
            "/api/v4/private_message/delete",
            {},
            {"private_message_id": 1, "deleted": True},
            "no such route",
        ),
        ("v4", "GET", "/api/v4/account/notification/count", {}, None, "no such route"),
        (
            "v4",
            "GET",
            "/api/v4/account/notification/list",
            {"type_": "PrivateMessage"},
            None,
            "PrivateMessage",
        ),
        (
            "v4",
            "POST",
            "/api/v4/account/notification/mark_as_read",
            {},
            {"notification_id": 1},
            "required field 'read'",
        ),
        ("v3", "GET", "/api/v3/comment/list", {"type_": "all"}, None, "'all'"),
        ("v3", "GET", "/api/v3/private_message/list", {"recipient_id": "3"}, None, "recipient_id"),
        ("v3", "POST", "/api/v3/comment", {}, {"content": "x", "post": 3}, "'post'"),
        ("v3", "GET", "/api/v3/user/mention", {"unread_only": "yes"}, None, "boolean"),
    ],
)
def test_the_checker_reports_drift(
    api_version: str, method: str, path: str, query: dict, body: Any, expected: str
) -> None:
    problems = check_call(reference(api_version), method, path, query, body)
    assert any(expected in p for p in problems), problems
