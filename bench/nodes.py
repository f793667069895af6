"""``python -m bench.nodes``: what one Roster node serves, and what each answer costs the
database, the figures docs/scaling.md's arithmetic starts from.

Runs on the database a ``python -m bench --db postgres --smoke`` run built (or, with
``--full``, a full run's), with wrk at 16 connections: finds by email and full-name
searches against `roster serve --workers 2` reached directly, then the same through
PgBouncer in transaction mode (``ROSTER_DATABASE_POOLER=transaction``), then on a
private primary holding a copy of that database and its streaming replica, served by
the primary and then by the replica (``ROSTER_DATABASE_REPLICA_URLS``). For each it
reports requests per second and the CPU spent per answer by the Roster workers, the
PostgreSQL backends of that database (on each server) and PgBouncer, read from /proc:
the database's milliseconds of CPU per answer say how many answers one database core
gives, whoever asks.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from bench.load import Call, run_concurrent
from bench.server import CpuTracker, Server, backends_of, serve
from bench.suite import (
    copied,
    database_name,
    find_call,
    in_database,
    make_client,
    people_call,
    reused_database,
)
from tests.servers import (
    ThrowawayPostgres,
    throwaway_pgbouncer,
    throwaway_postgres,
    throwaway_replica,
)

Processes = Mapping[str, Callable[[], Iterable[int]]]


def postmaster_of(server: ThrowawayPostgres) -> int:
    return int((server.data / "postmaster.pid").read_text().split()[0])


#: The processes whose CPU a figure counts, by column.
COLUMNS = ("Roster", "PostgreSQL", "replica", "PgBouncer")


@dataclass(frozen=True)
class Row:
    what: str
    rate: float
    cpu_ms: dict[str, float]  # per answer, by column
    errors: int


def measured(
    what: str,
    server: Server,
    calls: Sequence[Call],
    headers: dict[str, str],
    seconds: float,
    processes: Processes,
) -> Row:
    run_concurrent(server.base_url, calls, headers, connections=16, seconds=3)  # warm-up
    trackers = {"Roster": CpuTracker(server.workers)}
    trackers |= {column: CpuTracker(pids) for column, pids in processes.items()}
    with contextlib.ExitStack() as stack:
        for tracker in trackers.values():
            stack.enter_context(tracker)
        got = run_concurrent(server.base_url, calls, headers, connections=16, seconds=seconds)
    answers = max(got.requests, 1)
    cpu = {column: t.seconds * 1000 / answers for column, t in trackers.items()}
    return Row(what, got.rate, cpu, errors=sum(got.failures.values()))


def sample(url: str, count: int) -> list[tuple[str, str, str]]:
    """Emails and names of ``count`` personas of the benchmark's big account."""

    async def go() -> list[tuple[str, str, str]]:
        conn = await asyncpg.connect(url)
        try:
            rows = await conn.fetch(
                "SELECT p.email_address, p.first_name, p.last_name FROM persons p "
                "JOIN personas a ON a.person_id = p.id "
                "WHERE a.account_id = 'BIG' AND p.email_address IS NOT NULL LIMIT $1",
                count * 10,
            )
        finally:
            await conn.close()
        return [tuple(r) for r in random.Random(7).sample(list(rows), min(count, len(rows)))]

    return asyncio.run(go())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.nodes", description=__doc__)
    parser.add_argument("--full", action="store_true", help="a full run's database")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--work", type=Path, default=Path("bench/.work/nodes"))
    args = parser.parse_args(argv)
    name = database_name(not args.full)
    url = reused_database("postgres", args.work, name)
    key = in_database(url, make_client)
    headers = {"Authorization": f"ApiKey {key}"}
    people = sample(url, 200)
    cases: list[tuple[str, list[Call]]] = [
        ("find by email", [find_call("email_address", e.upper()) for e, _, _ in people]),
        ("search, a full name", [people_call(at_least=1, search=f"{f} {n}") for _, f, n in people]),
    ]
    rows: list[Row] = []

    def run_all(label: str, database_url: str, processes: Processes, **env: str) -> None:
        with serve(database_url, workers=2, log_dir=args.work, **env) as server:
            for what, calls in cases:
                figure = f"{what}, {label}"
                rows.append(measured(figure, server, calls, headers, args.seconds, processes))

    shared = {"PostgreSQL": lambda: backends_of(name)}
    run_all("direct", url, shared)
    with throwaway_pgbouncer(5432, server_pool_size=4) as bouncer:
        pid = bouncer.process.pid if bouncer.process else 0
        through = shared | {"PgBouncer": lambda: [pid]}
        pooled = {"ROSTER_DATABASE_POOLER": "transaction"}
        run_all("through PgBouncer", bouncer.url(name), through, **pooled)
    # A private primary with the same data and a streaming replica of it, on the same
    # machine: the same reads served by the primary, then by the replica.
    with throwaway_postgres() as primary:
        copied(name, url, primary)
        with throwaway_replica(primary) as replica:
            pair = {
                "PostgreSQL": lambda: backends_of(name, postmaster_of(primary)),
                "replica": lambda: backends_of(name, postmaster_of(replica)),
            }
            on_primary = primary.url.rsplit("/", 1)[0] + f"/{name}"
            run_all("private primary", on_primary, pair)
            replicas = {"ROSTER_DATABASE_REPLICA_URLS": replica.url.rsplit("/", 1)[0] + f"/{name}"}
            run_all("its replica", on_primary, pair, **replicas)
    print(f"# {name}: 16 connections, {args.seconds:.0f} s each, roster serve --workers 2")
    print(
        "| what | answers/s | " + " | ".join(f"{c} CPU ms/answer" for c in COLUMNS) + " | errors |"
    )
    print("| --- | ---: | " + " | ".join("---:" for _ in COLUMNS) + " | ---: |")
    for row in rows:
        cpu = " | ".join(f"{row.cpu_ms.get(column, 0.0):.2f}" for column in COLUMNS)
        print(f"| {row.what} | {row.rate:,.0f} | {cpu} | {row.errors} |")
    return 1 if any(row.errors for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
