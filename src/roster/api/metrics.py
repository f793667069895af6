"""Prometheus metrics: requests by route and status, latency, database pool use.

With several worker processes (``roster serve --workers N``) the server sets
``PROMETHEUS_MULTIPROC_DIR`` and every worker writes its counts there, so any
worker's ``/metrics`` reports the whole server.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class _PoolCollector(Collector):
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        pool = self.engine.pool
        if not isinstance(pool, QueuePool):
            return
        labels = ["pid"]
        pid = str(os.getpid())
        for name, value, doc in (
            ("roster_db_pool_size", pool.size(), "Connections the pool keeps"),
            ("roster_db_pool_checked_out", pool.checkedout(), "Connections in use"),
            ("roster_db_pool_overflow", pool.overflow(), "Connections beyond the pool size"),
        ):
            family = GaugeMetricFamily(name, doc, labels=labels)
            family.add_metric([pid], value)
            yield family


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, engine: AsyncEngine) -> None:
        self.multiprocess = "PROMETHEUS_MULTIPROC_DIR" in os.environ
        self.registry = CollectorRegistry()
        owner = None if self.multiprocess else self.registry
        self.requests = Counter(
            "roster_http_requests",
            "HTTP requests answered, by route and status",
            ["method", "route", "status"],
            registry=owner,
        )
        self.latency = Histogram(
            "roster_http_request_duration_seconds",
            "Time to answer, by route",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=owner,
        )
        self.pool = _PoolCollector(engine)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def render(self) -> bytes:
        registry = self.registry
        if self.multiprocess:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        registry.register(self.pool)
        try:
            return generate_latest(registry)
        finally:
            registry.unregister(self.pool)
