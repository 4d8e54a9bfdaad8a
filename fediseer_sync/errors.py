"""What the Fediseer client raises. None of these may ever be read as "the list is empty"."""

from __future__ import annotations


class FediseerError(Exception):
    """Base class; `code` is a stable machine-readable reason."""

    code = "fediseer_error"


class FediseerUnavailable(FediseerError):
    """Could not get an answer: network failure, timeout, 5xx, garbage, after bounded retries."""

    code = "fediseer_unavailable"


class FediseerBadResponse(FediseerUnavailable):
    """The server answered 200 with something that is not the expected JSON."""

    code = "fediseer_bad_response"


class FediseerRateLimited(FediseerUnavailable):
    """Still 429 after waiting out `Retry-After` a bounded number of times."""

    code = "fediseer_rate_limited"

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class FediseerRefused(FediseerError):
    """A 4xx answer (other than 429) with Fediseer's `{"message"}`: retrying will not help."""

    code = "fediseer_refused"

    def __init__(self, status: int, message: str, path: str = "") -> None:
        self.status = status
        self.message = message
        self.path = path
        where = f" for {path}" if path else ""
        super().__init__(f"Fediseer answered {status}{where}: {message}")


class FediseerBadRequest(FediseerRefused):
    """400, e.g. min_endorsements larger than the number of reference domains."""

    code = "fediseer_bad_request"


class FediseerAuthError(FediseerRefused):
    """401: the API key is wrong."""

    code = "fediseer_auth_failed"


class FediseerForbidden(FediseerRefused):
    """403: the list is hidden from us (private or endorsed-only visibility)."""

    code = "fediseer_forbidden"


class FediseerNotFound(FediseerRefused):
    """404: the domain is not registered on Fediseer."""

    code = "fediseer_not_found"


_BY_STATUS: dict[int, type[FediseerRefused]] = {
    400: FediseerBadRequest,
    401: FediseerAuthError,
    403: FediseerForbidden,
    404: FediseerNotFound,
}


def refused(status: int, message: str, path: str = "") -> FediseerRefused:
    """The FediseerRefused subclass for this status."""
    return _BY_STATUS.get(status, FediseerRefused)(status, message, path)
