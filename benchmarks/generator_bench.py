"""Batched worker vs naive per-request pipeline calls, same model, same process.

    .venv/bin/python benchmarks/generator_bench.py [--device cpu] [--model tiny]
    # real weights on a GPU (not run in CI):
    .venv/bin/python benchmarks/generator_bench.py --device cuda --model stabilityai/sdxl-turbo \
        --families flux=black-forest-labs/FLUX.1-schnell,sana=Efficient-Large-Model/... --n 32

Then the same comparison for every model family (`--families`): by default tiny random-weight
pipelines of each family built offline (SD 1.x, SD 2.x, SDXL, SD3, FLUX, SANA, SANA-Sprint,
PixArt-Σ), `--family-n` requests each; `name=source` items benchmark real weights instead.

64 queued requests (one image each) are served by the Worker over MemoryWorkSource with
batching (max_batch 8), then the same 64 requests are run by calling the pipeline once per
request in a loop. Prints images/s of both, the ratio, and the worker overhead = worker wall time
/ pure pipeline time of the same batches − 1. The last line is one JSON object.
Safety classification is off by default (the baseline has none); `--safety nudenet` adds it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from generator.config import GeneratorConfig, ModelConfig, SafetyConfig
from generator.families import KINDS
from generator.requests import build_request
from generator.service import GeneratorService
from generator.tiny import TINY_FAMILIES
from generator.types import GenerationRequest
from generator.worker import Worker
from tests.memory_source import MemoryWorkSource


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    ap.add_argument("--dtype", default="auto", choices=["auto", "float32", "float16", "bfloat16"])
    ap.add_argument("--model", default="tiny", help="'tiny', a repo id, folder or .safetensors")
    ap.add_argument("--kind", default=None, choices=[k for k in KINDS if k != "tiny"])
    ap.add_argument("--n", type=int, default=64, help="queued requests")
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--guidance", type=float, default=None)
    ap.add_argument("--size", type=int, default=None, help="width = height")
    ap.add_argument("--safety", default="none", choices=["none", "nudenet"])
    ap.add_argument("--threads", type=int, default=1, help="CPU torch threads (0: torch default)")
    ap.add_argument("--data-dir", default=None, help="default: a temp dir")
    ap.add_argument(
        "--families",
        default=",".join(TINY_FAMILIES),
        help="comma list: a kind (tiny random-weight build) or name=source (real weights); "
        "'none' to skip",
    )
    ap.add_argument("--family-n", type=int, default=16, help="requests per family")
    return ap.parse_args()


def make_config(args: argparse.Namespace, data_dir: str) -> GeneratorConfig:
    models = {"tiny": ModelConfig(source="builtin:tiny", kind="tiny")}
    if args.model != "tiny":
        models = {"bench": ModelConfig(source=args.model, kind=args.kind)}
    return GeneratorConfig(
        device=args.device,
        dtype=args.dtype,
        models=models,
        default_model="tiny" if args.model == "tiny" else "bench",
        max_batch=args.max_batch,
        data_dir=data_dir,
        safety=SafetyConfig(classifier=args.safety),
        idle_poll_seconds=0.01,
        cpu_threads=args.threads or None,
    )


def requests(cfg: GeneratorConfig, args: argparse.Namespace, n: int, base: int):
    size = args.size
    return [
        build_request(
            cfg,
            base + i,
            f"a watercolour painting of lighthouse number {i}",
            seed=1000 + i,
            width=size,
            height=size,
            steps=args.steps,
            guidance=args.guidance,
        )
        for i in range(n)
    ]


def naive(service: GeneratorService, reqs: list[GenerationRequest]) -> float:
    """The family's pipeline called once per request in a loop; returns seconds."""
    import torch

    from generator.models import call_kwargs

    loaded = service.backend.load(reqs[0].model)
    started = time.perf_counter()
    for r in reqs:
        loaded.pipe(
            **call_kwargs(
                loaded,
                loaded.pipe,
                prompts=[r.prompt],
                negatives=[r.negative_prompt],
                width=r.width,
                height=r.height,
                steps=r.steps,
                guidance=r.guidance,
                generator=[torch.Generator("cpu").manual_seed(r.seeds[0])],
                output_type="pil",
            )
        )
    return time.perf_counter() - started


