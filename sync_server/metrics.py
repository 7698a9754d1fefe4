"""Prometheus metrics, right with any number of server processes.

``sync-server serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory before any
worker starts (``cli.py``): every process then writes its samples to files there, and whichever
process answers ``GET /metrics`` adds up all of them (prometheus_client's multiprocess mode).
Without that variable (an app built in-process by tests or an embedding program) the metrics
live in the process's own registry.

Labels are bounded: routes are templates (``/v1/shows/{id}``, ``unmatched`` for the rest), methods
outside the HTTP set are ``other``, op statuses and sources are closed sets.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Iterable
from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from event_store import EventStore
from schemas.results import OpResult

from .cli import METRICS_DIR

CONTENT_TYPE: Final = CONTENT_TYPE_LATEST
_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

REQUESTS = Counter(
    "sync_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
LATENCY = Histogram(
    "sync_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
OPS = Counter(
    "sync_ops_total",
    "Ops decided, by where they came from (sync push or REST api) and their outcome",
    ["source", "status"],
)
EVENTS = Counter("sync_events_appended_total", "Events appended to the log", ["source"])
PULL_CHANGES = Histogram(
    "sync_pull_changes",
    "Changes per pull page",
    buckets=(0, 1, 10, 50, 100, 500, 1000, 5000),
)
POOL = Gauge(
    "sync_db_pool_connections",
    "Database connections of the servers' pools: size (open), available (idle), waiting "
    "(requests queued for one)",
    ["state"],
    multiprocess_mode="livesum",
)


def multiprocess_mode() -> bool:
    return bool(os.environ.get(METRICS_DIR))


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    labels = (method if method in _METHODS else "other", route, str(status))
    REQUESTS.labels(*labels).inc()
    LATENCY.labels(*labels).observe(seconds)


def record_ops(source: str, results: Iterable[OpResult], events: int) -> None:
    # One increment per status, not per op: a labelled increment costs microseconds, and a
    # push answers hundreds of ops.
    for status, count in collections.Counter(result.status for result in results).items():
        OPS.labels(source, status).inc(count)
    if events:
        EVENTS.labels(source).inc(events)


def record_pull(changes: int) -> None:
    PULL_CHANGES.observe(changes)


def record_pool(store: EventStore) -> None:
    """This process's pool, as it is now (PostgreSQL only: SQLite has no connection pool)."""
    stats = getattr(store, "pool_stats", None)
    if stats is None:
        return
    current = stats()
    POOL.labels("size").set(current.get("pool_size", 0))
    POOL.labels("available").set(current.get("pool_available", 0))
    POOL.labels("waiting").set(current.get("requests_waiting", 0))


def render() -> bytes:
    """Every process's metrics in the Prometheus text format."""
    if not multiprocess_mode():
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


def process_exited(pid: int) -> None:
    """Drop a process's live gauges (its counters stay: totals never go down)."""
    if multiprocess_mode():
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
