"""compute_trust as a pure function, fed from the recorded fixture answers."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from fediseer_sync.client import _entries
from fediseer_sync.models import (
    InstanceEntry,
    SourceSnapshot,
    TrustDecision,
    split_reasons,
)
from fediseer_sync.rules import compute_trust, reasons_match
from tests.fediseer.conftest import config
from tests.fixtures_path import FEDISEER_FIXTURES


def recorded(name: str, key: str) -> dict[str, InstanceEntry]:
    body = json.loads((FEDISEER_FIXTURES / name).read_text())["body"]
    return {e.domain: e for e in _entries(body["instances"], key)}


def test_reasons_are_split_on_commas_and_nulls_are_empty() -> None:
    assert split_reasons(None) == ()
    assert split_reasons([]) == ()
    assert split_reasons(["spam", "spam,csam", " harassment "]) == ("spam", "csam", "harassment")


def test_reason_filter_is_a_case_insensitive_substring_match() -> None:
    assert reasons_match(("Well Moderated",), ["moderated"])
    assert not reasons_match(("friendly admins",), ["moderated"])
    assert not reasons_match((), ["moderated"])
    assert reasons_match((), [])


def test_recorded_answers_give_allow_and_deny_with_provenance() -> None:
    alpha = SourceSnapshot(
        "alpha.example",
        endorsements=recorded("approvals_full.json", "endorsement_reasons"),
        censures=recorded("censures_given_full.json", "censure_reasons"),
    )
    beta = SourceSnapshot(
        "beta.example",
        endorsements={},
        censures={},
        hesitations=recorded("hesitations_given.json", "hesitation_reasons"),
    )
    cfg = config(
        trusted=["alpha.example", "beta.example"], deny_censured_by=1, include_hesitations=True
    )
    when = datetime(2026, 1, 1, tzinfo=UTC)
    result = compute_trust([alpha, beta], cfg, fetched_at=when)
    assert set(result.allow) == {"beta.example", "gamma.example"}
    assert set(result.deny) == {"spam.example", "delta.example"}
    assert result.deny["spam.example"].censured_by == {"alpha.example": ("spam", "csam")}
    assert result.deny["delta.example"].decided_by == ("beta.example",)
    assert result.fetched_at == when


def test_a_source_that_endorses_and_another_that_censures_deny_wins() -> None:
    one = SourceSnapshot("a.example", {"x.example": InstanceEntry("x.example", ("ok",))}, {})
    two = SourceSnapshot("b.example", {}, {"x.example": InstanceEntry("x.example", ("spam",))})
    cfg = config(trusted=["a.example", "b.example"], deny_censured_by=1)
    result = compute_trust([one, two], cfg)
    assert result.allow == {}
    decision = result.deny["x.example"]
    assert decision.endorsed_by == {"a.example": ("ok",)}
    assert "denied" in decision.explain() and "b.example (spam)" in decision.explain()


def test_decision_round_trips_through_json() -> None:
    decision = TrustDecision(
        "x.example",
        True,
        endorsed_by={"a.example": ("ok", "nice")},
        guaranteed=True,
        guarantor="a.example",
        decided_by=("a.example",),
    )
    again = TrustDecision.from_dict(json.loads(json.dumps(decision.to_dict())))
    assert again == decision
    expected = "allowed: endorsed by a.example (ok; nice); guaranteed by a.example"
    assert decision.explain() == expected
