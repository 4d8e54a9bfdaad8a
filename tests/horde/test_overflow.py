"""The routing rule as a table."""

from __future__ import annotations

from pathlib import Path

import pytest

from generator.horde.overflow import OverflowSignals, decide
from tests.horde.conftest import make_config

WAIT, GONE = 120.0, 60.0  # the config below: overflow_when_expected_wait_s / _no_local_worker_s


def cfg(backend: str = "local+horde"):  # type: ignore[no-untyped-def]
    return make_config(
        "http://h/api",
        Path("."),
        backend,
        overflow_when_expected_wait_s=WAIT,
        overflow_when_no_local_worker_s=GONE,
        max_in_flight=4,
    )


S = OverflowSignals
ROWS = [
    # backend, queued, images/s, since heartbeat, in flight, paused → route
    ("local", 10_000, 0.1, None, 0, False, "local"),
    ("horde", 0, 10.0, 1.0, 0, False, "horde"),
    ("local+horde", 10, 1.0, 5.0, 0, False, "local"),  # 10 s wait
    ("local+horde", 120, 1.0, 5.0, 0, False, "local"),  # exactly the limit stays local
    ("local+horde", 121, 1.0, 5.0, 0, False, "horde"),  # over the limit
    ("local+horde", 30, 0.2, 5.0, 0, False, "horde"),  # slow worker: 150 s
    ("local+horde", 30, None, 5.0, 0, False, "local"),  # no speed estimate yet
    ("local+horde", 1, 1.0, None, 0, False, "horde"),  # never saw a local worker
    ("local+horde", 1, 1.0, 61.0, 0, False, "horde"),  # local worker gone
    ("local+horde", 1, 1.0, 60.0, 0, False, "local"),
    ("local+horde", 500, 1.0, 5.0, 4, False, "local"),  # Horde slots full
    ("local+horde", 500, 1.0, 5.0, 3, False, "horde"),
    ("local+horde", 500, 1.0, None, 0, True, "local"),  # paused (IP timeout)
]


@pytest.mark.parametrize(("backend", "queued", "speed", "since", "flying", "paused", "route"), ROWS)
def test_route(backend, queued, speed, since, flying, paused, route) -> None:  # type: ignore[no-untyped-def]
    assert decide(S(queued, speed, since, flying, paused), cfg(backend)) == route
