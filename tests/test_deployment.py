"""Issue 18's deployment, all of it at once, with servers this test starts itself: a
primary and a streaming replica (initdb, pg_basebackup -R, their own ports, in a
temporary folder), a PgBouncer in transaction mode in front of each, a Redis, and two
`roster serve` nodes on their own ports sharing all of them.

The replica has a PgBouncer of its own, as it would in production: the pooler setting
(ROSTER_DATABASE_POOLER) is one for every engine of a node, and a replica serving most
reads needs its connections pooled more than the primary does. It is also the harder
case for a replica that stops: its PgBouncer keeps accepting connections and the
failure shows only when a statement needs the server.

Which server ran a statement is read from each server's log (log_statement=all): a
find's parameters are logged with it, and the polls' statements carry no email.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import httpx
import pytest

from bench.server import Server, serve
from tests.acceptance import (
    ACCOUNTS,
    Operator,
    find_email,
    found,
    make_client,
    make_directory,
    replica_state,
    run_acceptance,
    spends_one_budget,
    upsert_email,
)
from tests.conftest import emptied
from tests.servers import (
    ThrowawayPgBouncer,
    ThrowawayPostgres,
    throwaway_pgbouncer,
    throwaway_postgres,
    throwaway_redis,
    throwaway_replica,
    wait_for,
)
from tests.test_pooler import POOLED, pgbouncer_or_skip

pytestmark = pytest.mark.slow

LOGGED = {"log_statement": "all"}
#: Each client's budget on both nodes, an hour's window (no test straddles one); the
#: acceptance's client spends about 220 of it.
BUDGET = 600


@dataclass
class Deployment:
    primary: ThrowawayPostgres
    replica: ThrowawayPostgres
    bouncers: tuple[ThrowawayPgBouncer, ThrowawayPgBouncer]  # the primary's, the replica's
    database_url: str  # the primary, through its PgBouncer
    nodes: tuple[Server, Server]

    @property
    def urls(self) -> list[str]:
        return [node.base_url for node in self.nodes]

    def client(self) -> Operator:
        """A new client of both accounts (its own rate-limit budget)."""
        return make_client(self.database_url, **POOLED)

    def states(self) -> list[str]:
        return [replica_state(url) for url in self.urls]


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    pgbouncer_or_skip()
    logs = tmp_path_factory.mktemp("deployment")
    with ExitStack() as stack:
        redis = stack.enter_context(throwaway_redis())
        primary = stack.enter_context(throwaway_postgres(LOGGED))
        replica = stack.enter_context(throwaway_replica(primary, LOGGED))
        bouncers = (
            stack.enter_context(throwaway_pgbouncer(primary.port)),
            # A statement waiting for the replica's server gives up after 2 s (and the
            # read is served again on the primary), not PgBouncer's default 120.
            stack.enter_context(throwaway_pgbouncer(replica.port, query_wait_timeout=2)),
        )
        url = bouncers[0].url("postgres")
        make_directory(url, **POOLED)
        env = POOLED | {
            "ROSTER_DATABASE_REPLICA_URLS": bouncers[1].url("postgres"),
            # Long enough that a paused replica still serves (a lag is the age of the
            # last transaction it replayed, which may be old when replay pauses).
            "ROSTER_REPLICA_MAX_LAG_SECONDS": "60",
            "ROSTER_REDIS_URL": redis.url,
            "ROSTER_RATE_LIMIT": f"{BUDGET}/hour",
        }
        nodes = (
            stack.enter_context(serve(url, workers=1, log_dir=logs / "first", **env)),
            stack.enter_context(serve(url, workers=1, log_dir=logs / "second", **env)),
        )
        deployed = Deployment(primary, replica, bouncers, url, nodes)
        wait_for(lambda: deployed.states() == ["serving", "serving"])
        yield deployed
        for node in nodes:
            log = node.log_path.read_text(errors="replace")
            assert "Traceback" not in log, log


def mentions(server: ThrowawayPostgres, value: str) -> int:
    return server.log().count(value)


def test_reads_reach_the_replica_from_both_nodes(deployment: Deployment) -> None:
    writer, reader = deployment.client(), deployment.client()
    first, second = deployment.urls
    upsert_email(first, writer, "reads@example.com")
    wait_for(
        lambda: all(found(find_email(url, reader, "reads@example.com")) for url in (first, second))
    )
    before = [mentions(s, "reads@example.com") for s in (deployment.primary, deployment.replica)]
    for url in (first, second):
        for _ in range(10):
            assert found(find_email(url, reader, "reads@example.com"))
        listed = httpx.get(
            url + "/people",
            params={"accountId": ACCOUNTS[0], "search": "reads@example.com"},
            headers=reader.headers,
            timeout=10,
        )
        assert listed.status_code == 200, listed.text
        assert [row["lastName"] for row in listed.json()["rows"]] == ["Lee"]
    after = [mentions(s, "reads@example.com") for s in (deployment.primary, deployment.replica)]
    assert after[0] == before[0]  # no read reached the primary ...
    assert after[1] - before[1] >= 22  # ... each reached the replica
    assert mentions(deployment.primary, "reads@example.com") > 0  # the write went there


def test_a_client_reads_its_own_write_through_the_other_node_while_the_replica_lags(
    deployment: Deployment,
) -> None:
    writer, reader = deployment.client(), deployment.client()
    first, second = deployment.urls
    upsert_email(first, writer, "before-pause@example.com")
    wait_for(lambda: found(find_email(second, reader, "before-pause@example.com")))
    deployment.replica.fetchval("SELECT pg_wal_replay_pause()")
    try:
        upsert_email(first, writer, "own@example.com")
        # The writer sees its write at once through the other node (its position is
        # in Redis) ...
        assert found(find_email(second, writer, "own@example.com"))
        # ... while the replica, still serving other clients on both nodes, lacks it.
        assert not found(find_email(second, reader, "own@example.com"))
        assert not found(find_email(first, reader, "own@example.com"))
        assert deployment.states() == ["serving", "serving"]
    finally:
        deployment.replica.fetchval("SELECT pg_wal_replay_resume()")
    wait_for(lambda: found(find_email(second, reader, "own@example.com")))


class Traffic:
    """Finds by one client sent one after the other, to both nodes in turn, from a
    thread, until stopped; every answer kept, and every failure."""

    def __init__(self, urls: list[str], who: Operator, email: str) -> None:
        self.urls, self.who, self.email = urls, who, email
        self.answers: list[httpx.Response] = []
        self.failures: list[str] = []
        self.seconds: list[float] = []  # each request's
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                answer = find_email(self.urls[n % 2], self.who, self.email)
            except httpx.HTTPError as error:  # no answer in 10 s: a failure too
                self.failures.append(repr(error))
            else:
                self.answers.append(answer)
                if answer.status_code != 200:
                    self.failures.append(f"{answer.status_code} {answer.text}")
            self.seconds.append(time.monotonic() - started)
            n += 1
            time.sleep(0.01)  # about 50 a second: the budget lasts the test

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def test_a_replica_that_stops_costs_no_request_and_serves_again(deployment: Deployment) -> None:
    writer, reader = deployment.client(), deployment.client()
    upsert_email(deployment.urls[0], writer, "stopping@example.com")
    wait_for(lambda: found(find_email(deployment.urls[1], reader, "stopping@example.com")))
    with Traffic(deployment.urls, reader, "stopping@example.com") as traffic:
        time.sleep(0.5)
        deployment.replica.stop()
        try:
            wait_for(lambda: deployment.states() == ["down", "down"])
            down = len(traffic.answers)
            # The primary answers the reads meanwhile.
            wait_for(lambda: len(traffic.answers) >= down + 5)
        finally:
            deployment.replica.start()
        wait_for(lambda: deployment.states() == ["serving", "serving"])
        before = mentions(deployment.replica, "stopping@example.com")
        # ... and the replica serves the reads again.
        wait_for(lambda: mentions(deployment.replica, "stopping@example.com") >= before + 5)
    assert traffic.failures == []
    assert len(traffic.answers) >= 10
    print(f"{len(traffic.answers)} finds, none failed, the slowest in {max(traffic.seconds):.2f} s")


def test_the_nodes_spend_one_budget(deployment: Deployment) -> None:
    spends_one_budget(deployment.urls, deployment.client(), BUDGET)


def test_both_apis_pass_their_acceptance_through_pgbouncer(deployment: Deployment) -> None:
    # The acceptance starts from an empty directory: the other tests' people are gone
    # (and their clients: each test makes its own).
    emptied(deployment.database_url, database_pooler="transaction")
    operator = make_directory(deployment.database_url, **POOLED)
    node = deployment.urls[1]
    wait_for(lambda: found(find_email(node, operator, "nobody@example.com")) is False)
    replica_before = mentions(deployment.replica, "byron")

    def replica_reads_the_operator_s_writes() -> None:
        # The operator's reads go to the replica only once a node's poll (every 0.5 s)
        # has seen it replay the operator's last write (read-your-writes), and the
        # concurrent clients write as the operator all along: left to the polls' timing,
        # none of their reads need reach the replica. Wait here until the operator's
        # reads do. Each concurrent client writes only after its search for "byron", so
        # the first of those searches to be answered is routed before any of their
        # writes: to the replica.
        before = mentions(deployment.replica, "settled@example.com")

        def on_the_replica() -> bool:
            assert not found(find_email(node, operator, "settled@example.com"))
            return mentions(deployment.replica, "settled@example.com") > before

        wait_for(on_the_replica)

    run_acceptance(node, operator, between=replica_reads_the_operator_s_writes)
    # Some of its concurrent reads were served by the replica, through its PgBouncer ...
    assert mentions(deployment.replica, "byron") > replica_before
    # ... and both PgBouncers pooled in transaction mode, with two server connections.
    for bouncer in deployment.bouncers:
        [pool] = [p for p in bouncer.show("POOLS") if p["database"] == "postgres"]
        assert pool["pool_mode"] == "transaction"
        assert int(pool["sv_active"]) + int(pool["sv_idle"]) + int(pool["sv_used"]) <= 2
        [stats] = [s for s in bouncer.show("STATS") if s["database"] == "postgres"]
        assert int(stats["total_xact_count"]) > 50
