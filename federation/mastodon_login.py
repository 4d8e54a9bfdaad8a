"""Getting a token for a bot account: app registration and the OAuth out-of-band flow.

Thin, blocking wrappers over Mastodon.py for the `fedibot login mastodon URL` command:

    client_id, client_secret = register_app(url)
    print(auth_url(url, client_id, client_secret))   # the operator opens it, copies the code
    token = exchange_code(url, client_id, client_secret, code)
    acct = verify_token(url, token)                  # also the check for a pasted token
"""

from __future__ import annotations

from collections.abc import Sequence

from mastodon import Mastodon
from mastodon.errors import MastodonError, MastodonNetworkError, MastodonUnauthorizedError

from federation.errors import AuthError, PermanentError, TransientError
from federation.mastodon_convert import domain_of, full_acct

OOB_REDIRECT = "urn:ietf:wg:oauth:2.0:oob"
# What the bot does: read notifications/statuses/its account, write statuses, media, profile
# (bot flag) and the notification policy. The top-level scopes work on every implementation.
DEFAULT_SCOPES: tuple[str, ...] = ("read", "write")
DEFAULT_APP_NAME = "fedibot"
_TIMEOUT = 30.0


def _client(
    base_url: str,
    *,
    client_id: str | None = None,
    client_secret: str | None = None,
    token: str | None = None,
    timeout: float = _TIMEOUT,
) -> Mastodon:
    return Mastodon(
        client_id=client_id,
        client_secret=client_secret,
        access_token=token,
        api_base_url=base_url,
        request_timeout=timeout,
        ratelimit_method="throw",
        version_check_mode="none",
        user_agent=DEFAULT_APP_NAME,
    )


def _fail(action: str, base_url: str, exc: MastodonError) -> Exception:
    if isinstance(exc, MastodonNetworkError):
        return TransientError(f"{action}: cannot reach {base_url}: {exc}")
    code = exc.args[1] if len(exc.args) > 1 else None
    if isinstance(exc, MastodonUnauthorizedError) or code in (401, 403):
        return AuthError(f"{action}: {base_url} refused the credentials")
    return PermanentError(f"{action} at {base_url} failed: {exc}")


def register_app(
    base_url: str,
    app_name: str = DEFAULT_APP_NAME,
    scopes: Sequence[str] = DEFAULT_SCOPES,
    website: str | None = None,
    *,
    timeout: float = _TIMEOUT,
) -> tuple[str, str]:
    """Register the app on the instance; returns (client_id, client_secret)."""
    try:
        client_id, client_secret = Mastodon.create_app(
            app_name,
            scopes=list(scopes),
            redirect_uris=OOB_REDIRECT,
            website=website,
            api_base_url=base_url,
            request_timeout=timeout,
            user_agent=DEFAULT_APP_NAME,
        )
    except MastodonError as exc:
        raise _fail("registering the app", base_url, exc) from exc
    except (KeyError, TypeError) as exc:  # an error body instead of credentials
        raise PermanentError(f"{base_url} did not register the app") from exc
    return str(client_id), str(client_secret)


def auth_url(
    base_url: str,
    client_id: str,
    client_secret: str,
    scopes: Sequence[str] = DEFAULT_SCOPES,
    *,
    allow_http: bool = False,
    timeout: float = _TIMEOUT,
) -> str:
    """The page where the bot's owner authorises the app and gets an out-of-band code."""
    api = _client(base_url, client_id=client_id, client_secret=client_secret, timeout=timeout)
    try:
        return str(
            api.auth_request_url(
                redirect_uris=OOB_REDIRECT,
                scopes=list(scopes),
                force_login=True,
                allow_http=allow_http,
            )
        )
    except MastodonError as exc:
        raise _fail("building the authorisation URL", base_url, exc) from exc


def exchange_code(
    base_url: str,
    client_id: str,
    client_secret: str,
    code: str,
    scopes: Sequence[str] = DEFAULT_SCOPES,
    *,
    allow_http: bool = False,
    timeout: float = _TIMEOUT,
) -> str:
    """Trade the out-of-band code for an access token."""
    api = _client(base_url, client_id=client_id, client_secret=client_secret, timeout=timeout)
    try:
        return str(
            api.log_in(
                code=code.strip(),
                redirect_uri=OOB_REDIRECT,
                scopes=list(scopes),
                allow_http=allow_http,
            )
        )
    except ValueError as exc:  # MastodonIllegalArgumentError: a wrong or used code
        raise AuthError(f"{base_url} did not accept the code") from exc
    except MastodonError as exc:
        raise _fail("exchanging the code", base_url, exc) from exc


def verify_token(base_url: str, token: str, *, timeout: float = _TIMEOUT) -> str:
    """The account a token belongs to, as `user@domain`; AuthError when it does not work."""
    api = _client(base_url, token=token, timeout=timeout)
    try:
        me = api.account_verify_credentials()
    except MastodonError as exc:
        raise _fail("verifying the token", base_url, exc) from exc
    try:
        instance = api.instance_v2()
        domain = str(instance.get("domain") or "") or None
    except MastodonError:
        domain = None
    return full_acct(str(me["acct"]), domain or domain_of(base_url) or "localhost")
