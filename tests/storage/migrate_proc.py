"""One process migrating a database: waits for a start file, then runs `upgrade`.

usage: python -m tests.storage.migrate_proc DB_URL READY_FILE GO_FILE
"""

from __future__ import annotations

import sys
from pathlib import Path

from fedibot.storage.database import Database
from fedibot.storage.migrate import current_revision, head_revision, upgrade_blocking
from tests.waiting import wait_until


def main(url: str, ready: str, go: str) -> None:
    db = Database(url)
    Path(ready).touch()
    wait_until(lambda: Path(go).exists(), "the test to say go", timeout=120)
    upgrade_blocking(db)
    assert current_revision(db) == head_revision()
    db.close()


if __name__ == "__main__":
    main(*sys.argv[1:4])
