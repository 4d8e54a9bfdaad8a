"""`fedibot run` says one clear line on SIGTERM and one when its orderly shutdown is done."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.fixtures_path import REPO_ROOT
from tests.waiting import wait_until


def test_sigterm_and_orderly_shutdown_are_logged(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        f'data_dir = "{tmp_path}"\n'
        f'[database]\nurl = "sqlite:///{tmp_path}/bot.db"\n'
        "[server]\nenabled = false\n"
    )
    log = (tmp_path / "bot.log").open("w+b")
    bot = subprocess.Popen(
        [sys.executable, "-m", "fedibot", "--config", str(config), "run", "--no-worker"],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        def started() -> bool:
            # the "no accounts" hint comes right before the app starts; wait for the start
            assert bot.poll() is None, (tmp_path / "bot.log").read_text()
            return b"nothing to listen to" in (tmp_path / "bot.log").read_bytes()

        wait_until(started, "the bot to start")
        wait_until(lambda: (tmp_path / "bot.db").exists(), "the database file")
        os.kill(bot.pid, signal.SIGTERM)
        assert bot.wait(60) == 0
    finally:
        if bot.poll() is None:
            bot.kill()
        log.close()
    text = (tmp_path / "bot.log").read_text()
    assert text.count("SIGTERM received: stopping") == 1, text
    assert "orderly shutdown complete" in text, text
