"""Mention ⇄ JSON, so a job carries everything needed to reply after a restart."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from federation.types import Account, Attachment, Mention, Visibility


def mention_to_dict(mention: Mention) -> dict[str, Any]:
    data = asdict(mention)
    data["visibility"] = mention.visibility.value
    data["created_at"] = mention.created_at.isoformat()
    data["edited_at"] = mention.edited_at.isoformat() if mention.edited_at else None
    return data


def mention_from_dict(data: dict[str, Any]) -> Mention:
    values = dict(data)
    values["author"] = Account(**values["author"])
    values["attachments"] = tuple(Attachment(**a) for a in values.get("attachments") or ())
    values["media_hosts"] = tuple(values.get("media_hosts") or ())
    values["visibility"] = Visibility(values["visibility"])
    values["created_at"] = datetime.fromisoformat(values["created_at"])
    if values.get("edited_at"):
        values["edited_at"] = datetime.fromisoformat(values["edited_at"])
    return Mention(**values)
