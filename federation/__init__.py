"""Talking to fediverse servers: one adapter per platform behind one small protocol.

Nothing here knows about the queue, the GPU or moderation policy.
"""

from federation.base import Adapter, CursorStore, MemoryCursorStore, MentionSink
from federation.errors import (
    AdapterError,
    AuthError,
    PermanentError,
    RemoteGone,
    TransientError,
)
from federation.types import (
    Account,
    MediaItem,
    Mention,
    OutgoingPost,
    PostResult,
    Visibility,
)

__all__ = [
    "Account",
    "Adapter",
    "AdapterError",
    "AuthError",
    "CursorStore",
    "MediaItem",
    "MemoryCursorStore",
    "Mention",
    "MentionSink",
    "OutgoingPost",
    "PermanentError",
    "PostResult",
    "RemoteGone",
    "TransientError",
    "Visibility",
]
