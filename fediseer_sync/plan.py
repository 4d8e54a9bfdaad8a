"""The safe-apply decision: what a sync would change, and whether it must wait for --force."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fediseer_sync.models import TrustResult


@dataclass(frozen=True, slots=True)
class SyncPlan:
    """Differences between the current Fediseer-sourced lists and a new TrustResult.
    `held` plans must not be applied; provenance of added entries is in `result`."""

    added_allow: tuple[str, ...]
    removed_allow: tuple[str, ...]
    added_deny: tuple[str, ...]
    removed_deny: tuple[str, ...]
    held: bool
    held_reason: str | None
    result: TrustResult
    current_allow_count: int
    forced: bool = False
    current_deny_count: int = 0

    @property
    def removal_fraction(self) -> float:
        """Share of the current allow list this plan removes (0 when the list is empty)."""
        if not self.current_allow_count:
            return 0.0
        return len(self.removed_allow) / self.current_allow_count

    @property
    def deny_removal_fraction(self) -> float:
        """Share of the current deny list this plan removes or flips to allow."""
        if not self.current_deny_count:
            return 0.0
        return len(self.removed_deny) / self.current_deny_count

    @property
    def changed(self) -> bool:
        return bool(self.added_allow or self.removed_allow or self.added_deny or self.removed_deny)

    def apply_to(self, allow: Iterable[str], deny: Iterable[str]) -> tuple[set[str], set[str]]:
        """The lists after this plan (pure; raises if the plan is held)."""
        if self.held:
            raise ValueError(f"this sync is held: {self.held_reason}")
        new_allow = (set(allow) - set(self.removed_allow)) | set(self.added_allow)
        new_deny = (set(deny) - set(self.removed_deny)) | set(self.added_deny)
        return new_allow, new_deny

    def summary(self) -> dict[str, Any]:
        """JSON-ready counts and lists, for `fediseer sync --dry-run` and the sync record."""
        return {
            "added_allow": list(self.added_allow),
            "removed_allow": list(self.removed_allow),
            "added_deny": list(self.added_deny),
            "removed_deny": list(self.removed_deny),
            "held": self.held,
            "held_reason": self.held_reason,
            "forced": self.forced,
            "removal_fraction": round(self.removal_fraction, 4),
            "deny_removal_fraction": round(self.deny_removal_fraction, 4),
            "sources": list(self.result.sources),
            "fetched_at": self.result.fetched_at.isoformat(),
        }


def plan_sync(
    current_allow: Iterable[str],
    current_deny: Iterable[str],
    result: TrustResult,
    *,
    max_removal_fraction: float,
    force: bool = False,
) -> SyncPlan:
    """Compare the current Fediseer-sourced lists with `result`. The plan is held, unless
    `force`, when it would remove more than `max_removal_fraction` of the current allow list
    or of the current deny list (a denied instance that moves to allow counts as removed
    from the deny list), or when either list is non-empty now and the source returned none
    of it at all (an empty answer is far likelier an outage than a real change; with the
    shipped blocklist mode an emptied deny list would let every censured instance in)."""
    if not 0.0 <= max_removal_fraction <= 1.0:
        raise ValueError("max_removal_fraction must be between 0 and 1")
    allow_now = set(current_allow)
    deny_now = set(current_deny)
    allow_new = set(result.allow)
    deny_new = set(result.deny)
    removed_allow = tuple(sorted(allow_now - allow_new))
    removed_deny = tuple(sorted(deny_now - deny_new))
    problems = [
        problem
        for problem in (
            _too_many(removed_allow, allow_now, allow_new, "allowed", max_removal_fraction),
            _too_many(removed_deny, deny_now, deny_new, "denied", max_removal_fraction),
        )
        if problem
    ]
    reason = None
    if problems and not force:
        reason = "; ".join(problems) + "; confirm with --force"
    return SyncPlan(
        added_allow=tuple(sorted(allow_new - allow_now)),
        removed_allow=removed_allow,
        added_deny=tuple(sorted(deny_new - deny_now)),
        removed_deny=removed_deny,
        held=reason is not None,
        held_reason=reason,
        result=result,
        current_allow_count=len(allow_now),
        forced=bool(problems) and force,
        current_deny_count=len(deny_now),
    )


def _too_many(
    removed: tuple[str, ...], now: set[str], new: set[str], label: str, max_fraction: float
) -> str | None:
    """Why removing `removed` from the list `now` must wait for --force, or None."""
    if not now or not removed:
        return None
    if not new:
        return (
            f"the source returned no {label} instances at all while {len(now)} are {label} "
            f"now; would remove all of them"
        )
    share = len(removed) / len(now)
    if share <= max_fraction:
        return None
    return (
        f"would remove {len(removed)} of {len(now)} {label} instances ({share:.0%}), "
        f"more than max_removal_fraction {max_fraction:.0%}"
    )
