"""Output safety: classify every image before it is stored.

`nudenet` (default) runs NudeNet's bundled ONNX detector on the CPU and reports, for each of
its labels, the best detection score (0.0 when nothing was detected). `diffusers` runs
StableDiffusionSafetyChecker from a local folder only (never downloads). `none` skips it.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from generator.config import SafetyConfig
from generator.types import SafetyResult

# The classes of NudeNet 3.4's 320n detector.
NUDENET_LABELS = (
    "FEMALE_GENITALIA_COVERED",
    "FACE_FEMALE",
    "BUTTOCKS_EXPOSED",
    "FEMALE_BREAST_EXPOSED",
    "FEMALE_GENITALIA_EXPOSED",
    "MALE_BREAST_EXPOSED",
    "ANUS_EXPOSED",
    "FEET_EXPOSED",
    "BELLY_COVERED",
    "FEET_COVERED",
    "ARMPITS_COVERED",
    "ARMPITS_EXPOSED",
    "FACE_MALE",
    "BELLY_EXPOSED",
    "MALE_GENITALIA_EXPOSED",
    "ANUS_COVERED",
    "FEMALE_BREAST_COVERED",
    "BUTTOCKS_COVERED",
)
NSFW_CONCEPT = "nsfw_concept"


class SafetyUnavailable(RuntimeError):
    """The configured classifier cannot run (missing weights or package)."""


class Classifier(Protocol):
    name: str

    def classify(self, image: Image.Image) -> SafetyResult: ...


class NoClassifier:
    name = "none"

    def classify(self, image: Image.Image) -> SafetyResult:
        return SafetyResult(labels={}, flagged=False, classifier=self.name)


class NudeNetClassifier:
    name = "nudenet"

    def __init__(self, cfg: SafetyConfig) -> None:
        try:
            from nudenet import NudeDetector
        except ImportError as exc:
            raise SafetyUnavailable(
                "safety.classifier is 'nudenet' but the nudenet package is not installed "
                "(pip install nudenet), or set it to 'diffusers' or 'none'"
            ) from exc
        self._detector = NudeDetector()
        self._cfg = cfg
        self._lock = threading.Lock()  # one ONNX session; keep calls serial

    def classify(self, image: Image.Image) -> SafetyResult:
        rgba = np.asarray(image.convert("RGBA"))  # NudeNet converts RGBA→BGR itself
        with self._lock:
            detections = self._detector.detect(rgba)
        labels = dict.fromkeys(NUDENET_LABELS, 0.0)
        for det in detections:
            label, score = str(det["class"]), float(det["score"])
            labels[label] = max(labels.get(label, 0.0), round(score, 4))
        return SafetyResult(labels, _flagged(labels, self._cfg), self.name)


class DiffusersClassifier:
    """StableDiffusionSafetyChecker from a local folder (safety_checker/, feature_extractor/)."""

    name = "diffusers"

    def __init__(self, cfg: SafetyConfig) -> None:
        folder = Path(cfg.diffusers_checker).expanduser() if cfg.diffusers_checker else None
        if folder is None or not (folder / "safety_checker").is_dir():
            raise SafetyUnavailable(
                "safety.classifier is 'diffusers' but safety.diffusers_checker does not point to "
                "a local folder with safety_checker/ and feature_extractor/ "
                f"(got {cfg.diffusers_checker!r}); weights are never downloaded"
            )
        from diffusers.pipelines.stable_diffusion.safety_checker import (
            StableDiffusionSafetyChecker,
        )
        from transformers import CLIPImageProcessor

        self._checker = StableDiffusionSafetyChecker.from_pretrained(
            str(folder / "safety_checker"), local_files_only=True
        )
        self._processor = CLIPImageProcessor.from_pretrained(
            str(folder / "feature_extractor"), local_files_only=True
        )
        self._cfg = cfg
        self._lock = threading.Lock()

    def classify(self, image: Image.Image) -> SafetyResult:
        import torch

        arr = np.asarray(image.convert("RGB"), dtype=np.float32)[None] / 255.0
        inputs = self._processor(images=[image.convert("RGB")], return_tensors="pt")
        with self._lock, torch.no_grad():
            _, has_nsfw = self._checker(images=arr.copy(), clip_input=inputs.pixel_values)
        labels = {NSFW_CONCEPT: 1.0 if has_nsfw[0] else 0.0}
        return SafetyResult(labels, bool(has_nsfw[0]), self.name)


def make_classifier(cfg: SafetyConfig) -> Classifier:
    """The classifier named in config; SafetyUnavailable with a clear sentence if it can't run."""
    if cfg.classifier == "nudenet":
        return NudeNetClassifier(cfg)
    if cfg.classifier == "diffusers":
        return DiffusersClassifier(cfg)
    return NoClassifier()


def _flagged(labels: dict[str, float], cfg: SafetyConfig) -> bool:
    return any(labels.get(label, 0.0) >= cfg.threshold for label in cfg.flagged_labels)
