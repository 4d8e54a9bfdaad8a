"""What `FakeMastodon` imitates for each Mastodon-API server: one `ServerFlavour` each.

Every field names the server source it was read from (repository path @ commit):

- Mastodon 4.x: the recorded cassettes in `shared/fixtures/mastodon` (Mastodon.py's test
  suite against a real Mastodon) — SSE and WebSocket streaming, `types[]`, 80 per page,
  per-account Idempotency-Key, `x-ratelimit-*` with an ISO reset, v1 + v2 instance.
- GoToSocial: superseriousbusiness/gotosocial @ 57cb4fe7482962aa8e5a05874a343474d5a453e7.
- Akkoma: BDX-town/Akkoma @ 071bb07a5a390785e669e1b5dfaca8b532c456e3 (Akkoma 3.16.0
  with upstream merged; the AkkomaGang repository itself is not mirrored here).
- Pleroma: external-mirrors/pleroma — `views/instance_view.ex` @ 0277b4e8 and
  `api_spec/operations/notification_operation.ex` @ 1c3e0930; streaming, pagination and
  idempotency are the code Akkoma forked from (same files as above).
"""

from __future__ import annotations

from dataclasses import dataclass

# ISO 639-1 (what Akkoma's priv/language-codes.json lists as alpha2; lib/pleroma/iso639.ex).
ISO_639_1 = frozenset(
    [
        "aa",
        "ab",
        "ae",
        "af",
        "ak",
        "am",
        "an",
        "ar",
        "as",
        "av",
        "ay",
        "az",
        "ba",
        "be",
        "bg",
        "bh",
        "bi",
        "bm",
        "bn",
        "bo",
        "br",
        "bs",
        "ca",
        "ce",
        "ch",
        "co",
        "cr",
        "cs",
        "cu",
        "cv",
        "cy",
        "da",
        "de",
        "dv",
        "dz",
        "ee",
        "el",
        "en",
        "eo",
        "es",
        "et",
        "eu",
        "fa",
        "ff",
        "fi",
        "fj",
        "fo",
        "fr",
        "fy",
        "ga",
        "gd",
        "gl",
        "gn",
        "gu",
        "gv",
        "ha",
        "he",
        "hi",
        "ho",
        "hr",
        "ht",
        "hu",
        "hy",
        "hz",
        "ia",
        "id",
        "ie",
        "ig",
        "ii",
        "ik",
        "io",
        "is",
        "it",
        "iu",
        "ja",
        "jv",
        "ka",
        "kg",
        "ki",
        "kj",
        "kk",
        "kl",
        "km",
        "kn",
        "ko",
        "kr",
        "ks",
        "ku",
        "kv",
        "kw",
        "ky",
        "la",
        "lb",
        "lg",
        "li",
        "ln",
        "lo",
        "lt",
        "lu",
        "lv",
        "mg",
        "mh",
        "mi",
        "mk",
        "ml",
        "mn",
        "mr",
        "ms",
        "mt",
        "my",
        "na",
        "nb",
        "nd",
        "ne",
        "ng",
        "nl",
        "nn",
        "no",
        "nr",
        "nv",
        "ny",
        "oc",
        "oj",
        "om",
        "or",
        "os",
        "pa",
        "pi",
        "pl",
        "ps",
        "pt",
        "qu",
        "rm",
        "rn",
        "ro",
        "ru",
        "rw",
        "sa",
        "sc",
        "sd",
        "se",
        "sg",
        "si",
        "sk",
        "sl",
        "sm",
        "sn",
        "so",
        "sq",
        "sr",
        "ss",
        "st",
        "su",
        "sv",
        "sw",
        "ta",
        "te",
        "tg",
        "th",
        "ti",
        "tk",
        "tl",
        "tn",
        "to",
        "tr",
        "ts",
        "tt",
        "tw",
        "ty",
        "ug",
        "uk",
        "ur",
        "uz",
        "ve",
        "vi",
        "vo",
        "wa",
        "wo",
        "xh",
        "yi",
        "yo",
        "za",
        "zh",
        "zu",
    ]
)


@dataclass(frozen=True)
class ServerFlavour:
    name: str
    # The instance endpoint's `version` string.
    version: str
    # Streaming: SSE at /api/v1/streaming/user and/or WebSocket at /api/v1/streaming.
    sse: bool
    websocket: bool
    # Where the WebSocket handshake may carry the token: "query", "protocol", "header".
    ws_token_places: tuple[str, ...]
    # Notifications: the type filter the server reads ("types[]", "include_types[]"),
    # whether unknown parameters are a 400 (Akkoma/Pleroma strict CastAndValidate), and the
    # largest page.
    notification_type_params: tuple[str, ...]
    max_notifications_page: int
    strict_params: bool = False
    # Idempotency-Key: "account" (Mastodon: per account, success only), "global" (Akkoma:
    # every answer, errors too, cached under the key alone for 6 h), None (ignored).
    idempotency: str | None = "account"
    # Rate limits: "mastodon" (x-ratelimit-* with an ISO reset, µs), "gotosocial" (ISO reset
    # with ms, 429 body "rate limit reached"), None (no headers; 429 "Throttled").
    ratelimit_headers: str | None = "mastodon"
    # Instance: /api/v2/instance served? v1 shape "mastodon" (configuration block) or
    # "pleroma" (max_toot_chars, upload_limit, description_limit at the top).
    instance_v2: bool = True
    instance_v1_shape: str = "mastodon"
    supported_mime_types: tuple[str, ...] | None = None  # None: the recorded list
    # Languages: "any" (stored as given) or "alpha2" (ISO 639-1 only, else 422).
    languages: str = "any"
    # A reply the requester's interaction policy excludes is a 403 (GoToSocial).
    reply_policy_403: bool = False
    visibilities: tuple[str, ...] = ("public", "unlisted", "private", "direct")


