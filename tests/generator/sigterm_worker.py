"""Run a Worker over a MemoryWorkSource that logs to a file; used by test_worker_sigterm.py.

usage: python -m tests.generator.sigterm_worker DATA_DIR LOG_PATH
Each pipeline call logs a `pipeline_started` line, then computes until the worker has taken
the signal (at most 60 s), so the signal lands mid-batch however slow the machine is.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

os.environ["HF_HUB_OFFLINE"] = "1"

from generator.service import GeneratorService
from generator.types import GenerationRequest
from generator.worker import Worker, install_signal_handlers
from tests.generator.conftest import WrappedPipe, make_config
from tests.memory_source import MemoryWorkSource
from tests.waiting import wait_until


async def main(data_dir: Path, log_path: Path) -> None:
    config = make_config(data_dir, max_batch=4)
    service = GeneratorService(config)
    loaded = service.backend.load("tiny")

    def slow(kwargs: dict[str, Any]) -> None:
        with open(log_path, "a") as fh:
            fh.write(json.dumps({"event": "pipeline_started", "n": len(kwargs["prompt"])}) + "\n")
        wait_until(lambda: worker.stopping, "the SIGTERM to stop the worker")

    loaded.pipe = WrappedPipe(loaded.pipe, slow)
    requests = [GenerationRequest(job_id=i, prompt=f"p{i}", seeds=[i]) for i in range(12)]
    source = MemoryWorkSource(requests, log_path=log_path)
    worker = Worker(source, service, config, "w1")
    install_signal_handlers(worker)
    await worker.run()
    with open(log_path, "a") as fh:
        fh.write(json.dumps({"event": "exited", "pending": source.pending}) + "\n")


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2])))
