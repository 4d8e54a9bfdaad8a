"""plan_sync: the safe-apply decision."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from fediseer_sync.models import TrustDecision, TrustResult
from fediseer_sync.plan import plan_sync


def result(allow: set[str], deny: set[str] = frozenset()) -> TrustResult:
    return TrustResult(
        allow={d: TrustDecision(d, True, decided_by=("a.example",)) for d in allow},
        deny={d: TrustDecision(d, False, decided_by=("a.example",)) for d in deny},
        sources=["a.example"],
        fetched_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


CURRENT = {f"i{n}.example" for n in range(10)}


def test_dropping_ninety_percent_is_held_without_force() -> None:
    plan = plan_sync(CURRENT, set(), result({"i0.example"}), max_removal_fraction=0.3)
    assert plan.held
    assert "9 of 10" in plan.held_reason and "--force" in plan.held_reason
    assert plan.removal_fraction == pytest.approx(0.9)
    with pytest.raises(ValueError, match="held"):
        plan.apply_to(CURRENT, set())


def test_dropping_ninety_percent_is_applied_with_force() -> None:
    plan = plan_sync(CURRENT, set(), result({"i0.example"}), max_removal_fraction=0.3, force=True)
    assert not plan.held and plan.forced
    assert len(plan.removed_allow) == 9
    assert plan.apply_to(CURRENT, set()) == ({"i0.example"}, set())


def test_small_removal_is_not_held() -> None:
    new = (CURRENT - {"i1.example", "i2.example"}) | {"new.example"}
    plan = plan_sync(CURRENT, set(), result(new), max_removal_fraction=0.3)
    assert not plan.held and not plan.forced
    assert plan.added_allow == ("new.example",)
    assert plan.removed_allow == ("i1.example", "i2.example")


def test_removal_exactly_at_the_fraction_is_not_held() -> None:
    new = CURRENT - {"i1.example", "i2.example", "i3.example"}
    assert not plan_sync(CURRENT, set(), result(new), max_removal_fraction=0.3).held
    assert plan_sync(CURRENT, set(), result(new), max_removal_fraction=0.2).held


def test_an_empty_new_list_is_held() -> None:
    plan = plan_sync(CURRENT, set(), result(set()), max_removal_fraction=0.3)
    assert plan.held and plan.removal_fraction == 1.0


def test_first_sync_onto_empty_lists_is_not_held() -> None:
    plan = plan_sync(set(), set(), result(CURRENT, {"bad.example"}), max_removal_fraction=0.0)
    assert not plan.held
    assert set(plan.added_allow) == CURRENT and plan.added_deny == ("bad.example",)


def test_moving_a_domain_from_allow_to_deny() -> None:
    new = result(CURRENT - {"i5.example"}, {"i5.example"})
    # 1.0: the one denied instance leaving would be 100% of the deny list (held otherwise)
    plan = plan_sync(CURRENT, {"old.example"}, new, max_removal_fraction=1.0)
    assert plan.removed_allow == ("i5.example",) and plan.added_deny == ("i5.example",)
    assert plan.removed_deny == ("old.example",)
    allow, deny = plan.apply_to(CURRENT, {"old.example"})
    assert deny == {"i5.example"} and "i5.example" not in allow
    assert plan.summary()["removed_deny"] == ["old.example"]


def test_unchanged_lists_make_an_empty_plan() -> None:
    plan = plan_sync(CURRENT, set(), result(CURRENT), max_removal_fraction=0.3)
    assert not plan.changed and not plan.held
