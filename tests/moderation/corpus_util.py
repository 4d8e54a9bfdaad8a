"""Reading the corpus files in tests/moderation/corpus (format: see the files' headers)."""

from __future__ import annotations

from pathlib import Path

CORPUS = Path(__file__).with_name("corpus")
SEPARATOR = " ### "


def read_corpus(name: str) -> list[tuple[str, str]]:
    """(prompt, negative) for every request line of corpus/NAME.txt."""
    requests: list[tuple[str, str]] = []
    for line in (CORPUS / f"{name}.txt").read_text("utf-8").splitlines():
        if not line.strip() or line.startswith("# "):
            continue
        prompt, _, negative = line.partition(SEPARATOR)
        requests.append((prompt, negative))
    return requests
