"""Generator fixtures: the tiny model is built once per session in a temp dir; no downloads."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before anything imports huggingface_hub
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from generator.config import GeneratorConfig, SafetyConfig
from generator.service import GeneratorService

# `tiny_data_dir` (the tiny model built once per session) lives in tests/conftest.py.


def make_config(data_dir: Path, **overrides: Any) -> GeneratorConfig:
    base: dict[str, Any] = {
        "device": "cpu",
        "data_dir": str(data_dir),
        "safety": SafetyConfig(classifier="none"),
        "lease_seconds": 30.0,
        "heartbeat_seconds": 5.0,
        "idle_poll_seconds": 0.05,
        "cpu_threads": 1,  # tiny ops: extra threads only add sync cost on a busy 2-core box
    }
    base.update(overrides)
    return GeneratorConfig(**base)


@pytest.fixture(scope="session")
def config(tiny_data_dir: Path) -> GeneratorConfig:
    return make_config(tiny_data_dir)


@pytest.fixture(scope="session")
def service(config: GeneratorConfig) -> Iterator[GeneratorService]:
    svc = GeneratorService(config)
    svc.preload("tiny")
    yield svc
    svc.close()


class WrappedPipe:
    """Delegates to a real pipeline; `before(kwargs)` runs first and may raise or sleep."""

    def __init__(self, pipe: Any, before: Any) -> None:
        self._pipe = pipe
        self._before = before
        self.calls: list[int] = []

    def __call__(self, **kwargs: Any) -> Any:
        self.calls.append(len(kwargs["prompt"]))
        self._before(kwargs)
        return self._pipe(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pipe, name)


@pytest.fixture
def wrap_pipe(service: GeneratorService) -> Iterator[Any]:
    """Install a WrappedPipe around the warm tiny pipeline for one test, then restore it."""
    loaded = service.backend.cache.get("tiny")
    original = loaded.pipe

    def install(before: Any) -> WrappedPipe:
        wrapped = WrappedPipe(original, before)
        loaded.pipe = wrapped
        return wrapped

    yield install
    loaded.pipe = original


# --- tiny pipelines of every family (built once per session, loaded with `kind` left out) ---

FAMILY_KINDS = ("sd15", "sd2", "sdxl", "sd3", "flux", "sana", "sana_sprint", "pixart_sigma")


@pytest.fixture(scope="session")
def family_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from generator.tiny import build_family, build_tiny_controlnet

    root = tmp_path_factory.mktemp("families")
    for kind in FAMILY_KINDS:
        build_family(kind, root / kind)
    build_tiny_controlnet(root / "qr-controlnet")
    return root


def family_models(root: Path) -> dict[str, Any]:
    from generator.config import ModelConfig

    models: dict[str, Any] = {}
    for kind in FAMILY_KINDS:
        # sd2 has the SD 1.x pipeline class; only real SD 2 weights (1024-wide text) tell them
        # apart, so the tiny one names its kind; all others are detected from model_index.json
        models[kind] = ModelConfig(
            source=str(root / kind),
            kind="sd2" if kind == "sd2" else None,
            options={"max_sequence_length": 16},
            preset={"width": 64, "height": 64, "max_width": 256, "max_height": 256},
        )
    return models


@pytest.fixture(scope="session")
def family_service(family_root: Path, tiny_data_dir: Path) -> Iterator[GeneratorService]:
    cfg = make_config(tiny_data_dir, models=family_models(family_root), max_loaded_models=8)
    svc = GeneratorService(cfg)
    yield svc
    svc.close()
