"""A request's picture → the checked input of an image-to-image job (docs/picture-input.md).

Which picture: the first attachment of the request whose kind is `image` (Mastodon: the
status' media, else — for a reply that asks for `--strength` — the parent status' media;
Lemmy: the post's image URL or the first image in the comment's markdown). The adapter
reports it, `federation.attachments` fetches it under the fetch rule (own server or the
requester's server only, size cap, timeout, content type), and here it is decided:

1. it must decode with Pillow as PNG, JPEG or WebP (not just claim to), within the pixel
   cap (checked from the header, before the pixels are decoded);
2. it goes through the same safety classifier as the output (`generator.safety`); an input
   that the output rule would withhold is refused (`picture_refused`): flagged, or — when
   the prompt names a minor — any exposure label at or above `policy.minor_exposure_threshold`
   or no classifier at all.

The requester's alt text is kept with the job (`job_inputs.alt_text`, and
`params["picture"]`), never added to the prompt.
"""

from __future__ import annotations

import asyncio
import io
import threading
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from federation.attachments import (
    PICTURE_TOO_LARGE,
    PICTURE_UNAVAILABLE,
    PICTURE_WRONG_TYPE,
    AttachmentError,
    FetchedPicture,
    FetchLimits,
    fetch_attachment,
)
from federation.types import Attachment, Mention
from fedibot.moderation.minors import names_minor
from fedibot.moderation.output_check import is_exposure_label
from fedibot.queue.jobs import PictureInput

PICTURE_REFUSED = "picture_refused"
FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}

Fetch = Callable[[Attachment, tuple[str, ...], FetchLimits], Awaitable[FetchedPicture]]


class PictureError(Exception):
    """A picture the bot will not use: a stable code and the reply's sentence."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class PictureLimits:
    max_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 4096 * 4096
    timeout_seconds: float = 20.0


def chosen_attachment(mention: Mention) -> Attachment | None:
    """The attachment a request starts from: the first image, else the first attachment
    (so a video gets `picture_wrong_type` when a picture was asked for), else None."""
    for attachment in mention.attachments:
        if attachment.kind in ("image", ""):
            return attachment
    return mention.attachments[0] if mention.attachments else None


def has_picture(mention: Mention) -> bool:
    """True when the request comes with an image (which makes it image-to-image)."""
    return any(a.kind in ("image", "") for a in mention.attachments)


def _fetcher(trusted: tuple[str, ...]) -> Fetch:
    """`fetch_attachment` with the address rule: only the bot's own servers (`trusted`) may
    have private addresses."""

    async def fetch(
        attachment: Attachment, hosts: tuple[str, ...], limits: FetchLimits
    ) -> FetchedPicture:
        return await fetch_attachment(attachment, hosts, limits, trusted=trusted)

    return fetch


class PictureChecker:
    """Fetches, decodes and classifies request pictures (one per request)."""

    def __init__(
        self,
        *,
        classifier_factory: Callable[[], Any],
        minor_threshold: float = 0.2,
        limits: PictureLimits | None = None,
        fetch: Fetch | None = None,
        trusted_hosts: tuple[str, ...] = (),
    ) -> None:
        self.limits = limits or PictureLimits()
        self.minor_threshold = minor_threshold
        self._factory = classifier_factory
        self._classifier: Any = None
        self._lock = threading.Lock()
        self.trusted_hosts = trusted_hosts
        self._fetch = fetch or _fetcher(trusted_hosts)

    @classmethod
    def from_config(cls, config: Any) -> PictureChecker:
        safety = config.generator.safety

        def factory() -> Any:
            from generator.safety import make_classifier  # numpy/onnx only when used

            return make_classifier(safety)

        own_servers = tuple(
            (urlsplit(str(account.base_url)).hostname or "").lower() for account in config.accounts
        )
        pictures = config.pictures
        return cls(
            classifier_factory=factory,
            minor_threshold=float(config.policy.minor_exposure_threshold),
            limits=PictureLimits(
                max_bytes=int(pictures.max_megabytes * 1024 * 1024),
                max_pixels=int(pictures.max_megapixels * 1_000_000),
                timeout_seconds=float(pictures.fetch_timeout_seconds),
            ),
            trusted_hosts=tuple(
                h for h in (*own_servers, *(n.lower() for n in pictures.private_hosts)) if h
            ),
        )

    def _classify(self, image: Any) -> Any:
        with self._lock:  # one classifier, built on first use, used by one thread at a time
            if self._classifier is None:
                self._classifier = self._factory()
            return self._classifier.classify(image)

    async def load(self, mention: Mention, prompt: str, negative: str) -> PictureInput:
        attachment = chosen_attachment(mention)
        if attachment is None:
            raise PictureError(PICTURE_UNAVAILABLE, "I found no picture in your request")
        limits = FetchLimits(
            max_bytes=self.limits.max_bytes, timeout_seconds=self.limits.timeout_seconds
        )
        try:
            fetched = await self._fetch(attachment, tuple(mention.media_hosts), limits)
        except AttachmentError as err:
            raise PictureError(err.code, err.message) from None
        return await asyncio.to_thread(self._check, fetched, attachment, prompt, negative)

    def _check(
        self, fetched: FetchedPicture, attachment: Attachment, prompt: str, negative: str
    ) -> PictureInput:
        from PIL import Image

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                image = Image.open(io.BytesIO(fetched.data))
                mime = FORMATS.get(str(image.format))
                if mime is None:
                    raise PictureError(
                        PICTURE_WRONG_TYPE,
                        f"the attachment is not a PNG, JPEG or WebP picture ({image.format})",
                    )
                width, height = image.size
                if width * height > self.limits.max_pixels:
                    raise PictureError(
                        PICTURE_TOO_LARGE,
                        f"the picture has {width}x{height} pixels; at most "
                        f"{self.limits.max_pixels // 1_000_000} megapixels please",
                    )
                image.load()
        except PictureError:
            raise
        except (Image.DecompressionBombWarning, Image.DecompressionBombError):
            raise PictureError(PICTURE_TOO_LARGE, "the picture has too many pixels") from None
        except Exception:
            raise PictureError(
                PICTURE_WRONG_TYPE, "the attachment could not be read as a PNG, JPEG or WebP"
            ) from None
        result = self._classify(image.convert("RGB"))
        reason = refusal_reason(result, prompt, negative, self.minor_threshold)
        if reason is not None:
            raise PictureError(
                PICTURE_REFUSED,
                "I can't work from this picture: it did not pass the safety check",
            )
        return PictureInput(
            data=fetched.data,
            mime_type=mime,
            width=width,
            height=height,
            alt_text=attachment.description,
            source_url=fetched.url,
        )


def refusal_reason(result: Any, prompt: str, negative: str, threshold: float) -> str | None:
    """Why an input picture must not be used (the output rule, fedibot.moderation.
    output_check, applied to the input), or None."""
    if result.flagged:
        return "flagged by the safety check"
    if not names_minor(prompt or "", negative or ""):
        return None
    labels: dict[str, float] = dict(result.labels or {})
    if result.classifier in (None, "", "none") or not labels:
        return "the request names a minor and no classifier looked at the picture"
    hits = [k for k, v in labels.items() if is_exposure_label(k) and float(v) >= threshold]
    if hits:
        return "the request names a minor and the picture has exposure labels: " + ", ".join(
            sorted(hits)
        )
    return None
