"""Does a request name a minor? The one question the output check asks about the prompt.

For now this uses the prompt filter's minor-term detection (its default word lists, ages
under 18, innocent phrases such as "kid goat" left out). The new prompt guard will expose
`fedibot.moderation.guard.mentions_minor(prompt, negative)`; this function is the single
place to point at it. Callers use only `names_minor`.
"""

from __future__ import annotations

from functools import cache

from fedibot.moderation.prompt_filter import PromptFilter


@cache
def _detector() -> PromptFilter:
    return PromptFilter()


def names_minor(prompt: str, negative: str = "") -> bool:
    """True when the prompt or the negative prompt names a minor in any way. The negative
    prompt counts too: an image of a child can come out of either."""
    detector = _detector()
    return any(detector.minor_terms(text) for text in (prompt, negative) if text)
