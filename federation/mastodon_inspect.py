"""`fedibot doctor` for a Mastodon-API account: log in, find the server and how mentions
would arrive, in one line (never the token)."""

from __future__ import annotations

from federation.base import MemoryCursorStore
from federation.mastodon import MastodonAdapter
from federation.mastodon_config import MastodonAccountConfig


async def inspect_account(config: MastodonAccountConfig, timeout: float = 10.0) -> str:
    """ "logged in as bot@host; GoToSocial 0.20.0 (…); streaming over WebSocket; …".

    Changes nothing on the server (no bot flag, no notification policy). Raises the
    adapter's errors (AuthError, TransientError, …) when the account does not work.
    """
    quiet = config.model_copy(update={"set_bot_flag": False, "accept_private_mentions": False})
    adapter = MastodonAdapter(quiet, MemoryCursorStore())
    try:
        me = await adapter.start()
        await adapter.probe_stream(timeout)
        return f"logged in as {me.acct}; {adapter.describe()}"
    finally:
        await adapter.close()
