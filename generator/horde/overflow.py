"""Where the next job runs: a pure function of a few signals and the config (table-tested)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from generator.config import GeneratorConfig

Route = Literal["local", "horde"]


@dataclass(frozen=True)
class OverflowSignals:
    """What the queue knows right now. None = unknown (e.g. no local worker seen yet)."""

    queued_images: int  # images waiting for the local worker(s), including this job's
    local_images_per_s: float | None  # recent local throughput (all local workers together)
    seconds_since_local_heartbeat: float | None  # since any local worker last claimed/beat
    horde_in_flight: int = 0
    horde_paused: bool = False  # the Horde timed out our IP, or the operator paused it


def expected_wait_s(s: OverflowSignals) -> float | None:
    """Seconds the queue would take at the local speed; None without a speed estimate."""
    if not s.local_images_per_s or s.local_images_per_s <= 0:
        return None
    return s.queued_images / s.local_images_per_s


def decide(s: OverflowSignals, config: GeneratorConfig) -> Route:
    """`local` or `horde` for the next queued job (the Horde side also needs a free slot).

    local+horde: the Horde when no local worker was seen for `overflow_when_no_local_worker_s`,
    or when the expected local wait exceeds `overflow_when_expected_wait_s`; local otherwise,
    and always local while the Horde is paused or `max_in_flight` requests are open.
    """
    if config.backend == "local":
        return "local"
    if config.backend == "horde":
        return "horde"
    h = config.horde
    if s.horde_paused or s.horde_in_flight >= h.max_in_flight:
        return "local"
    gone = s.seconds_since_local_heartbeat
    if gone is None or gone > h.overflow_when_no_local_worker_s:
        return "horde"
    wait = expected_wait_s(s)
    if wait is not None and wait > h.overflow_when_expected_wait_s:
        return "horde"
    return "local"
