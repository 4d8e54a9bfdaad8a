"""The diffusers backend on the tiny model: batching, seeds, limits, OOM splitting, loading."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from generator.backend import DiffusersBackend, RequestImages
from generator.config import ModelConfig
from generator.requests import build_request
from generator.service import GeneratorService
from generator.types import GenerationError, GenerationRequest, JobResult, Progress
from tests.generator.conftest import make_config

SEEDS = [11, 22, 33, 44]


def req(job_id: int, seeds: list[int], prompt: str = "a lighthouse at dusk", **kw: Any):
    return GenerationRequest(job_id=job_id, prompt=prompt, seeds=seeds, **kw)


def pixels(result: RequestImages | GenerationError) -> list[np.ndarray]:
    assert isinstance(result, RequestImages), result
    return [np.asarray(img, dtype=np.int16) for img in result.images]


def test_batch_of_four_seeds_matches_four_single_runs(service: GeneratorService) -> None:
    backend = service.backend
    calls_before = backend.stats.calls
    batched = backend.generate([req(i, [s], negative_prompt="fog") for i, s in enumerate(SEEDS)])
    assert backend.stats.calls == calls_before + 1  # one pipeline call for the whole batch
    assert backend.stats.sizes[-1] == 4
    singles = [backend.generate([req(9, [s], negative_prompt="fog")])[0] for s in SEEDS]
    for b, s in zip(batched, singles, strict=True):
        (bi,), (si,) = pixels(b), pixels(s)
        assert np.abs(bi - si).max() <= 2  # float noise of batched matmuls only
    first, second = pixels(batched[0])[0], pixels(batched[1])[0]
    assert np.abs(first - second).mean() > 5  # different seeds → different images


def test_seed_reproduces_inside_a_multi_seed_request(service: GeneratorService) -> None:
    mixed = service.backend.generate([req(1, [5, 6, 7], prompt="red"), req(2, [8], prompt="blue")])
    alone = service.backend.generate([req(3, [6], prompt="red")])
    assert np.abs(pixels(mixed[0])[1] - pixels(alone[0])[0]).max() <= 2


def test_prompt_and_negative_prompt_change_the_image(service: GeneratorService) -> None:
    base, other_prompt, other_neg = service.backend.generate(
        [
            req(1, [3], prompt="a cat", negative_prompt=""),
            req(2, [3], prompt="a spaceship over mountains", negative_prompt=""),
            req(3, [3], prompt="a cat", negative_prompt="cat"),
        ]
    )
    assert np.abs(pixels(base)[0] - pixels(other_prompt)[0]).max() > 0
    assert np.abs(pixels(base)[0] - pixels(other_neg)[0]).max() > 0


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"steps": 51}, ["steps 51", "1..50"]),
        ({"steps": 0}, ["steps 0", "1..50"]),
        ({"width": 512}, ["width 512", "64..256"]),
        ({"height": 32}, ["height 32", "64..256"]),
        ({"width": 100}, ["width 100", "multiple of 8"]),
        ({"guidance": 25.0}, ["guidance 25.0", "0.0..20.0"]),
        ({"model": "nope"}, ["unknown model 'nope'", "tiny"]),
    ],
)
def test_limits_are_refused_with_bad_option_naming_the_limit(
    service: GeneratorService, options: dict[str, Any], words: list[str]
) -> None:
    bad, good = service.backend.generate([req(1, [1], **options), req(2, [1])])
    assert isinstance(bad, GenerationError)
    assert bad.code == "bad_option" and not bad.retryable
    for word in words:
        assert word in bad.message
    assert isinstance(good, RequestImages)  # the rest of the batch is not punished


def test_empty_seeds_and_negative_seed_are_refused(service: GeneratorService) -> None:
    empty, negative = service.backend.generate([req(1, []), req(2, [-1])])
    assert isinstance(empty, GenerationError) and "seed" in empty.message
    assert isinstance(negative, GenerationError) and "seed -1" in negative.message


def oom_above(limit: int, typed: bool = True):
    def before(kwargs: dict[str, Any]) -> None:
        if len(kwargs["prompt"]) > limit:
            if typed:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            raise RuntimeError("CUDA error: out of memory")

    return before


@pytest.mark.parametrize("typed", [True, False])
def test_out_of_memory_splits_the_batch_in_halves(
    service: GeneratorService, wrap_pipe: Any, typed: bool
) -> None:
    seeds = list(range(100, 108))
    reference = [
        pixels(r)[0] for r in service.backend.generate([req(i, [s]) for i, s in enumerate(seeds)])
    ]
    wrapped = wrap_pipe(oom_above(2, typed))
    results = service.backend.generate([req(i, [s]) for i, s in enumerate(seeds)])
    assert wrapped.calls == [8, 4, 2, 2, 4, 2, 2]
    for got, want in zip(results, reference, strict=True):
        assert np.abs(pixels(got)[0] - want).max() <= 2


def test_single_image_that_does_not_fit_is_too_large_and_service_goes_on(
    service: GeneratorService, wrap_pipe: Any
) -> None:
    wrap_pipe(oom_above(0))
    (err,) = service.generate([req(1, [1], width=128, height=128)])
    assert isinstance(err, GenerationError) and err.code == "too_large"
    assert "128x128" in err.message
    wrap_pipe(lambda kwargs: None)
    (ok,) = service.generate([req(2, [1])])
    assert isinstance(ok, JobResult) and len(ok.images) == 1


def test_other_pipeline_errors_fail_the_batch_retryably(
    service: GeneratorService, wrap_pipe: Any
) -> None:
    def boom(kwargs: dict[str, Any]) -> None:
        raise ValueError("scheduler exploded")

    wrap_pipe(boom)
    results = service.generate([req(1, [1]), req(2, [2])])
    for err in results:
        assert isinstance(err, GenerationError)
        assert err.code == "generation_failed" and err.retryable
        assert "scheduler exploded" in err.message


def test_progress_hook_sees_every_denoising_step(service: GeneratorService) -> None:
    seen: list[tuple[str, Any]] = []

    class Recorder(Progress):
        def batch_started(self, model: str, n_images: int, steps: int) -> None:
            seen.append(("batch", (model, n_images, steps)))

        def step(self, step: int, total: int) -> None:
            seen.append(("step", (step, total)))

    service.generate([req(1, [1, 2], steps=3)], progress=Recorder())
    assert seen == [("batch", ("tiny", 2, 3))] + [("step", (i, 3)) for i in (1, 2, 3)]


def test_unreachable_repo_id_is_model_unavailable_in_one_line(tiny_data_dir: Path) -> None:
    cfg = make_config(
        tiny_data_dir,
        models={"real": ModelConfig(source="stabilityai/sd-turbo-not-cached-here", kind="sd2")},
    )
    backend = DiffusersBackend(cfg)
    (err,) = backend.generate([build_request(cfg, 1, "x", model="real", width=64, height=64)])
    assert isinstance(err, GenerationError) and err.code == "model_unavailable"
    assert "'real'" in err.message and "stabilityai/sd-turbo-not-cached-here" in err.message
    assert "\n" not in err.message and "Traceback" not in err.message


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("/nowhere/model.safetensors", ["checkpoint file", "not found"]),
        ("./models/missing-folder", ["model folder", "not found"]),
    ],
)
def test_missing_local_model_is_model_unavailable(
    tiny_data_dir: Path, source: str, words: list[str]
) -> None:
    cfg = make_config(tiny_data_dir, models={"m": ModelConfig(source=source)})
    with pytest.raises(GenerationError) as info:
        DiffusersBackend(cfg).load("m")
    assert info.value.code == "model_unavailable"
    for word in words:
        assert word in info.value.message


def test_least_recently_used_model_is_unloaded(tiny_data_dir: Path) -> None:
    tiny = make_config(tiny_data_dir).models["tiny"]
    models = {"a": tiny, "b": tiny, "c": tiny}
    cfg = make_config(tiny_data_dir, models=models, max_loaded_models=2)
    backend = DiffusersBackend(cfg)
    backend.load("a")
    backend.load("b")
    backend.load("a")  # a is now the most recent
    backend.load("c")
    assert backend.cache.loaded_names() == ["a", "c"]
