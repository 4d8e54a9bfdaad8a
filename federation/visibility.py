"""THE visibility rule: how visible the bot's answer to a request may be.

Every part that decides or checks the visibility of a reply (ingest when it records a job,
the outbound path before it posts, the Mastodon adapter before it sends) calls
`reply_visibility`; nothing else maps a request's visibility to a reply's.
"""

from __future__ import annotations

from federation.types import Visibility


def reply_visibility(
    requested: Visibility, public_cap: Visibility | str = Visibility.PUBLIC
) -> Visibility:
    """The visibility of the bot's answer to a request posted with `requested`.

    * never wider than the request, and never wider than `public_cap` (the account's
      `public_reply_visibility`, e.g. "unlisted");
    * a followers-only request is answered DIRECT: a followers-only reply would go to the
      *bot's* followers — another audience than the requester's — and show them the prompt;
    * a direct request stays direct.
    """
    if requested is Visibility.PRIVATE:
        return Visibility.DIRECT
    chosen = requested.narrowest(Visibility(public_cap))
    assert chosen.rank >= requested.rank, "a reply must never be wider than its request"
    return chosen
