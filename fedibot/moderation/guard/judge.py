"""The decision: prompt and negative prompt judged together.

A request is refused (code `minor_sexual`) when the prompt names a minor (a word from a
`minor` list or an age expression for someone under 18, see ages.py) and

- rule `minor+sexual`: the prompt has a sexual or nudity word or paraphrase; or
- rule `minor+unclothed`: the prompt takes a garment away ("without a shirt", "ohne Kleidung");
- rule `minor+clothing-in-negative`: the negative prompt names a garment ("clothes",
  "swimsuit"): leaving clothing out of a picture of a minor is asking for nudity.

Everything else is allowed by the guard (code `allowed`); adult content is the business of
the operator's block lists in the prompt filter. Sexual words in the negative prompt never
count against the request ("a child in a swimsuit", negative "nsfw" is fine).

`mentions_minor` is true whenever the prompt or the negative prompt names a minor at all; the
output side uses it to withhold any image the classifier labels as exposed.
"""

from __future__ import annotations

from dataclasses import dataclass

from fedibot.moderation.guard.lexicon import Found, Lexicon, default_lexicon
from fedibot.moderation.guard.normalize import Normalised, age_texts, normalize

ALLOWED_CODE = "allowed"
MINOR_SEXUAL = "minor_sexual"

RULE_SEXUAL = "minor+sexual"
RULE_UNCLOTHED = "minor+unclothed"
RULE_NEGATIVE = "minor+clothing-in-negative"

REASONS = {
    ALLOWED_CODE: "The request is allowed.",
    RULE_SEXUAL: (
        "Sorry, I never make sexual pictures of minors, or pictures of them undressed. "
        "Please ask for something else."
    ),
    RULE_UNCLOTHED: (
        "Sorry, I never make pictures of minors without their clothes. "
        "Please ask for something else."
    ),
    RULE_NEGATIVE: (
        "Sorry, a negative prompt that leaves out clothing on a picture of a minor asks for "
        "nudity, and I never make that. Please describe what the person wears instead."
    ),
}


@dataclass(frozen=True)
class Verdict:
    """The guard's answer. `reason` is safe to show the requester (it never repeats the
    words); `matched` holds the normalised words that triggered, for logs and the CLI."""

    allowed: bool
    code: str
    reason: str
    rule: str
    matched: tuple[str, ...]
    mentions_minor: bool
    normalised: str = ""
    normalised_negative: str = ""


@dataclass(frozen=True)
class _Side:
    normalised: Normalised
    found: Found
    ages: tuple[str, ...]

    @property
    def minors(self) -> tuple[str, ...]:
        return (*self.found.minor, *self.ages)


def _read(text: str, lexicon: Lexicon) -> _Side:
    normalised = normalize(text)
    found = lexicon.scan(normalised)
    ages = tuple(
        dict.fromkeys(age for t in age_texts(normalised) for age in lexicon.ages.minors(t))
    )
    return _Side(normalised, found, ages)


def judge(prompt: str, negative: str = "", lexicon: Lexicon | None = None) -> Verdict:
    """The guard's verdict on a prompt and its negative prompt (see the module docstring)."""
    lexicon = lexicon or default_lexicon()
    side = _read(prompt, lexicon)
    neg = _read(negative, lexicon) if negative else None
    minors = side.minors
    mentions = bool(minors or (neg and neg.minors))
    texts = (side.normalised.display, neg.normalised.display if neg else "")

    def verdict(rule: str, matched: tuple[str, ...]) -> Verdict:
        return Verdict(
            allowed=False,
            code=MINOR_SEXUAL,
            reason=REASONS[rule],
            rule=rule,
            matched=tuple(dict.fromkeys((*minors, *matched))),
            mentions_minor=True,
            normalised=texts[0],
            normalised_negative=texts[1],
        )

    if minors:
        sexual = (*side.found.sexual, *side.found.nudity)
        if sexual:
            return verdict(RULE_SEXUAL, sexual)
        if side.found.unclothed:
            return verdict(RULE_UNCLOTHED, side.found.unclothed)
        if neg and neg.found.clothing:
            return verdict(RULE_NEGATIVE, neg.found.clothing)
    return Verdict(
        allowed=True,
        code=ALLOWED_CODE,
        reason=REASONS[ALLOWED_CODE],
        rule="",
        matched=(),
        mentions_minor=mentions,
        normalised=texts[0],
        normalised_negative=texts[1],
    )


def mentions_minor(prompt: str, negative: str = "", lexicon: Lexicon | None = None) -> bool:
    """True when the prompt or the negative prompt names a minor in any way."""
    lexicon = lexicon or default_lexicon()
    return any(_read(text, lexicon).minors for text in (prompt, negative) if text)