async def batched(service: GeneratorService, cfg: GeneratorConfig, reqs) -> tuple[float, float]:
    """Worker over MemoryWorkSource; returns (wall seconds, pipeline seconds inside it)."""
    stats = service.backend.stats
    before = stats.pipeline_seconds
    source = MemoryWorkSource(reqs)
    started = time.perf_counter()
    await Worker(source, service, cfg, "bench", exit_when_empty=True).run()
    wall = time.perf_counter() - started
    assert len(source.results) == len(reqs), source.errors
    return wall, stats.pipeline_seconds - before


def compare(
    cfg: GeneratorConfig, args: argparse.Namespace, n: int
) -> tuple[dict[str, float], GenerationRequest]:
    """Load the default model, warm up, then batched worker vs naive loop."""
    service = GeneratorService(cfg)
    service.preload()
    warm = requests(cfg, args, cfg.max_batch, 900_000)
    service.generate(warm)  # warm-up: both batch shapes
    naive(service, warm[:2])
    reqs = requests(cfg, args, n, 0)
    wall, pipe_s = asyncio.run(batched(service, cfg, reqs))
    naive_s = naive(service, requests(cfg, args, n, 100_000))
    service.close()
    batched_ips, naive_ips = n / wall, n / naive_s
    return {
        "batched_images_per_s": round(batched_ips, 3),
        "naive_images_per_s": round(naive_ips, 3),
        "ratio": round(batched_ips / naive_ips, 3),
        "overhead": round(wall / pipe_s - 1, 4),
    }, reqs[0]


def family_configs(args: argparse.Namespace, data_dir: str) -> list[tuple[str, GeneratorConfig]]:
    """One config per --families item; tiny builds go under data_dir/models/bench-KIND."""
    from generator.tiny import ensure_family

    out = []
    for item in [i.strip() for i in args.families.split(",") if i.strip()]:
        if item == "none":
            return []
        if "=" in item:
            name, source = item.split("=", 1)
            mc = ModelConfig(source=source)
        else:
            name = item
            folder = ensure_family(item, Path(data_dir) / "models" / f"bench-{item}")
            mc = ModelConfig.model_validate(
                {
                    "source": str(folder),
                    "kind": "sd2" if item == "sd2" else None,
                    "options": {"max_sequence_length": 16},
                    "preset": {"width": 64, "height": 64, "steps": 2, "max_width": 256},
                }
            )
        base = make_config(args, data_dir)
        out.append((name, base.model_copy(update={"models": {name: mc}, "default_model": name})))
    return out


def main() -> None:
    args = parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.data_dir or tmp
        cfg = make_config(args, data_dir)
        t0 = time.perf_counter()
        main_figures, r = compare(cfg, args, args.n)
        import torch

        from generator.device import resolve_device

        print(
            f"device {resolve_device(cfg.device)}, model {cfg.default_model}, torch threads "
            f"{torch.get_num_threads()}, {time.perf_counter() - t0:.1f}s"
        )
        print(
            f"{args.n} requests, {r.width}x{r.height}, {r.steps} steps, guidance {r.guidance}, "
            f"max_batch {args.max_batch}, safety {args.safety}"
        )
        _print(cfg.default_model, main_figures)
        families: dict[str, dict[str, float]] = {}
        fam_args = argparse.Namespace(**{**vars(args), "size": None, "steps": None})
        fam_args.guidance = None
        for name, fcfg in family_configs(args, data_dir):
            t0 = time.perf_counter()
            figures, r = compare(fcfg, fam_args, args.family_n)
            families[name] = figures
            _print(f"{name} ({args.family_n} requests, {r.width}x{r.height}, {r.steps} steps)",
                   figures)  # fmt: skip
            print(f"  {time.perf_counter() - t0:.1f}s")
    print(json.dumps({**main_figures, "families": families}))


def _print(name: str, f: dict[str, float]) -> None:
    print(
        f"{name}: batched {f['batched_images_per_s']:8.2f} images/s, naive "
        f"{f['naive_images_per_s']:8.2f} images/s, ratio {f['ratio']:.2f}x, worker overhead "
        f"{f['overhead'] * 100:.1f}%"
    )


if __name__ == "__main__":
    main()
