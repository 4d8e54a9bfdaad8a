"""Output safety: NudeNet classifies generated images; misconfiguration is a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from generator.config import SafetyConfig
from generator.safety import NUDENET_LABELS, SafetyUnavailable, make_classifier
from generator.service import GeneratorService
from generator.types import GenerationRequest, JobResult, SafetyResult
from tests.generator.conftest import make_config


@pytest.fixture(scope="module")
def nudenet():
    return make_classifier(SafetyConfig(classifier="nudenet"))


def test_nudenet_classifies_a_generated_image(service: GeneratorService, nudenet) -> None:
    (result,) = service.generate([GenerationRequest(job_id=77, prompt="a person", seeds=[3])])
    assert isinstance(result, JobResult)
    with Image.open(result.images[0].path) as img:
        verdict = nudenet.classify(img.copy())
    assert isinstance(verdict, SafetyResult)
    assert verdict.classifier == "nudenet"
    assert set(NUDENET_LABELS) <= set(verdict.labels)
    assert all(0.0 <= score <= 1.0 for score in verdict.labels.values())
    explicit = SafetyConfig().flagged_labels
    assert verdict.flagged == any(verdict.labels[label] >= 0.5 for label in explicit)


def test_flagging_follows_threshold_and_labels() -> None:
    strict = make_classifier(SafetyConfig(threshold=0.0, flagged_labels=["FACE_FEMALE"]))
    image = Image.new("RGB", (64, 64), (200, 150, 120))
    assert strict.classify(image).flagged  # every score is ≥ 0.0
    lax = make_classifier(SafetyConfig(threshold=1.0))
    assert not lax.classify(image).flagged


def test_service_stores_safety_with_each_image(tiny_data_dir: Path) -> None:
    svc = GeneratorService(make_config(tiny_data_dir, safety=SafetyConfig(classifier="nudenet")))
    (result,) = svc.generate([GenerationRequest(job_id=78, prompt="x", seeds=[1, 2])])
    assert isinstance(result, JobResult)
    assert [img.safety.classifier for img in result.images] == ["nudenet", "nudenet"]
    assert all(img.safety.labels for img in result.images)


def test_diffusers_checker_without_local_weights_is_a_clear_error(tmp_path: Path) -> None:
    cfg = SafetyConfig(classifier="diffusers", diffusers_checker=str(tmp_path / "absent"))
    with pytest.raises(SafetyUnavailable, match=r"safety\.diffusers_checker .*never downloaded"):
        make_classifier(cfg)


def test_none_classifier_flags_nothing() -> None:
    verdict = make_classifier(SafetyConfig(classifier="none")).classify(Image.new("RGB", (8, 8)))
    assert verdict == SafetyResult(labels={}, flagged=False, classifier="none")
