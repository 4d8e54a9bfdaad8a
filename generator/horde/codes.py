"""Our stable codes for what can happen on the Horde, and the table from Horde `rc` codes.

The Horde answers every error as `{"message": ..., "rc": "CodeName"}` with stable rc names
(README_return_codes.md in Haidra-Org/AI-Horde; the enum of RequestError.rc in the published
swagger.json). We map the rc, never the message. Each of our codes says whether running the job
locally instead makes sense (`local_ok`) and gives the sentence a requester may see.
"""

from __future__ import annotations

from dataclasses import dataclass

from generator.types import GenerationError

HORDE_CENSORED = "horde_censored"  # every image censored (nsfw)
HORDE_CENSORED_CSAM = "horde_censored_csam"  # a worker's CSAM filter fired
HORDE_PARTIAL_CENSORED = "horde_partially_censored"  # a notice, not an error: others posted
HORDE_FAULTED = "horde_faulted"
HORDE_NO_IMAGES = "horde_no_images"  # done, but no generations (worker faults)
HORDE_EXPIRED = "horde_expired"  # 404 RequestNotFound / RequestExpired / our timeout
HORDE_IMPOSSIBLE = "horde_impossible"  # is_possible=false: no worker serves it
HORDE_REJECTED = "horde_rejected"  # the Horde refused the prompt (CorruptPrompt)
HORDE_BAD_REQUEST = "horde_bad_request"  # sizes, steps, sampler … the Horde does not accept
HORDE_AUTH = "horde_auth"  # API key invalid / not allowed
HORDE_KUDOS = "horde_kudos"  # not enough kudos for this request
HORDE_BUSY = "horde_busy"  # 429/5xx/maintenance after our retries
HORDE_UNCONFIRMED = "horde_unconfirmed"  # crashed during submit too often
HORDE_BAD_IMAGE = "horde_bad_image"  # an image could not be downloaded or decoded
HORDE_NOT_ELIGIBLE = "horde_not_eligible"  # the request cannot be expressed for the Horde


@dataclass(frozen=True)
class CodeInfo:
    local_ok: bool  # may the job go back to the local queue (when the backend has one)
    reply: str  # what the requester may read


# With backend = "horde" only: codes worth another Horde attempt later (via the queue's retry).
TRANSIENT = frozenset(
    {HORDE_FAULTED, HORDE_NO_IMAGES, HORDE_EXPIRED, HORDE_BUSY, HORDE_UNCONFIRMED, HORDE_BAD_IMAGE}
)


CODES: dict[str, CodeInfo] = {
    HORDE_CENSORED: CodeInfo(
        False,
        "The AI Horde's safety filter blocked every image of this request, so nothing was "
        "posted. Try a different prompt.",
    ),
    HORDE_CENSORED_CSAM: CodeInfo(
        False, "The AI Horde refused to produce images for this request. Nothing was posted."
    ),
    HORDE_PARTIAL_CENSORED: CodeInfo(
        False, "Some images were blocked by the AI Horde's safety filter and are not posted."
    ),
    HORDE_FAULTED: CodeInfo(True, "The AI Horde could not finish this request."),
    HORDE_NO_IMAGES: CodeInfo(True, "The AI Horde's workers failed on this request."),
    HORDE_EXPIRED: CodeInfo(True, "The AI Horde did not finish this request in time."),
    HORDE_IMPOSSIBLE: CodeInfo(True, "No AI Horde worker serves this model right now."),
    HORDE_REJECTED: CodeInfo(False, "The AI Horde refused this prompt."),
    HORDE_BAD_REQUEST: CodeInfo(True, "The AI Horde cannot run these options."),
    HORDE_AUTH: CodeInfo(True, "The bot's AI Horde key was refused."),
    HORDE_KUDOS: CodeInfo(True, "The bot has not enough AI Horde kudos for this request."),
    HORDE_BUSY: CodeInfo(True, "The AI Horde is busy or in maintenance; try again later."),
    HORDE_UNCONFIRMED: CodeInfo(True, "Sending this request to the AI Horde kept failing."),
    HORDE_BAD_IMAGE: CodeInfo(True, "An image from the AI Horde could not be read."),
    HORDE_NOT_ELIGIBLE: CodeInfo(True, "These options cannot be run on the AI Horde."),
}

# Horde rc → our code. An rc not listed maps by HTTP status (see code_for_error).
RC_TABLE: dict[str, str] = {
    "CorruptPrompt": HORDE_REJECTED,
    "Profanity": HORDE_REJECTED,
    "MissingPrompt": HORDE_BAD_REQUEST,
    "InvalidSize": HORDE_BAD_REQUEST,
    "InvalidPromptSize": HORDE_BAD_REQUEST,
    "TooManySteps": HORDE_BAD_REQUEST,
    "UnsupportedSampler": HORDE_BAD_REQUEST,
    "UnsupportedModel": HORDE_BAD_REQUEST,
    "UnexpectedModelName": HORDE_BAD_REQUEST,
    "BadCFGDecimals": HORDE_BAD_REQUEST,
    "BadCFGNumber": HORDE_BAD_REQUEST,
    "BadRequest": HORDE_BAD_REQUEST,
    "BadClientAgent": HORDE_BAD_REQUEST,
    "SpecialModelNeedsSpecialUser": HORDE_BAD_REQUEST,
    "InvalidAPIKey": HORDE_AUTH,
    "WrongCredentials": HORDE_AUTH,
    "AnonForbidden": HORDE_AUTH,
    "NotTrusted": HORDE_AUTH,
    "RequiresTrust": HORDE_AUTH,
    "Forbidden": HORDE_AUTH,
    "SourceAccountFlagged": HORDE_AUTH,
    "KudosUpfront": HORDE_KUDOS,
    "SharedKeyInsufficientKudos": HORDE_KUDOS,
    "SharedKeyExpired": HORDE_AUTH,
    "SharedKeyEmpty": HORDE_AUTH,
    "TooManyPrompts": HORDE_BUSY,
    "MaintenanceMode": HORDE_BUSY,
    "TimeoutIP": HORDE_BUSY,
    "UnsafeIP": HORDE_AUTH,
    "TooManyNewIPs": HORDE_BUSY,
    "NoValidWorkers": HORDE_IMPOSSIBLE,
    "RequestNotFound": HORDE_EXPIRED,
    "RequestExpired": HORDE_EXPIRED,
    "InvalidJobID": HORDE_EXPIRED,
}

# rc codes after which we stop submitting for a while (the Horde put our IP in timeout).
PAUSE_RCS = frozenset({"CorruptPrompt", "TimeoutIP", "TooManyNewIPs", "UnsafeIP"})


def code_for_error(rc: str, http_status: int) -> str:
    """Our code for a Horde error answer: the rc table first, then the HTTP status."""
    if rc in RC_TABLE:
        return RC_TABLE[rc]
    if http_status == 404:
        return HORDE_EXPIRED
    if http_status in (401, 403):
        return HORDE_AUTH
    if http_status == 429 or http_status >= 500:
        return HORDE_BUSY
    return HORDE_BAD_REQUEST


def error(code: str, detail: str = "", *, local: bool) -> GenerationError:
    """A GenerationError with our reply text. `local`: the backend can run jobs locally.

    `retryable` (= the queue may hand the job out again) is True when the job can go to the
    local worker instead, or, Horde-only, when the failure is transient.
    """
    info = CODES[code]
    message = f"{info.reply} ({detail})" if detail else info.reply
    retry = info.local_ok if local else code in TRANSIENT
    return GenerationError(code, message, retryable=retry)
