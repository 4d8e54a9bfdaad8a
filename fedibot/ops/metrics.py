"""Prometheus metrics (one registry per process; served on /metrics by `fedibot run`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

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
BUDGET_LIMIT = Gauge(
    "fedibot_budget_limit",
    "Posting budget: requests allowed per period, per account and kind",
    ["account", "kind"],
    registry=REGISTRY,
)
BUDGET_PERIOD = Gauge(
    "fedibot_budget_period_seconds",
    "Posting budget: the period of the limit",
    ["account", "kind"],
    registry=REGISTRY,
)
BUDGET_SPENT = Gauge(
    "fedibot_budget_spent",
    "Posting budget: requests spent in the current period",
    ["account", "kind"],
    registry=REGISTRY,
)
BUDGET_RESERVED = Gauge(
    "fedibot_budget_reserved",
    "Posting budget: requests reserved for held jobs",
    ["account", "kind"],
    registry=REGISTRY,
)
BUDGET_HELD_JOBS = Gauge(
    "fedibot_budget_held_jobs",
    "Jobs the posting budget holds back",
    ["account", "kind"],
    registry=REGISTRY,
)
BUDGET_NEXT_FREE = Gauge(
    "fedibot_budget_next_free_seconds",
    "Seconds until one more request fits the budget (0: now)",
    ["account", "kind"],
    registry=REGISTRY,
)
BUDGET_FREES_UP = Gauge(
    "fedibot_budget_frees_up_seconds",
    "Seconds until every held job has its slots (0: none held)",
    ["account", "kind"],
    registry=REGISTRY,
)


def record_budgets(views: Iterable[Any], now: float) -> None:
    """Refresh the budget gauges from `BudgetLedger.snapshot()`."""
    for v in views:
        labels = {"account": v.account, "kind": v.kind}
        BUDGET_LIMIT.labels(**labels).set(v.limit)
        BUDGET_PERIOD.labels(**labels).set(v.per_seconds)
        BUDGET_SPENT.labels(**labels).set(v.spent)
        BUDGET_RESERVED.labels(**labels).set(v.reserved)
        BUDGET_HELD_JOBS.labels(**labels).set(len(v.held_jobs))
        BUDGET_NEXT_FREE.labels(**labels).set(max(0.0, v.next_free_at - now))
        BUDGET_FREES_UP.labels(**labels).set(max(0.0, v.frees_up_at - now) if v.frees_up_at else 0)
