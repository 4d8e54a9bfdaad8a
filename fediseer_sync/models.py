"""Plain data: what was fetched from Fediseer, and the trust decision with its provenance."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fediseer_sync.domains import normalize_domain

Reasons = tuple[str, ...]


def split_reasons(raw: Any) -> Reasons:
    """Fediseer reasons come as `null`, `[]` or a list of comma-separated strings
    (one censure can say "spam,csam"): flatten them to single trimmed reasons."""
    if not raw:
        return ()
    if isinstance(raw, str):
        raw = [raw]
    out: list[str] = []
    for item in raw:
        if not isinstance(item, str):
            continue
        for part in item.split(","):
            part = part.strip()
            if part and part not in out:
                out.append(part)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class InstanceEntry:
    """One instance in a list returned by Fediseer, reduced to what the rules use."""

    domain: str
    reasons: Reasons = ()
    guarantor: str | None = None


@dataclass(frozen=True, slots=True)
class SourceSnapshot:
    """What one trusted instance says: endorsed / censured / hesitated domains with reasons.
    `censures`/`hesitations` are None when they were not fetched (the rules did not need them)."""

    domain: str
    endorsements: Mapping[str, InstanceEntry]
    censures: Mapping[str, InstanceEntry] | None = None
    hesitations: Mapping[str, InstanceEntry] | None = None


@dataclass(frozen=True, slots=True)
class TrustDecision:
    """Why one domain is allowed or denied. The `*_by` maps hold everything the trusted sources
    said about it (trusted domain → reasons); `decided_by` names the ones that counted."""

    domain: str
    allowed: bool
    endorsed_by: Mapping[str, Reasons] = field(default_factory=dict)
    censured_by: Mapping[str, Reasons] = field(default_factory=dict)
    hesitated_by: Mapping[str, Reasons] = field(default_factory=dict)
    guaranteed: bool = False
    guarantor: str | None = None
    decided_by: tuple[str, ...] = ()

    def explain(self) -> str:
        """One human sentence, for `allowlist show`."""

        def fmt(by: Mapping[str, Reasons]) -> str:
            return ", ".join(f"{d} ({'; '.join(r)})" if r else d for d, r in sorted(by.items()))

        if self.allowed:
            text = f"allowed: endorsed by {fmt({d: self.endorsed_by[d] for d in self.decided_by})}"
        else:
            said = {**self.hesitated_by, **self.censured_by}
            verb = "censured/hesitated" if self.hesitated_by else "censured"
            text = f"denied: {verb} by {fmt({d: said.get(d, ()) for d in self.decided_by})}"
        if self.guarantor:
            text += f"; guaranteed by {self.guarantor}"
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for storing provenance in the database)."""
        return {
            "domain": self.domain,
            "allowed": self.allowed,
            "endorsed_by": {k: list(v) for k, v in self.endorsed_by.items()},
            "censured_by": {k: list(v) for k, v in self.censured_by.items()},
            "hesitated_by": {k: list(v) for k, v in self.hesitated_by.items()},
            "guaranteed": self.guaranteed,
            "guarantor": self.guarantor,
            "decided_by": list(self.decided_by),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrustDecision:
        return cls(
            domain=data["domain"],
            allowed=bool(data["allowed"]),
            endorsed_by={k: tuple(v) for k, v in data.get("endorsed_by", {}).items()},
            censured_by={k: tuple(v) for k, v in data.get("censured_by", {}).items()},
            hesitated_by={k: tuple(v) for k, v in data.get("hesitated_by", {}).items()},
            guaranteed=bool(data.get("guaranteed", False)),
            guarantor=data.get("guarantor"),
            decided_by=tuple(data.get("decided_by", ())),
        )


Provenance = TrustDecision
"""The provenance of an allow or deny entry is its TrustDecision."""


@dataclass(frozen=True, slots=True)
class TrustResult:
    """The complete outcome of one successful fetch: every source was read."""

    allow: Mapping[str, Provenance]
    deny: Mapping[str, Provenance]
    sources: list[str]
    fetched_at: datetime

    def lookup(self, domain: str) -> Provenance | None:
        """The decision about `domain` (deny first, as deny beats allow), or None."""
        try:
            domain = normalize_domain(domain)
        except ValueError:
            return None
        return self.deny.get(domain) or self.allow.get(domain)
