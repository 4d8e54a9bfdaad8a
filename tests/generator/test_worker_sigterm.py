"""SIGTERM mid-batch: the worker finishes the batch, hands back the prefetched one, exits 0."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.fixtures_path import REPO_ROOT


def read_events(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_sigterm_finishes_the_current_batch_and_exits_cleanly(
    tiny_data_dir: Path, tmp_path: Path
) -> None:
    log = tmp_path / "events.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.generator.sigterm_worker", str(tiny_data_dir), str(log)],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        while not any(e["event"] == "pipeline_started" for e in read_events(log)):
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            assert time.monotonic() < deadline, "the worker never started a batch"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=60)[0].decode()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    events = read_events(log)
    claims = [e["job_ids"] for e in events if e["event"] == "claim"]
    first = claims[0]
    assert len(first) == 4
    completed = [e["job_id"] for e in events if e["event"] == "complete"]
    assert completed == first  # the batch in flight was finished and reported
    for e in events:
        if e["event"] == "complete":
            assert all(Path(p).is_file() for p in e["paths"])
    handed_back = [e["job_id"] for e in events if e["event"] == "fail"]
    assert all(e["code"] == "interrupted" for e in events if e["event"] == "fail")
    assert handed_back == [jid for ids in claims[1:] for jid in ids]  # prefetch given back
    assert sum(e["event"] == "pipeline_started" for e in events) == 1  # no new batch began
    assert events[-1] == {"event": "exited", "pending": 12 - len(first)}
