"""The house rules for imports: no cycles inside the application, no test code in it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "import_graph.py"


def _load():
    spec = importlib.util.spec_from_file_location("import_graph", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["import_graph"] = module
    spec.loader.exec_module(module)
    return module


graph = _load()


def test_the_application_has_no_import_cycles_and_no_forbidden_imports() -> None:
    assert graph.problems() == []


def test_the_checker_finds_a_cycle_through_three_modules() -> None:
    found = graph.cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}})
    assert found == [["a", "b", "c"]]


def test_the_checker_sees_imports_inside_functions_but_not_type_checking_blocks(
    tmp_path: Path,
) -> None:
    path = tmp_path / "m.py"
    path.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from fedibot.app import App\n"
        "def f():\n    from fedibot.storage.database import Database\n"
    )
    modules = {"fedibot.app": path, "fedibot.storage.database": path, "fedibot.x": path}
    assert graph.imports_of("fedibot.x", path, modules) == {"fedibot.storage.database"}
