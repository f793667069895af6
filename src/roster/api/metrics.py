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

from roster.db.replicas import ReplicaSet

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


class _ReplicaCollector(Collector):
    """Each replica's state and lag, as this process last polled them."""

    def __init__(self, replicas: ReplicaSet) -> None:
        self.replicas = replicas

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if not self.replicas.replicas:
            return
        labels = ["replica", "pid"]
        pid = str(os.getpid())
        up = GaugeMetricFamily(
            "roster_replica_serving", "1 when the replica serves reads", labels=labels
        )
        lag = GaugeMetricFamily(
            "roster_replica_lag_seconds", "How far the replica is behind the primary", labels=labels
        )
        for replica in self.replicas.replicas:
            up.add_metric([replica.name, pid], 1.0 if replica.state == "serving" else 0.0)
            if replica.lag_seconds is not None:
                lag.add_metric([replica.name, pid], replica.lag_seconds)
        yield up
        yield lag


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, engine: AsyncEngine, replicas: ReplicaSet) -> None:
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
        self.replicas = _ReplicaCollector(replicas)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def render(self) -> bytes:
        registry = self.registry
        if self.multiprocess:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        registry.register(self.pool)
        registry.register(self.replicas)
        try:
            return generate_latest(registry)
        finally:
            registry.unregister(self.pool)
            registry.unregister(self.replicas)
