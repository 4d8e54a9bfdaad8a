"""pyproject.toml keeps to current packaging metadata (no deprecation warning on install)."""

from __future__ import annotations

import tomllib

from tests.fixtures_path import REPO_ROOT


def test_license_is_an_spdx_expression_not_the_deprecated_table() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "AGPL-3.0-or-later"
    assert not any(c.startswith("License ::") for c in project.get("classifiers", []))


def test_mypy_is_a_dev_tool_and_configured() -> None:
    data = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    assert any(d.startswith("mypy") for d in data["project"]["optional-dependencies"]["dev"])
    assert data["tool"]["mypy"]["python_version"] == "3.11"
    assert ".venv/bin/mypy" in (REPO_ROOT / ".ci" / "run").read_text()