MASTODON = ServerFlavour(
    name="mastodon",
    version="4.3.0",
    sse=True,
    websocket=True,
    ws_token_places=("query", "protocol", "header"),
    notification_type_params=("types[]",),
    max_notifications_page=80,
)

GOTOSOCIAL = ServerFlavour(
    name="gotosocial",
    # cmd/gotosocial/main.go version(): "<Version> git-<short commit>"
    version="0.20.0 git-57cb4fe",
    # internal/api/client/streaming/streaming.go: one route, BasePath "/v1/streaming",
    # upgraded by gorilla/websocket; no SSE route anywhere in internal/api/client.
    sse=False,
    websocket=True,
    # internal/api/client/streaming/stream.go: cmp.Or(query access_token,
    # Sec-Websocket-Protocol header), else apiutil.TokenAuth (the Authorization header).
    ws_token_places=("query", "protocol", "header"),
    # internal/api/client/notifications/notificationsget.go: types[] / exclude_types[];
    # paging.ParseIDPage(c, 1, 80, 20): a larger limit is clamped to 80 (paging/parse.go).
    notification_type_params=("types[]",),
    max_notifications_page=80,
    # grep Idempotency in internal/: only a CORS allow-list entry (middleware/cors.go).
    idempotency=None,
    # internal/middleware/ratelimit.go: X-RateLimit-Limit/-Remaining/-Reset with
    # util.FormatISO8601 ("2006-01-02T15:04:05.000Z"); 429 body apiutil.ErrorRateLimited.
    ratelimit_headers="gotosocial",
    # internal/validate/formvalidation.go Language: any BCP-47 tag golang.org/x/text parses.
    languages="any",
    # internal/processing/status/create.go: policyResult.Forbidden() →
    # NewErrorForbidden("you do not have permission to reply to this status").
    reply_policy_403=True,
)

AKKOMA = ServerFlavour(
    name="akkoma",
    # lib/pleroma/web/mastodon_api/views/instance_view.ex: "#{@mastodon_api_level}
    # (compatible; #{named_version})", @mastodon_api_level "2.7.2"; mix.exs 3.16.0.
    version="2.7.2 (compatible; Akkoma 3.16.0)",
    # config/config.exs: cowboy dispatch {"/api/v1/streaming", WebsocketHandler}, all else
    # Phoenix, whose router.ex has no streaming route (so /api/v1/streaming/user is 404).
    sse=False,
    websocket=True,
    # lib/pleroma/web/mastodon_api/websocket_handler.ex authenticate_request/2:
    # access_token query parameter or sec-websocket-protocol, nothing else; 401 otherwise.
    ws_token_places=("query", "protocol"),
    # lib/pleroma/web/api_spec/operations/notification_operation.ex: include_types,
    # exclude_types, no types; lib/pleroma/pagination.ex @max_limit 40.
    notification_type_params=("include_types[]",),
    max_notifications_page=40,
    # lib/pleroma/web/api_spec/cast_and_validate.ex: strict mode answers unexpected fields
    # with 400 (render_error.ex); the default drops them. The fake runs strict.
    strict_params=True,
    # lib/pleroma/web/plugs/idempotency_plug.ex: Cachex :idempotency_cache keyed by the
    # header alone, stores {request_id, content_type, status, body} of any answer;
    # lib/pleroma/application.ex idempotency_expiration 6 h.
    idempotency="global",
    # lib/pleroma/web/plugs/rate_limiter.ex: render_error(:too_many_requests, "Throttled"),
    # no rate-limit headers.
    ratelimit_headers=None,
    # lib/pleroma/web/router.ex: scope "/api/v2" has search, media, suggestions only.
    instance_v2=False,
    instance_v1_shape="pleroma",
    # lib/pleroma/web/common_api/activity_draft.ex language/1: ISO639.valid_alpha2? or
    # "Invalid language" (status_controller.ex create: 422 {"error": message}).
    languages="alpha2",
    # lib/pleroma/web/api_spec/schemas/visibility_scope.ex
    visibilities=("public", "unlisted", "local", "private", "direct", "list"),
)

PLEROMA = ServerFlavour(
    name="pleroma",
    version="2.7.2 (compatible; Pleroma 2.9.1)",
    sse=False,
    websocket=True,
    ws_token_places=("query", "protocol"),
    # notification_operation.ex @1c3e0930: types and include_types ("Deprecated").
    notification_type_params=("types[]", "include_types[]"),
    max_notifications_page=40,
    idempotency="global",
    ratelimit_headers=None,
    # instance_view.ex @0277b4e8: render("show2.json") exists; v1 has both the
    # configuration block and the top-level extras.
    instance_v2=True,
    instance_v1_shape="pleroma",
    # instance_view.ex configuration/0: supported_mime_types: ["application/octet-stream"]
    supported_mime_types=("application/octet-stream",),
    # lib/pleroma/ecto_type/activity_pub/object_validators/language_code.ex
    # good_locale_code?: ^[a-zA-Z0-9-]+$; activity_draft.ex falls back to detection for
    # anything else: never a 422 (read in Pleroma 2.6+ sources found by search).
    languages="any",
    visibilities=("public", "unlisted", "local", "private", "direct", "list"),
)

FLAVOURS = {f.name: f for f in (MASTODON, GOTOSOCIAL, AKKOMA, PLEROMA)}
