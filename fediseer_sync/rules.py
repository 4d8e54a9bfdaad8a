"""Pure rules: per-source Fediseer lists + config → allow and deny sets with provenance.

- allow: endorsed by at least `min_endorsements` trusted instances (only endorsements whose
  reason contains one of `endorsement_reasons` count, when that is set); with
  `require_guarantee`, only instances that have a guarantor.
- deny (when `deny_censured_by` N > 0): censured by at least N trusted instances (only censures
  matching `censure_reasons` count, when set); with `include_hesitations`, hesitations count as
  censures (one vote per trusted instance).
- deny beats allow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from types import MappingProxyType

from fediseer_sync.config import FediseerConfig
from fediseer_sync.models import InstanceEntry, Reasons, SourceSnapshot, TrustDecision, TrustResult


def reasons_match(reasons: Reasons, wanted: Sequence[str]) -> bool:
    """True if no filter is set, or one wanted text is contained in one reason (ignoring case)."""
    if not wanted:
        return True
    lowered = [r.lower() for r in reasons]
    return any(w in r for w in wanted for r in lowered)


def _collect(
    snapshots: Sequence[SourceSnapshot], attr: str
) -> tuple[dict[str, dict[str, Reasons]], dict[str, str | None]]:
    """target domain → {trusted domain → reasons}, and target → guarantor as last seen."""
    by_target: dict[str, dict[str, Reasons]] = {}
    guarantors: dict[str, str | None] = {}
    for snap in snapshots:
        entries: Mapping[str, InstanceEntry] | None = getattr(snap, attr)
        if not entries:
            continue
        for domain, entry in entries.items():
            by_target.setdefault(domain, {})[snap.domain] = entry.reasons
            if entry.guarantor or domain not in guarantors:
                guarantors[domain] = entry.guarantor
    return by_target, guarantors


def compute_trust(
    snapshots: Sequence[SourceSnapshot],
    config: FediseerConfig,
    *,
    fetched_at: datetime | None = None,
) -> TrustResult:
    """Apply the trust rules of `config` to what the trusted sources said."""
    endorsed, guarantors = _collect(snapshots, "endorsements")
    censured, g2 = _collect(snapshots, "censures")
    hesitated, g3 = _collect(snapshots, "hesitations")
    for extra in (g2, g3):
        for domain, g in extra.items():
            if g or domain not in guarantors:
                guarantors[domain] = g
    empty: Mapping[str, Reasons] = MappingProxyType({})

    def decision(domain: str, allowed: bool, decided_by: list[str]) -> TrustDecision:
        guarantor = guarantors.get(domain)
        return TrustDecision(
            domain=domain,
            allowed=allowed,
            endorsed_by=endorsed.get(domain, empty),
            censured_by=censured.get(domain, empty),
            hesitated_by=hesitated.get(domain, empty),
            guaranteed=guarantor is not None,
            guarantor=guarantor,
            decided_by=tuple(sorted(decided_by)),
        )

    deny: dict[str, TrustDecision] = {}
    if config.deny_censured_by > 0:
        wanted = config.censure_reasons
        candidates = set(censured)
        if config.include_hesitations:
            candidates |= set(hesitated)
        for domain in candidates:
            votes = {
                src
                for src, reasons in censured.get(domain, empty).items()
                if reasons_match(reasons, wanted)
            }
            if config.include_hesitations:
                votes |= {
                    src
                    for src, reasons in hesitated.get(domain, empty).items()
                    if reasons_match(reasons, wanted)
                }
            if len(votes) >= config.deny_censured_by:
                deny[domain] = decision(domain, False, list(votes))

    allow: dict[str, TrustDecision] = {}
    wanted = config.endorsement_reasons
    for domain, by in endorsed.items():
        if domain in deny:
            continue
        if config.require_guarantee and guarantors.get(domain) is None:
            continue
        endorsers = [src for src, reasons in by.items() if reasons_match(reasons, wanted)]
        if len(endorsers) >= config.min_endorsements:
            allow[domain] = decision(domain, True, endorsers)

    return TrustResult(
        allow=allow,
        deny=deny,
        sources=[s.domain for s in snapshots],
        fetched_at=fetched_at or datetime.now(UTC),
    )
