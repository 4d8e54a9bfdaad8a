"""The input picture rule (fedibot.intake.pictures.refusal_reason): the output rule applied
to the picture a request starts from."""

from __future__ import annotations

from fedibot.intake.pictures import refusal_reason
from generator.types import SafetyResult

CLEAN = SafetyResult({"FACE_FEMALE": 0.9, "BELLY_EXPOSED": 0.0}, False, "nudenet")
EXPOSED = SafetyResult({"BELLY_EXPOSED": 0.3}, False, "nudenet")


def test_a_flagged_picture_is_refused_whatever_the_prompt() -> None:
    flagged = SafetyResult({"FEMALE_BREAST_EXPOSED": 0.9}, True, "nudenet")
    assert refusal_reason(flagged, "a landscape", "", 0.2) is not None


def test_exposure_labels_refuse_only_when_the_prompt_names_a_minor() -> None:
    assert refusal_reason(EXPOSED, "a beach", "", 0.2) is None
    assert "exposure" in (refusal_reason(EXPOSED, "a child on a beach", "", 0.2) or "")
    assert refusal_reason(CLEAN, "a child on a beach", "", 0.2) is None


def test_no_classifier_refuses_when_the_prompt_names_a_minor() -> None:
    unchecked = SafetyResult({}, False, "none")
    assert refusal_reason(unchecked, "a beach", "", 0.2) is None
    assert refusal_reason(unchecked, "a kid", "", 0.2) is not None
