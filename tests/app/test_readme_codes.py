"""The README's list of error codes names every code a job can end with."""

from __future__ import annotations

import re
from typing import get_args

from fedibot.moderation.policy import Code
from fedibot.outbound.compose import ERROR_SENTENCES
from tests.fixtures_path import REPO_ROOT

PROMPT_CODES = {"bad_option", "empty_prompt", "prompt_too_long", "unknown_model", "unknown_style"}


def test_every_error_code_is_in_the_readme() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme[readme.index("Stable codes:") : readme.index("## Configuration")]
    listed = set(re.findall(r"`([a-z_]+)`", section))
    codes = set(ERROR_SENTENCES) | PROMPT_CODES | (set(get_args(Code)) - {""})
    assert codes - listed == set()
