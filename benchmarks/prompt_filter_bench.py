"""How long the prompt filter takes on a 1000-character prompt (target: <= 1 ms).

Cases: ordinary prompts (the everyday test prompts joined up to 1000 characters), text full
of accents, leetspeak, letters spaced out one by one (the slow path), emoji, Japanese,
Russian, and text full of numbers (where the guard looks for age expressions). Each check
runs the whole filter: block list, regexes and the prompt guard (fedibot/moderation/guard)
on the prompt and a short negative prompt. The normalisation cache is cleared before every
check, so repeated texts are not free. Baseline: a naive
filter (casefold + one compiled whole-word alternation of the same terms, no normalisation)
on the ordinary text, timed in the same process. Prints figures, then one JSON line.

    .venv/bin/python benchmarks/prompt_filter_bench.py
"""

from __future__ import annotations

import json
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fedibot.config.prompt import PromptFilterConfig  # noqa: E402
from fedibot.moderation.guard.normalize import fold as guard_fold  # noqa: E402
from fedibot.moderation.prompt_filter import PromptFilter, default_list  # noqa: E402

TARGET_US = 1000.0
ROUNDS = 500


def _fill(text: str, size: int = 1000) -> str:
    while len(text) < size:
        text = f"{text}, {text}"
    return text[:size]


def _timings(fn: Callable[[], object], rounds: int = ROUNDS) -> list[float]:
    for _ in range(50):
        fn()
    samples = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - start) / 1000)
    return samples


def _p(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=100)[int(q) - 1]


def main() -> None:
    everyday_lines = (ROOT / "tests/prompt/everyday_prompts.txt").read_text("utf-8").splitlines()
    cases = {
        "everyday": _fill(", ".join(everyday_lines)),
        "accents": _fill("une cathédrale gothique à l'aube, brume légère, détails élégants"),
        "leetspeak": _fill("a c4stl3 0n 4 h1ll @t sun$et, dr4m4t1c l1ght, 8k r3nd3r"),
        "spaced": _fill(" ".join("a castle on a hill at sunset with dramatic clouds")),
        "emoji": _fill("a picnic 🍉🧺🌞 with friends 🐶🐱 under a tree 🌳"),
        "japanese": _fill("夕暮れの丘の上の城、劇的な光、油絵、細部まで描かれた"),
        "russian": _fill("замок на холме на закате, драматический свет, масляная живопись"),
        "numbers": _fill("three castles, ten towers, 12 knights and 40 horses, dos casas"),
    }
    negative = "blurry, lowres, watermark, bad anatomy"
    config = PromptFilterConfig(blocked_terms=["swastika", "gore"], blocked_regexes=[r"\bkkk\b"])
    start = time.perf_counter()
    prompt_filter = PromptFilter(config)
    build_ms = (time.perf_counter() - start) * 1000

    terms = [*default_list("minor_terms"), *default_list("sexual_terms"), "swastika", "gore"]
    naive = re.compile(r"\b(?:" + "|".join(map(re.escape, terms)) + r")\b")

    def naive_check(text: str) -> bool:
        return naive.search(text.casefold()) is None

    print(f"filter built in {build_ms:.1f} ms; {ROUNDS} rounds per case, 1000-char prompts")
    results: dict[str, dict[str, float]] = {}
    for name, text in cases.items():
        assert prompt_filter.check(text, negative).allowed, name

        def check(text: str = text) -> None:
            guard_fold.cache_clear()
            prompt_filter.check(text, negative)

        samples = _timings(check)
        results[name] = {"p50": statistics.median(samples), "p95": _p(samples, 95)}
        print(
            f"  {name:10} p50 {results[name]['p50']:7.1f} us   p95 {results[name]['p95']:7.1f} us"
        )
    baseline = statistics.median(_timings(lambda: naive_check(cases["everyday"])))
    ratio = results["everyday"]["p50"] / baseline
    worst = max(r["p50"] for r in results.values())
    worst95 = max(r["p95"] for r in results.values())
    print(f"  baseline (naive regex, no normalisation) p50 {baseline:.1f} us")
    print(f"  ratio everyday / baseline: {ratio:.1f}x; worst p50 {worst:.1f} us")
    print(f"  worst p95 {worst95:.1f} us")
    print(f"  target p95 <= {TARGET_US:.0f} us: {'met' if worst95 <= TARGET_US else 'MISSED'}")
    print(
        json.dumps(
            {
                "everyday_p50_us": round(results["everyday"]["p50"], 1),
                "everyday_p95_us": round(results["everyday"]["p95"], 1),
                "worst_case_p50_us": round(worst, 1),
                "worst_case_p95_us": round(worst95, 1),
                "baseline_p50_us": round(baseline, 1),
                "ratio_vs_baseline": round(ratio, 2),
                "build_ms": round(build_ms, 1),
                "target_us": TARGET_US,
                "meets_target": worst95 <= TARGET_US,
            }
        )
    )


if __name__ == "__main__":
    main()
