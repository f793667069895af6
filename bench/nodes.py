"""``python -m bench.nodes``: what one Roster node serves, and what each answer costs the
database, the figures docs/scaling.md's arithmetic starts from.

Runs on the database a ``python -m bench --db postgres --smoke`` run built (or, with
``--full``, a full run's), with wrk at 16 connections: finds by email and full-name
searches against `roster serve --workers 2` reached directly, then the same through
PgBouncer in transaction mode (``ROSTER_DATABASE_POOLER=transaction``). For each it
reports requests per second and the CPU seconds spent by the Roster workers and by the
PostgreSQL backends of that database (PgBouncer's own beside them), read from /proc
before and after: the database's milliseconds of CPU per answer say how many answers
one database core gives, whoever asks.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from bench.load import Call, run_concurrent
from bench.server import Server, serve
from bench.suite import (
    database_name,
    find_call,
    in_database,
    make_client,
    people_call,
    reused_database,
)
from tests.servers import throwaway_pgbouncer

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User and system CPU a process has used, 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS


def backends_of(database: str) -> list[int]:
    """The PostgreSQL backend processes serving ``database`` (by their process title)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            title = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if title.startswith("postgres: ") and f" {database} " in title:
            found.append(int(proc.name))
    return found


@dataclass(frozen=True)
class Row:
    what: str
    rate: float
    roster_cpu_ms: float  # per answer
    database_cpu_ms: float  # per answer
    pooler_cpu_ms: float  # per answer
    errors: int


class CpuTracker:
    """CPU spent while a block runs by the processes ``pids()`` names, sampled every
    50 ms, so that a process that ends in the meantime (a connection closed) still
    counts up to its last sample."""

    def __init__(self, pids: Callable[[], Iterable[int]]) -> None:
        self.pids = pids
        self.baseline: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self._stop = threading.Event()

    def _sample(self) -> None:
        for pid in self.pids():
            if (spent := cpu_seconds(pid)) > 0:
                self.last[pid] = spent

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self._sample()

    def __enter__(self) -> CpuTracker:
        self._sample()
        self.baseline = dict(self.last)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    @property
    def seconds(self) -> float:
        return sum(spent - self.baseline.get(pid, 0.0) for pid, spent in self.last.items())


def measured(
    what: str,
    server: Server,
    calls: Sequence[Call],
    headers: dict[str, str],
    database: str,
    seconds: float,
    pooler: int | None,
) -> Row:
    run_concurrent(server.base_url, calls, headers, connections=16, seconds=3)  # warm-up
    with (
        CpuTracker(server.workers) as roster,
        CpuTracker(lambda: backends_of(database)) as backends,
        CpuTracker(lambda: [pooler] if pooler else []) as bouncer,
    ):
        got = run_concurrent(server.base_url, calls, headers, connections=16, seconds=seconds)
    answers = max(got.requests, 1)
    return Row(
        what,
        got.rate,
        roster_cpu_ms=roster.seconds * 1000 / answers,
        database_cpu_ms=backends.seconds * 1000 / answers,
        pooler_cpu_ms=bouncer.seconds * 1000 / answers,
        errors=sum(got.failures.values()),
    )


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

    def run_all(label: str, database_url: str, pooler: int | None, **env: str) -> None:
        with serve(database_url, workers=2, log_dir=args.work, **env) as server:
            for what, calls in cases:
                figure = f"{what}, {label}"
                rows.append(measured(figure, server, calls, headers, name, args.seconds, pooler))

    run_all("direct", url, None)
    with throwaway_pgbouncer(5432, server_pool_size=4) as bouncer:
        pid = bouncer.process.pid if bouncer.process else None
        run_all("through PgBouncer", bouncer.url(name), pid, ROSTER_DATABASE_POOLER="transaction")
    print(f"# {name}: 16 connections, {args.seconds:.0f} s each, roster serve --workers 2")
    print(
        "| what | answers/s | Roster CPU ms/answer | PostgreSQL CPU ms/answer "
        "| PgBouncer CPU ms/answer | errors |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        print(
            f"| {row.what} | {row.rate:,.0f} | {row.roster_cpu_ms:.2f} | "
            f"{row.database_cpu_ms:.2f} | {row.pooler_cpu_ms:.2f} | {row.errors} |"
        )
    return 1 if any(row.errors for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
