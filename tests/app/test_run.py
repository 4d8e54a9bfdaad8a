"""`fedibot run` as a process: /healthz and /metrics, a clean exit on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp

from fedibot.app import App
from fedibot.config.loader import parse_config
from tests.queue.test_queue import job

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_health_and_metrics_report_the_queue(tmp_path):
    config = parse_config(
        {
            "data_dir": str(tmp_path),
            "database": {"url": f"sqlite:///{tmp_path}/bot.db"},
            "server": {"port": 0},
        }
    )
    app = App(config, with_worker=False)
    await app.start()
    try:
        await app.queue.enqueue(job("1"))
        await app.queue.enqueue(job("2"))
        from fedibot.ops.server import record_queue_depth

        record_queue_depth(await app.queue.stats())
        base = f"http://127.0.0.1:{app.ops.bound_port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/healthz") as resp:
                health = await resp.json()
                assert resp.status == 200
            async with http.get(f"{base}/metrics") as resp:
                metrics = await resp.text()
        assert health["ok"] is True and health["queue"] == {"queued": 2}
        assert 'fedibot_jobs{state="queued"} 2.0' in metrics
        for name in (
            "fedibot_jobs_finished_total",
            "fedibot_generation_seconds",
            "fedibot_reply_latency_seconds",
            "fedibot_adapter_errors_total",
        ):
            assert name in metrics
    finally:
        await app.stop()


async def test_run_serves_health_and_stops_cleanly_on_sigterm(tmp_path):
    port = free_port()
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f'data_dir = "{tmp_path}"\n[database]\nurl = "sqlite:///{tmp_path}/bot.db"\n'
        f"[server]\nport = {port}\n"
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fedibot",
            "--config",
            str(cfg),
            "--log-format",
            "json",
            "run",
            "--no-worker",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        health = None
        async with aiohttp.ClientSession() as http:
            deadline = asyncio.get_running_loop().time() + 120
            while health is None and proc.poll() is None:
                assert asyncio.get_running_loop().time() < deadline, "never became healthy"
                try:
                    async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                        health = await resp.json()
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)
        assert health is not None and health["ok"] is True
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.to_thread(proc.communicate, timeout=30)
        assert proc.returncode == 0, err[-2000:]
        assert "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
