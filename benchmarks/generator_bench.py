"""Batched worker vs naive per-request pipeline calls, same model, same process.

    .venv/bin/python benchmarks/generator_bench.py [--device cpu] [--model tiny]

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

from generator.config import GeneratorConfig, ModelConfig, ModelPreset, SafetyConfig
from generator.requests import build_request
from generator.service import GeneratorService
from generator.types import GenerationRequest
from generator.worker import Worker
from tests.memory_source import MemoryWorkSource


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    ap.add_argument("--dtype", default="auto", choices=["auto", "float32", "float16", "bfloat16"])
    ap.add_argument("--model", default="tiny", help="'tiny', a repo id, folder or .safetensors")
    ap.add_argument("--kind", default="sd15", choices=["sd15", "sd2", "sdxl"])
    ap.add_argument("--n", type=int, default=64, help="queued requests")
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--guidance", type=float, default=None)
    ap.add_argument("--size", type=int, default=None, help="width = height")
    ap.add_argument("--safety", default="none", choices=["none", "nudenet"])
    ap.add_argument("--threads", type=int, default=1, help="CPU torch threads (0: torch default)")
    ap.add_argument("--data-dir", default=None, help="default: a temp dir")
    return ap.parse_args()


def make_config(args: argparse.Namespace, data_dir: str) -> GeneratorConfig:
    models = {}
    if args.model != "tiny":
        models["bench"] = ModelConfig(
            source=args.model,
            kind=args.kind,
            preset=ModelPreset(steps=4, guidance=0.0, width=512, height=512, max_steps=100),
        )
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
    """The pipeline called once per request in a loop; returns seconds."""
    import torch

    pipe = service.backend.load(reqs[0].model).pipe
    started = time.perf_counter()
    for r in reqs:
        pipe(
            prompt=[r.prompt],
            negative_prompt=[r.negative_prompt],
            width=r.width,
            height=r.height,
            num_inference_steps=r.steps,
            guidance_scale=r.guidance,
            generator=[torch.Generator("cpu").manual_seed(r.seeds[0])],
            output_type="pil",
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


def main() -> None:
    args = parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as tmp:
        cfg = make_config(args, args.data_dir or tmp)
        service = GeneratorService(cfg)
        t0 = time.perf_counter()
        service.preload()
        backend = service.backend
        print(
            f"device {backend.device} ({backend.dtype}), model {cfg.default_model} "
            f"loaded in {time.perf_counter() - t0:.1f}s, torch threads "
            f"{__import__('torch').get_num_threads()}"
        )
        warm = requests(cfg, args, args.max_batch, 900_000)
        service.generate(warm)  # warm-up: both batch shapes
        naive(service, warm[:2])
        reqs = requests(cfg, args, args.n, 0)
        wall, pipe_s = asyncio.run(batched(service, cfg, reqs))
        naive_s = naive(service, requests(cfg, args, args.n, 100_000))
        service.close()
    r = reqs[0]
    batched_ips, naive_ips = args.n / wall, args.n / naive_s
    ratio, overhead = batched_ips / naive_ips, wall / pipe_s - 1
    print(
        f"{args.n} requests, {r.width}x{r.height}, {r.steps} steps, guidance {r.guidance}, "
        f"max_batch {args.max_batch}, safety {args.safety}"
    )
    print(f"batched worker : {wall:7.3f}s  {batched_ips:8.2f} images/s (pipeline {pipe_s:.3f}s)")
    print(f"naive loop     : {naive_s:7.3f}s  {naive_ips:8.2f} images/s")
    print(f"ratio {ratio:.2f}x, worker overhead {overhead * 100:.1f}%")
    print(
        json.dumps(
            {
                "batched_images_per_s": round(batched_ips, 3),
                "naive_images_per_s": round(naive_ips, 3),
                "ratio": round(ratio, 3),
                "overhead": round(overhead, 4),
            }
        )
    )


if __name__ == "__main__":
    main()
