"""The durable job queue: one transaction per state change, so a crash anywhere resumes from
the database. `JobQueue` puts the queue's sides together (after procrastinate's `manager`):

- `fedibot.queue.core` — settings, tables, hot-path statements, the `_transition` hook;
- `fedibot.queue.generation` — enqueue, claims under a lease, attempts, expiry;
- `fedibot.queue.replies` — the reply state machine and withholding;
- `fedibot.queue.maintenance` — admin actions, reads, the retention purge;
- `fedibot.queue.horde_side` — claims for the AI Horde and its overflow signals.
"""

from __future__ import annotations

from fedibot.queue.core import (  # re-exported: the queue's public names
    CLAIM_COLUMNS,
    HORDE_PENDING,
    EnqueueResult,
    NewJob,
    PictureInput,
    QueueSettings,
    backoff_seconds,
    batch_key,
    horde_jobs,
    images,
    inputs,
    jobs,
    key_mode,
    options_mode,
    workers,
)
from fedibot.queue.generation import GenerationSide
from fedibot.queue.horde_side import HordeSide
from fedibot.queue.maintenance import Maintenance
from fedibot.queue.replies import ReplySide


class JobQueue(GenerationSide, ReplySide, Maintenance, HordeSide):
    """All state changes of jobs. Safe to share between tasks, processes and machines.

    Each public method is one transaction run in the database thread (`Database.run`); the
    `_…` twins hold the SQL and take the connection.
    """


__all__ = [
    "CLAIM_COLUMNS",
    "HORDE_PENDING",
    "EnqueueResult",
    "JobQueue",
    "NewJob",
    "PictureInput",
    "QueueSettings",
    "backoff_seconds",
    "batch_key",
    "horde_jobs",
    "images",
    "inputs",
    "jobs",
    "key_mode",
    "options_mode",
    "workers",
]
