"""Prometheus metrics (one registry per process; served on /metrics by `fedibot run`)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry()

QUEUE_DEPTH = Gauge(
    "fedibot_jobs", "Jobs per state (refreshed every few seconds)", ["state"], registry=REGISTRY
)
JOBS_FINISHED = Counter(
    "fedibot_jobs_finished_total", "Jobs that reached an end state", ["outcome"], registry=REGISTRY
)
JOB_TRANSITIONS = Counter(
    "fedibot_job_transitions_total", "Job state changes", ["to_state"], registry=REGISTRY
)
GENERATION_SECONDS = Histogram(
    "fedibot_generation_seconds",
    "Seconds a batch spent in the pipeline",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 40, 80, 160),
    registry=REGISTRY,
)
REPLY_LATENCY = Histogram(
    "fedibot_reply_latency_seconds",
    "Seconds from receiving a request to posting its reply",
    buckets=(0.5, 1, 2, 5, 10, 20, 40, 80, 160, 320, 640, 1800),
    registry=REGISTRY,
)
ADAPTER_ERRORS = Counter(
    "fedibot_adapter_errors_total",
    "Errors talking to fediverse servers",
    ["account", "kind"],
    registry=REGISTRY,
)
MENTIONS_RECEIVED = Counter(
    "fedibot_mentions_received_total",
    "Mentions seen by the adapters",
    ["account"],
    registry=REGISTRY,
)
