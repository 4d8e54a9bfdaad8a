"""`fedibot worker` whose renders wait at a gate folder, so a test can kill it mid-batch.

usage: python -m tests.e2e_mastodon.gated_worker GATE_DIR --config CONFIG worker

A render of a batch proceeds when GATE_DIR/open exists, or GATE_DIR/pass-<first job id> does
(to let one particular batch through). Everything else is the real `fedibot worker`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from generator.service import GeneratorService
from tests.waiting import wait_until


def main() -> None:
    gate = Path(sys.argv[1])
    render = GeneratorService.render

    def gated(self: GeneratorService, requests: list[Any], progress: Any = None) -> Any:
        passed = gate / f"pass-{requests[0].job_id}"
        wait_until(
            lambda: (gate / "open").exists() or passed.exists(),
            "the test to open the gate",
            timeout=600,
        )
        return render(self, requests, progress)

    GeneratorService.render = gated  # type: ignore[method-assign]
    from fedibot.cli.main import main as cli

    cli(sys.argv[2:])


if __name__ == "__main__":
    main()
