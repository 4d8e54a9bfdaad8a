"""What the bot says: reply text, alt text, content warning and visibility of a job's post.

Pure functions of the job row, its images and config; the replier posts what they return
through `PostOnce` (which adds the idempotency key and caps the visibility). User-written
parts are escaped with the `escape` function given, the adapter's `escape_text`: this module
knows no platform.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from federation.types import MediaItem, Mention, OutgoingPost, Visibility
from fedibot.config.loader import FedibotConfig

# Stable error codes → a friendly sentence when the job has no message of its own.
ERROR_SENTENCES = {
    "too_large": "That request was too big for my GPU. Try a smaller --size or fewer images.",
    "generation_failed": "Sorry, making your image failed. Please try again later.",
    "model_unavailable": "Sorry, that model is not available right now.",
    "safety_failed": "Sorry, I could not check the image, so I did not send it.",
    "instance_not_allowed": "Sorry, I only answer people from some instances.",
    "user_banned": "Sorry, I can't make images for you.",
    "not_allowed": "Only the person who asked for these images can do that.",
    "not_a_result": "'again' and 'delete' work as replies to one of my images.",
    "internal_error": "Sorry, something went wrong on my side. The admin can see what.",
    "withheld": "Sorry, I can't send the picture for this request. Please ask for something else.",
    "minor_exposure": (
        "Sorry, I can't send the picture for this request. Please ask for something else."
    ),
    "flagged_output": "Sorry, I can't send the picture for this request.",
}

# Codes whose stored message is a generator internal (exception text, file paths).
INTERNAL_ERROR_CODES = {
    "generation_failed",
    "model_unavailable",
    "safety_failed",
    "withheld",
    "minor_exposure",
    "flagged_output",
}

ZWSP = "\u200b"
_TAGGABLE = re.compile(r"[@#](?=\w)")


Escape = Callable[[str], str]


def defuse(text: str) -> str:
    """Plain-text user text that cannot mention anyone or tag anything: the escaping used
    when no adapter is at hand (`fedibot try`). Posting uses the adapter's `escape_text`."""
    # A `#` not followed by a word character, as in `### negative`, stays as it is.
    return _TAGGABLE.sub(lambda m: m.group(0) + ZWSP, text)


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(0, limit - 1)].rstrip() + "…"


def _base_post(job: Any, mention: Mention, text: str) -> dict[str, Any]:
    return {
        "text": text,
        "visibility": Visibility(job.visibility),
        "in_reply_to_id": mention.remote_id,
        "language": mention.language,
        "recipient": mention.author,
        "is_private_message": mention.is_private_message,
        "context": dict(mention.context),
        "spoiler_text": mention.spoiler_text,
        "sensitive": mention.sensitive,
    }


def compose_result(
    job: Any,
    images: list[Any],
    mention: Mention,
    config: FedibotConfig,
    blur: Any = None,
    escape: Escape = defuse,
) -> OutgoingPost:
    """The reply carrying a job's images. `blur(path) -> Path` makes a blurred copy."""
    prompt = shorten(job.prompt, 300)
    action = config.policy.flagged_images
    # An operator who approved a withheld result in the console decided how it goes out.
    decision = (getattr(job, "params", None) or {}).get("operator_decision")
    if decision in ("sensitive", "blur"):
        action = decision
    else:
        decision = None
    media: list[MediaItem] = []
    flagged = withheld = 0
    for image in images:
        path = Path(image.path)
        if image.flagged:
            flagged += 1
            if action == "withhold":
                withheld += 1
                continue
            if action == "blur" and blur is not None:
                path = Path(blur(path))
        elif decision == "blur" and blur is not None:
            path = Path(blur(path))
        alt = config.replies.alt_text.format(
            prompt=prompt, model=job.model, seed=image.seed, negative=job.negative_prompt
        )
        media.append(MediaItem(path=path, alt_text=alt))
    text = config.replies.text.format(
        prompt=escape(prompt),
        model=job.model,
        seeds=", ".join(str(i.seed) for i in images),
        n=len(images),
    )
    if withheld:
        text += f"\n({withheld} image(s) withheld by the safety check.)"
    for notice in (job.params or {}).get("notices", []):  # e.g. the Horde censored some
        text += f"\n{notice['text']}"
    post = _base_post(job, mention, text)
    if (flagged or decision) and action != "withhold":
        post["sensitive"] = True
        cw = config.policy.flagged_spoiler_text
        post["spoiler_text"] = f"{post['spoiler_text']}; {cw}" if post["spoiler_text"] else cw
    return OutgoingPost(media=tuple(media), **post)


def compose_error(job: Any, mention: Mention, escape: Escape = defuse) -> OutgoingPost:
    """One short error reply, in the request's visibility (a DM stays a DM)."""
    message = job.error_message or ERROR_SENTENCES.get(job.error_code or "", "")
    if job.error_code in INTERNAL_ERROR_CODES:  # the message is for the logs, not the user
        message = ERROR_SENTENCES[job.error_code]
    if not message:
        message = "Sorry, I could not do that."
    # error messages quote what the user wrote: defuse it like any user text
    return OutgoingPost(**_base_post(job, mention, escape(message)))


def compose_text(job: Any, mention: Mention, text: str) -> OutgoingPost:
    """A reply with text only (help, notices)."""
    return OutgoingPost(**_base_post(job, mention, text))


class _Blank(dict[str, str]):
    """format_map() helper: an unknown {name} becomes empty instead of a KeyError."""

    def __missing__(self, key: str) -> str:
        return ""


CAMPAIGN_ALT_TEXT = "AI-generated image. Prompt: {prompt}. Seed: {seed}."


def compose_campaign(
    job: Any,
    images: list[Any],
    in_reply_to_id: str | None,
    *,
    flagged_images: str = "sensitive",
    flagged_spoiler_text: str = "AI image, may contain nudity",
    blur: Any = None,
) -> OutgoingPost:
    """A campaign run's new status (or thread reply) with alt text on every image.

    The job's params carry the rendered `text`, `spoiler_text`, `language` and `alt_text`
    template. A flagged image is never posted unmarked: with `flagged_images` "sensitive" or
    "blur" (a blurred copy via `blur(path) -> Path`) the post is sensitive and gets the CW;
    with "withhold" the image is left out and the text says so.
    """
    params = job.params or {}
    alt_template = params.get("alt_text") or CAMPAIGN_ALT_TEXT
    media: list[MediaItem] = []
    flagged = withheld = 0
    for image in images:
        path = Path(image.path)
        if image.flagged:
            flagged += 1
            if flagged_images == "withhold":
                withheld += 1
                continue
            if flagged_images == "blur" and blur is not None:
                path = Path(blur(path))
        alt = alt_template.format_map(
            _Blank(
                prompt=job.prompt,
                seed=image.seed,
                model=job.model,
                negative=getattr(job, "negative_prompt", ""),
            )
        )
        media.append(MediaItem(path=path, alt_text=alt))
    text = params.get("text") or job.prompt
    if withheld:
        text += f"\n({withheld} image(s) withheld by the safety check.)"
    spoiler = params.get("spoiler_text") or ""
    marked = flagged > withheld  # a flagged image is in the post (as is or blurred)
    if marked:
        spoiler = f"{spoiler}; {flagged_spoiler_text}" if spoiler else flagged_spoiler_text
    return OutgoingPost(
        text=text,
        visibility=Visibility(job.visibility),
        in_reply_to_id=in_reply_to_id,
        media=tuple(media),
        sensitive=marked or bool(params.get("sensitive")),
        spoiler_text=spoiler,
        language=params.get("language"),
    )
