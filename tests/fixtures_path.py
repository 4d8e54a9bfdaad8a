"""Where the recorded traffic lives: ../shared/fixtures beside the checkout (or
$FEDIBOT_FIXTURES)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("FEDIBOT_FIXTURES", REPO_ROOT.parent / "shared" / "fixtures"))
MASTODON_CASSETTES = FIXTURES / "mastodon" / "cassettes"
FEDISEER_FIXTURES = FIXTURES / "fediseer"
LEMMY_FIXTURES = FIXTURES / "lemmy"
