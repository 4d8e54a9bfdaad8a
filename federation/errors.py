"""Errors an adapter raises; the application decides retries from the class alone."""

from __future__ import annotations


class AdapterError(Exception):
    """Base class. `code` is a stable machine-readable reason."""

    code = "adapter_error"
    http_status: int | None = None  # the server's HTTP status, where there was one
    # The server answered a create request (a post, comment or message) with this refusal:
    # nothing was posted by it. The post-once path then forgets the request token.
    create_refused: bool = False


class TransientError(AdapterError):
    """Try again later: network failure, 5xx, 429. `retry_after` is seconds if the server said."""

    code = "remote_unavailable"

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(AdapterError):
    """The server refused for good (4xx other than 429): retrying will not help."""

    code = "remote_refused"


class AuthError(PermanentError):
    """The credentials are wrong or revoked: an operator must act."""

    code = "auth_failed"


class ReplyForbidden(PermanentError):
    """The server does not let the bot reply to this post (e.g. a GoToSocial interaction
    policy): nobody is told publicly, the job ends with this reason."""

    code = "reply_forbidden"


class RemoteGone(PermanentError):
    """The thing we answer (status, comment, message) was deleted or removed."""

    code = "request_deleted"


class OutcomeUnknown(TransientError):
    """A create request went out but its answer did not come back (a timeout, a dropped
    connection, a proxy's 502/504/520/524): the server may have carried it out. Retried like
    any `TransientError`, but within `retry_within` seconds when that is set: the post-once
    path keeps the attempt's request token, and the retry must repeat it while the server
    still remembers it."""

    retry_within: float | None = None


class DeliveryUnconfirmed(PermanentError):
    """An earlier attempt may have posted this, and the server offers no way to check (Lemmy
    1.0 keeps no list of messages sent to remote users, and its idempotency keys last two
    minutes). Not sent again: a duplicate private message is the worse harm. The job stays
    `failed` with this code until an operator sends it anyway (`fedibot queue retry`)."""

    code = "delivery_unconfirmed"
