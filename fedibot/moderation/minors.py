"""Does a request name a minor? The one question the output check asks about the prompt.

The prompt guard answers it (`fedibot.moderation.guard.mentions_minor`): minor words in nine
languages, ages under 18, school grades, with innocent phrases such as "kid goat" left out,
on the prompt and the negative prompt after the guard's normalisation. Callers use only
`names_minor`.
"""

from __future__ import annotations

from fedibot.moderation.guard import mentions_minor


def names_minor(prompt: str, negative: str = "") -> bool:
    """True when the prompt or the negative prompt names a minor in any way. The negative
    prompt counts too: an image of a child can come out of either."""
    return mentions_minor(prompt, negative)
