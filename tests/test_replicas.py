"""Reads from a streaming replica (ROSTER_DATABASE_REPLICA_URLS): a private primary and
replica (initdb, pg_basebackup -R, their own ports), Redis, and `roster serve`.

Which server ran a statement is read from each server's log (log_statement=all): a
find's parameters are logged with it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from bench.server import Server, serve
from roster.db.replicas import WritePositions
from tests import acceptance
from tests.acceptance import ACCOUNTS, Operator, found, make_client, make_directory
from tests.servers import (
    ThrowawayPostgres,
    ThrowawayRedis,
    throwaway_postgres,
    throwaway_replica,
    wait_for,
)

pytestmark = pytest.mark.slow

LOGGED = {"log_statement": "all"}


@dataclass
class Cluster:
    primary: ThrowawayPostgres
    replica: ThrowawayPostgres
    redis: ThrowawayRedis
    writer: Operator  # writes, then reads its own writes
    reader: Operator  # another client: reads only


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    redis = ThrowawayRedis()
    redis.start()
    try:
        with (
            throwaway_postgres(LOGGED) as primary,
            throwaway_replica(primary, LOGGED) as replica,
        ):
            writer = make_directory(primary.url)
            reader = make_client(primary.url)
            yield Cluster(primary, replica, redis, writer, reader)
    finally:
        redis.stop()


@contextmanager
def node(cluster: Cluster, tmp_path: Path, max_lag: float) -> Iterator[Server]:
    env = {
        "ROSTER_DATABASE_REPLICA_URLS": cluster.replica.url,
        "ROSTER_REPLICA_MAX_LAG_SECONDS": str(max_lag),
        "ROSTER_REDIS_URL": cluster.redis.url,
    }
    with serve(cluster.primary.url, workers=1, log_dir=tmp_path, **env) as server:
        wait_for(lambda: replica_state(server) == "serving")
        yield server


def on_replica(cluster: Cluster, statement: str) -> object:
    return cluster.replica.fetchval(statement)


def replica_state(server: Server) -> str:
    return acceptance.replica_state(server.base_url)


def find(server: Server, who: Operator, email: str) -> httpx.Response:
    return acceptance.find_email(server.base_url, who, email)


def upsert(server: Server, who: Operator, email: str) -> None:
    acceptance.upsert_email(server.base_url, who, email)


def test_reads_reach_the_replica_and_writes_the_primary(cluster: Cluster, tmp_path: Path) -> None:
    with node(cluster, tmp_path, max_lag=5) as server:
        upsert(server, cluster.writer, "reads@example.com")
        wait_for(lambda: found(find(server, cluster.reader, "reads@example.com")))
        before = (
            cluster.primary.log().count("reads@example.com"),
            cluster.replica.log().count("reads@example.com"),
        )
        for _ in range(10):
            assert found(find(server, cluster.reader, "reads@example.com"))
        for _ in range(5):  # a search: its count and rows in one snapshot
            listed = httpx.get(
                server.base_url + "/people",
                params={"accountId": ACCOUNTS[0], "search": "reads@example.com"},
                headers=cluster.reader.headers,
                timeout=10,
            )
            assert listed.status_code == 200, listed.text
            assert listed.json()["count"] == 1
        after = (
            cluster.primary.log().count("reads@example.com"),
            cluster.replica.log().count("reads@example.com"),
        )
    assert after[0] == before[0]  # no find reached the primary
    assert after[1] - before[1] >= 15  # each reached the replica
    assert "reads@example.com" in cluster.primary.log()  # the write went there


def test_a_client_reads_its_own_write_while_the_replica_lags(
    cluster: Cluster, tmp_path: Path
) -> None:
    with node(cluster, tmp_path, max_lag=60) as server:
        upsert(server, cluster.writer, "before-pause@example.com")
        wait_for(lambda: found(find(server, cluster.reader, "before-pause@example.com")))
        on_replica(cluster, "SELECT pg_wal_replay_pause()")
        try:
            upsert(server, cluster.writer, "own@example.com")
            # The writer sees its write at once ...
            assert found(find(server, cluster.writer, "own@example.com"))
            # ... while the replica, still serving others, has not replayed it.
            assert not found(find(server, cluster.reader, "own@example.com"))
            assert replica_state(server) == "serving"
        finally:
            on_replica(cluster, "SELECT pg_wal_replay_resume()")
        wait_for(lambda: found(find(server, cluster.reader, "own@example.com")))


def test_a_replica_further_behind_than_allowed_is_skipped(cluster: Cluster, tmp_path: Path) -> None:
    with node(cluster, tmp_path, max_lag=1) as server:
        on_replica(cluster, "SELECT pg_wal_replay_pause()")
        try:
            upsert(server, cluster.writer, "behind@example.com")
            wait_for(lambda: replica_state(server) == "lagging")
            # Another client's read goes to the primary now, and finds the write.
            assert found(find(server, cluster.reader, "behind@example.com"))
            ready = httpx.get(server.base_url + "/readyz", timeout=5)
            assert ready.status_code == 200
            assert ready.json()["replicas"][0]["lag_seconds"] > 1
            metrics = httpx.get(server.base_url + "/metrics", timeout=5).text
            assert "roster_replica_serving{pid=" in metrics or "roster_replica_serving{" in metrics
            assert any(
                line.startswith("roster_replica_serving{") and line.endswith(" 0.0")
                for line in metrics.splitlines()
            ), metrics
        finally:
            on_replica(cluster, "SELECT pg_wal_replay_resume()")
        wait_for(lambda: replica_state(server) == "serving")


def test_a_stopped_replica_costs_no_request(cluster: Cluster, tmp_path: Path) -> None:
    with node(cluster, tmp_path, max_lag=5) as server:
        upsert(server, cluster.writer, "stopped@example.com")
        wait_for(lambda: found(find(server, cluster.reader, "stopped@example.com")))
        answers = [find(server, cluster.reader, "stopped@example.com") for _ in range(3)]
        cluster.replica.stop()
        try:
            answers += [find(server, cluster.reader, "stopped@example.com") for _ in range(20)]
            wait_for(lambda: replica_state(server) == "down")
            answers += [find(server, cluster.reader, "stopped@example.com") for _ in range(5)]
        finally:
            cluster.replica.start()
        wait_for(lambda: replica_state(server) == "serving")
        before = cluster.replica.log().count("stopped@example.com")
        answers += [find(server, cluster.reader, "stopped@example.com") for _ in range(5)]
        assert cluster.replica.log().count("stopped@example.com") - before >= 5  # back in use
    assert [a.status_code for a in answers] == [200] * len(answers)


async def test_another_process_learns_a_clients_write_position_through_redis() -> None:
    redis = ThrowawayRedis()
    redis.start()
    try:
        here, there = (WritePositions(redis.url, max_lag_seconds=5) for _ in range(2))
        await here.remember("ApiKey one", 5000)
        await here.remember("ApiKey one", 4000)  # an older write answered later
        assert await there.needed("ApiKey one") == 5000
        assert await there.needed("ApiKey two") == 0
    finally:
        redis.stop()
    # Redis gone: a client's position cannot be known, so its reads go to the primary.
    assert await WritePositions(redis.url, max_lag_seconds=5).needed("ApiKey one") is None
