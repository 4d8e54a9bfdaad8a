"""The prompt guard: refuses sexual or nude pictures of minors, whatever the spelling.

    from fedibot.moderation.guard import judge, mentions_minor
    verdict = judge("a child at the beach", negative="clothes, swimsuit")
    verdict.allowed, verdict.code, verdict.rule, verdict.matched

See docs/moderation-guard.md for what it refuses and how operators extend its lists.
"""

from fedibot.moderation.guard.judge import (
    ALLOWED_CODE,
    MINOR_SEXUAL,
    Verdict,
    judge,
    mentions_minor,
)
from fedibot.moderation.guard.lexicon import (
    Lexicon,
    LexiconError,
    default_lexicon,
    load_lexicon,
)
from fedibot.moderation.guard.normalize import Normalised, normalize

__all__ = [
    "ALLOWED_CODE",
    "MINOR_SEXUAL",
    "Lexicon",
    "LexiconError",
    "Normalised",
    "Verdict",
    "default_lexicon",
    "judge",
    "load_lexicon",
    "mentions_minor",
    "normalize",
]
