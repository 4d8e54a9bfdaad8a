"""The output rule for requests that name a minor (see docs/moderation-output.md).

When the prompt or the negative prompt names a minor (`names_minor`), an image is never
posted — blurred or not, whatever `policy.flagged_images` says — if the safety check flagged
it, if ANY exposure label of the classifier (NudeNet's `*_EXPOSED` classes, the diffusers
checker's `nsfw_concept`) scored at or above `policy.minor_exposure_threshold`, or if no
classifier looked at it. The whole job is withheld: it ends in the state `withheld` for the
operator (code `minor_exposure`: the console can only discard it or keep it as evidence,
never post it), and the requester gets a neutral reply without images.

Under `policy.flagged_images = "withhold"`, a result whose images were ALL flagged is held
for review too (code `flagged_output`): nothing could be posted, and an operator may still
post it as sensitive or blurred, or discard it and tell the requester.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fedibot.moderation.minors import names_minor

NSFW_CONCEPT = "nsfw_concept"
MINOR_EXPOSURE = "minor_exposure"  # never postable: see fedibot/queue/review.py
FLAGGED_OUTPUT = "flagged_output"  # postable after an operator's decision


def is_exposure_label(label: str) -> bool:
    """NudeNet's `…_EXPOSED` classes (any body part) and the diffusers checker's concept."""
    return label.upper().endswith("_EXPOSED") or label == NSFW_CONCEPT


def withhold_reason(
    prompt: str, negative: str, images: Iterable[Any], threshold: float
) -> str | None:
    """Why these images must not be posted (for the operator), or None when they may be.
    `images` are job image rows (`index`, `flagged`, `safety` = {classifier, labels})."""
    images = list(images)
    if not images or not names_minor(prompt or "", negative or ""):
        return None
    for image in images:
        safety = image.safety or {}
        labels: dict[str, float] = safety.get("labels") or {}
        if image.flagged:
            return f"the request names a minor and image {image.index} was flagged"
        hits = sorted(
            (label, float(score))
            for label, score in labels.items()
            if is_exposure_label(label) and float(score) >= threshold
        )
        if hits:
            shown = ", ".join(f"{label} {score:.2f}" for label, score in hits)
            return (
                f"the request names a minor and image {image.index} has exposure labels at or "
                f"above {threshold:g}: {shown}"
            )
        if safety.get("classifier") in (None, "", "none") or not labels:
            return (
                f"the request names a minor and image {image.index} was not checked by a "
                "safety classifier"
            )
    return None


def held_for_review(images: Iterable[Any], flagged_images: str) -> str | None:
    """Why a result without the minors problem is held for the operator, or None."""
    images = list(images)
    if flagged_images == "withhold" and images and all(image.flagged for image in images):
        return f"all {len(images)} image(s) were flagged and the policy withholds flagged images"
    return None
