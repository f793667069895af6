"""The benchmark: build a directory through `roster import`, serve it, measure over HTTP.

Every figure is measured from this process (a separate process from the server):
sequential latency with a plain Python client (one request at a time, so the
client's own speed does not matter much), throughput at 16 connections with wrk
when it is installed. The naive search is timed straight in the database.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import asyncpg
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bench import data
from bench.browser import measure_browser
from bench.load import Call, Measured, run_concurrent, run_one_at_a_time, run_sequential
from bench.server import RssSampler, Server, serve
from roster.core.accounts import create_account
from roster.core.auth import create_client
from roster.db.backends import backend_for
from roster.db.engine import create_engine, unit_of_work
from roster.db.tables import (
    addresses,
    budget_members,
    budgets,
    personas,
    persons,
    roles,
    team_members,
    teams,
)
from roster.settings import Settings

ROSTER = str(Path(sys.executable).with_name("roster"))
BIG = "BIG"
MB = 1024 * 1024


@dataclass(frozen=True)
class Scale:
    big: int  # people in BIG
    small_accounts: int
    small_size: int
    offset: int  # the deep-offset case
    sequential: int  # requests per sequential latency figure
    slow_sequential: int  # for the broad search and deep offset
    concurrent_seconds: float
    big_page: int
    load_seconds: float
    load_rate: float  # requests per second during the load run

    @property
    def personas(self) -> int:
        return self.big + self.small_accounts * self.small_size


SCALES = {
    "postgres": Scale(500_000, 1000, 500, 400_000, 500, 40, 10, 100_000, 60, 50),
    "sqlite": Scale(100_000, 200, 500, 80_000, 500, 30, 10, 100_000, 60, 50),
    "smoke": Scale(3_000, 4, 100, 2_000, 20, 3, 1, 2_000, 3, 20),
}


@dataclass
class Figure:
    what: str
    target: str
    median_ms: float | None = None
    p99_ms: float | None = None
    rate: float | None = None
    met: bool | None = None
    note: str = ""
    tool: str = ""


@dataclass
class Report:
    database: str
    scale: Scale
    smoke: bool = False
    figures: list[Figure] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def add(self, figure: Figure) -> Figure:
        if self.smoke:
            figure.met = None  # tiny data: the targets do not apply
        self.figures.append(figure)
        print(f"  {figure.what}: {_cells(figure)[1:5]} {figure.note}", flush=True)
        return figure

    def markdown(self) -> str:
        head = "| what | median ms | p99 ms | rate /s | target | met | note |\n" + (
            "| --- | ---: | ---: | ---: | --- | --- | --- |\n"
        )
        return head + "\n".join("| " + " | ".join(_cells(f)) + " |" for f in self.figures)


def _cells(f: Figure) -> list[str]:
    def num(v: float | None, digits: int = 2) -> str:
        return "" if v is None else f"{v:,.{digits}f}"

    met = {True: "yes", False: "**no**", None: ""}[f.met]
    note = " ".join(x for x in (f.note, f"({f.tool})" if f.tool else "") if x)
    return [f.what, num(f.median_ms), num(f.p99_ms), num(f.rate, 0), f.target, met, note]


# -- the database ------------------------------------------------------------------------


def database_name(smoke: bool) -> str:
    """A smoke run (CI runs one) has a database of its own: it never drops a full run's."""
    return "roster_bench_smoke" if smoke else "roster_bench"


def fresh_database(kind: str, work: Path, name: str) -> str:
    if kind == "sqlite":
        for leftover in work.glob(f"{name}.db*"):
            leftover.unlink()
        return reused_database(kind, work, name)
    admin = _postgres_admin()

    async def recreate() -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            await conn.execute(f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8'")
        finally:
            await conn.close()

    asyncio.run(recreate())
    return reused_database(kind, work, name)


def reused_database(kind: str, work: Path, name: str) -> str:
    """The database an earlier run built (``--reuse``), to measure again without
    importing again."""
    if kind == "sqlite":
        return f"sqlite:///{work / f'{name}.db'}"
    return _postgres_admin().rsplit("/", 1)[0] + f"/{name}"


def _postgres_admin() -> str:
    return os.environ.get(
        "ROSTER_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )


def vacuum(database_url: str) -> None:
    """What autovacuum does on any real server (it is off on this machine's cluster): the
    visibility map that lets the deep-offset walk read the index alone. Then a checkpoint,
    so that writing out the import's pages does not happen during the first measurements
    (it did: a checkpoint the import's WAL started spread its writes over them)."""

    async def go() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute("VACUUM ANALYZE")
            try:
                await conn.execute("CHECKPOINT")
            except asyncpg.InsufficientPrivilegeError:
                print("  (no CHECKPOINT: it needs a superuser or pg_checkpoint)", flush=True)
        finally:
            await conn.close()

    asyncio.run(go())


def roster(database_url: str, *args: str) -> str:
    done = subprocess.run(
        [ROSTER, *args],
        env={**os.environ, "ROSTER_DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"roster {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def timed_import(database_url: str, path: Path, *account: str) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    summary = json.loads(roster(database_url, "import", str(path), *account, "--json"))
    return time.perf_counter() - started, summary


async def _in_database(database_url: str, work: Callable[[AsyncEngine], Any]) -> Any:
    engine = create_engine(Settings(_env_file=None, database_url=database_url))
    try:
        return await work(engine)
    finally:
        await engine.dispose()


def in_database(database_url: str, work: Callable[[AsyncEngine], Any]) -> Any:
    return asyncio.run(_in_database(database_url, work))


async def server_settings(engine: AsyncEngine) -> str:
    """The PostgreSQL server's version and the settings the figures depend on most."""
    names = ("shared_buffers", "work_mem", "effective_cache_size", "max_wal_size", "autovacuum")
    async with unit_of_work(engine, write=False) as conn:
        version = await conn.scalar(text("SHOW server_version"))
        values = [f"{n}={await conn.scalar(text(f'SHOW {n}'))}" for n in names]
    return f"PostgreSQL {version}, " + ", ".join(values)


# -- building the data -------------------------------------------------------------------


def small_accounts(scale: Scale) -> list[str]:
    return [f"S{n:04d}" for n in range(1, scale.small_accounts + 1)]


async def create_accounts(engine: AsyncEngine, scale: Scale) -> None:
    async with unit_of_work(engine, write=True) as conn:
        await create_account(conn, BIG, "The big account")
        for account in small_accounts(scale):
            await create_account(conn, account, f"Account {account}")
        extra = [
            {
                "id": uuid.uuid4(),
                "account_id": BIG,
                "name": name,
                "name_key": name.casefold(),
                "type": None,
                "created_at": data.STAMP,
                "updated_at": data.STAMP,
            }
            for name in ("Approver", "Travel Booker")
        ]
        await conn.execute(roles.insert(), extra)


def write_files(scale: Scale, work: Path) -> tuple[Path, Path, list[dict[str, str]]]:
    """The import files, and a sample of BIG's rows to ask for."""
    pools = data.name_pools()
    rng = random.Random(data.SEED)
    sample: list[dict[str, str]] = []

    def big_rows() -> Iterator[dict[str, str]]:
        for row in data.people(BIG, scale.big, pools):
            if len(sample) < 400 and rng.random() < 800 / scale.big:
                sample.append(row)
            yield row

    def small_rows() -> Iterator[dict[str, str]]:
        for n, account in enumerate(small_accounts(scale)):
            base = scale.big + n * scale.small_size
            for row in data.people(account, scale.small_size, pools, phone_base=base):
                yield {"account_id": account, **row}

    big = work / "big.csv"
    small = work / "small.csv"
    data.write_csv(big, big_rows())
    data.write_csv(small, small_rows(), ("account_id", *data.COLUMNS))
    return big, small, sample


async def enrich(engine: AsyncEngine, account: str) -> dict[str, int]:
    """Teams, budgets of each type, addresses and created-by links for one account."""
    rng = random.Random(data.SEED)
    async with unit_of_work(engine, write=True) as conn:
        ids = list(
            await conn.scalars(
                select(personas.c.id)
                .where(personas.c.account_id == account)
                .order_by(personas.c.seq)
            )
        )
        stamp = {"created_at": data.STAMP, "updated_at": data.STAMP}
        team_rows = [
            {
                "id": uuid.uuid4(),
                "account_id": account,
                "name": f"Team {n:04d}",
                "primary_owner_persona_id": ids[n],
                **stamp,
            }
            for n in range(min(1000, len(ids) // 10))
        ]
        members = [
            {"team_id": team_rows[n % len(team_rows)]["id"], "persona_id": p}
            for n, p in enumerate(ids)
            if rng.random() < 0.7
        ]
        shared = [
            {
                "id": uuid.uuid4(),
                "account_id": account,
                "name": f"Shared {n:04d}",
                "type": "shared",
                "primary_owner_persona_id": ids[-1 - n],
                **stamp,
            }
            for n in range(min(500, len(ids) // 20))
        ]
        individual = [
            {
                "id": uuid.uuid4(),
                "account_id": account,
                "name": f"Budget of {n}",
                "type": "individual",
                "primary_owner_persona_id": p,
                **stamp,
            }
            for n, p in enumerate(ids)
            if rng.random() < 0.4
        ]
        balance = [
            {
                "id": uuid.uuid4(),
                "account_id": account,
                "name": "Account balance",
                "type": "accountBalance",
                "primary_owner_persona_id": ids[0],
                **stamp,
            }
        ]
        budget_rows = [*shared, *individual, *balance]
        shared_members = [
            {"budget_id": shared[n % len(shared)]["id"], "persona_id": p}
            for n, p in enumerate(ids)
            if rng.random() < 0.2
        ]
        address_rows = [
            {
                "id": uuid.uuid4(),
                "persona_id": p,
                "type": rng.choice(("home", "work", "billing")),
                "address_line1": f"{rng.randrange(1, 300)} High Street",
                "address_line2": None,
                "address_line3": None,
                "city": rng.choice(("London", "Leeds", "Lyon", "Porto")),
                "region": None,
                "postcode": f"N{rng.randrange(1, 20)} {rng.randrange(1, 9)}AA",
                "country_code": rng.choice(("GB", "FR", "PT")),
                **stamp,
            }
            for p in ids
            if rng.random() < 0.5
        ]
        backend = backend_for(conn)
        for table, rows in (
            (teams, team_rows),
            (team_members, members),
            (budgets, budget_rows),
            (budget_members, shared_members),
            (addresses, address_rows),
        ):
            for start in range(0, len(rows), 50_000):
                await backend.insert_many(conn, table, rows[start : start + 50_000])
        creators = ids[:: max(1, len(ids) // 50)][:50]
        await conn.execute(
            update(personas)
            .where(personas.c.account_id == account, personas.c.seq % 3 == 0)
            .values(created_by_persona_id=creators[0])
        )
        await backend.analyze(
            conn, (persons, personas, teams, team_members, budgets, budget_members, addresses)
        )
    return {
        "teams": len(team_rows),
        "team_members": len(members),
        "budgets": len(budget_rows),
        "budget_members": len(shared_members),
        "addresses": len(address_rows),
    }


async def make_client(engine: AsyncEngine) -> str:
    async with unit_of_work(engine, write=True) as conn:
        made = await create_client(conn, "bench", ["read", "write"], None)
    return made.api_key


async def team_ids(engine: AsyncEngine, account: str, count: int) -> list[str]:
    async with unit_of_work(engine, write=False) as conn:
        found = await conn.scalars(
            select(teams.c.id)
            .where(teams.c.account_id == account)
            .order_by(teams.c.name)
            .limit(count)
        )
        return [str(t) for t in found]


# -- the naive search --------------------------------------------------------------------


async def naive_search(
    engine: AsyncEngine, account: str, term_sets: Sequence[Sequence[str]], repeat: int
) -> float:
    """Median ms of what a simple implementation runs: ILIKE '%term%' over names and emails,
    the page of 100 in the spec's order, and the count."""
    times: list[float] = []
    async with unit_of_work(engine, write=False) as conn:
        for n in range(repeat):
            terms = term_sets[n % len(term_sets)]
            condition = [
                persons.c.first_name.ilike(f"%{t}%")
                | persons.c.last_name.ilike(f"%{t}%")
                | persons.c.email_address.ilike(f"%{t}%")
                | personas.c.email_address.ilike(f"%{t}%")
                for t in terms
            ]
            joined = persons.join(personas, personas.c.person_id == persons.c.id)
            where = [personas.c.account_id == account, *condition]
            page = (
                select(persons.c.id)
                .select_from(joined)
                .where(*where)
                .order_by(
                    func.lower(persons.c.last_name), func.lower(persons.c.first_name), persons.c.id
                )
                .limit(100)
            )
            count = select(func.count()).select_from(joined).where(*where)
            started = time.perf_counter()
            await conn.execute(page)
            await conn.scalar(count)
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


# -- measuring ---------------------------------------------------------------------------


def people_call(**params: Any) -> Call:
    return Call("GET", "/people?" + urlencode({"accountId": BIG, **params}, doseq=True))


def find_call(**criteria: str) -> Call:
    return Call("POST", "/persons/find/", json.dumps(criteria))


def check(median: float | None, limit: float | None) -> bool | None:
    return None if median is None or limit is None else median <= limit


def measure(
    report: Report,
    server: Server,
    headers: dict[str, str],
    what: str,
    calls: Sequence[Call],
    *,
    requests: int,
    median_target: float | None = None,
    p99_target: float | None = None,
    target: str = "",
) -> Measured:
    warm = run_sequential(server.base_url, calls, headers, requests=min(50, requests))
    got = run_one_at_a_time(
        server.base_url, calls, headers, requests=requests, estimate_ms=warm.median_ms
    )
    met = check(got.median_ms, median_target)
    if p99_target is not None:
        met = bool(met) and got.p99_ms <= p99_target
    errors = f"{got.errors} errors" if got.errors else ""
    report.add(
        Figure(
            what,
            target,
            got.median_ms,
            got.p99_ms,
            got.rate,
            met,
            f"n={got.requests} {errors}".strip(),
            got.tool,
        )
    )
    return got


def throughput(
    report: Report,
    server: Server,
    headers: dict[str, str],
    what: str,
    calls: Sequence[Call],
    seconds: float,
    minimum: float | None,
) -> None:
    # A warm-up at the same load, not counted: the server's pool fills to 16 connections
    # and PostgreSQL's backends warm their caches, as on a server that has been running.
    run_concurrent(server.base_url, calls, headers, connections=16, seconds=min(3.0, seconds))
    got = run_concurrent(server.base_url, calls, headers, connections=16, seconds=seconds)
    met = None if minimum is None else got.rate >= minimum and not got.errors
    target = f">= {minimum:,.0f}/s" if minimum else ""
    note = f"16 connections, {got.requests} requests, {got.errors} errors"
    report.add(Figure(what, target, got.median_ms, got.p99_ms, got.rate, met, note, got.tool))


def run(kind: str, smoke: bool, work: Path, out: Path, reuse: bool = False) -> Report:
    scale = SCALES["smoke" if smoke else kind]
    report = Report(kind, scale, smoke)
    report.facts.update(
        machine=f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        started=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        personas=scale.personas,
    )
    work.mkdir(parents=True, exist_ok=True)
    name = database_name(smoke)
    url = reused_database(kind, work, name) if reuse else fresh_database(kind, work, name)
    print(f"# {kind}: {scale.personas:,} personas ({'smoke' if smoke else 'full'})", flush=True)
    roster(url, "migrate")
    if kind == "postgres":
        report.facts["postgres"] = in_database(url, server_settings)
    if not reuse:
        in_database(url, lambda engine: create_accounts(engine, scale))
    t = time.perf_counter()
    big_file, small_file, sample = write_files(scale, work)
    report.facts["data_files_seconds"] = round(time.perf_counter() - t, 1)
    if reuse:
        report.facts["import"] = "not measured: the data of an earlier run was reused (--reuse)"
    else:
        measure_import(report, url, big_file, small_file)
        report.facts["enrichment"] = in_database(url, lambda engine: enrich(engine, BIG))
        if kind == "postgres":
            vacuum(url)
    api_key = in_database(url, make_client)
    team_list = in_database(url, lambda engine: team_ids(engine, BIG, 30))
    headers = {"Authorization": f"ApiKey {api_key}"}
    measure_http(report, url, headers, sample, team_list, work)
    names = [f"{row['first_name']} {row['last_name']}" for row in sample]
    measure_browser(report, url, api_key, names, work, BIG)
    measure_load(report, url, headers, sample, work)
    out.mkdir(parents=True, exist_ok=True)
    name = f"{kind}{'-smoke' if smoke else ''}"
    (out / f"{name}.json").write_text(
        json.dumps(
            {
                "database": kind,
                "scale": asdict(scale),
                "facts": report.facts,
                "figures": [asdict(f) for f in report.figures],
            },
            indent=2,
        )
    )
    (out / f"{name}.md").write_text(report.markdown() + "\n")
    return report


def measure_import(report: Report, url: str, big_file: Path, small_file: Path) -> None:
    scale = report.scale
    kind = report.database
    big_seconds, big_summary = timed_import(url, big_file, "--account", BIG)
    small_seconds, small_summary = timed_import(url, small_file)
    imported = scale.personas
    rate = imported / (big_seconds + small_seconds)
    failed = big_summary["failed"] + small_summary["failed"]
    report.add(
        Figure(
            f"`roster import` of {imported:,} rows",
            ">= 20,000 rows/s" if kind == "postgres" else "",
            rate=rate,
            met=(rate >= 20_000 and not failed) if kind == "postgres" else None,
            note=f"BIG {scale.big:,} in {big_seconds:.1f}s, {scale.small_accounts} accounts in "
            f"{small_seconds:.1f}s, {failed} failed",
        )
    )


def measure_http(
    report: Report,
    url: str,
    headers: dict[str, str],
    sample: list[dict[str, str]],
    team_list: list[str],
    work: Path,
) -> None:
    scale = report.scale
    postgres = report.database == "postgres"
    finds = {
        "email": [find_call(email_address=r["email_address"].upper()) for r in sample],
        "phone": [find_call(phone_number=r["phone_number"]) for r in sample],
        "external_ref": [find_call(external_ref=r["external_ref"]) for r in sample],
    }
    full_names = [f"{r['first_name']} {r['last_name']}" for r in sample]
    fragments = [f for r in sample if (f := _fragment(r["last_name"]))]
    with serve(url, workers=2, log_dir=work) as server:
        for what, calls in finds.items():
            if not postgres and what != "email":
                continue
            measure(
                report,
                server,
                headers,
                f"find by {what}",
                calls,
                requests=scale.sequential,
                median_target=2,
                target="median <= 2 ms",
            )
            if postgres:
                throughput(
                    report,
                    server,
                    headers,
                    f"find by {what}, 16 connections",
                    calls,
                    scale.concurrent_seconds,
                    1500,
                )
        selective = [people_call(search=n) for n in full_names]
        fragment_calls = [people_call(search=f) for f in fragments]
        limit, p99 = (20.0, 60.0) if postgres else (30.0, None)
        target = "median <= 20 ms, p99 <= 60 ms" if postgres else "median <= 30 ms"
        full = measure(
            report,
            server,
            headers,
            "search, a full name",
            selective,
            requests=scale.sequential,
            median_target=limit,
            p99_target=p99,
            target=target,
        )
        part = measure(
            report,
            server,
            headers,
            "search, a last-name fragment",
            fragment_calls,
            requests=scale.sequential,
            median_target=limit,
            p99_target=p99,
            target=target,
        )
        broad = measure(
            report,
            server,
            headers,
            "search, broad (about 5%)",
            [people_call(search=data.BROAD_DOMAIN.split(".")[0])],
            requests=scale.slow_sequential,
            median_target=250 if postgres else None,
            target="median <= 250 ms" if postgres else "",
        )
        compare_naive(report, url, sample, fragments, full, part, broad)
        filters = [
            people_call(
                status="active", roleNames="admin,user", teams=",".join(team_list[n : n + 2])
            )
            for n in range(0, max(1, len(team_list) - 1), 2)
        ]
        measure(
            report,
            server,
            headers,
            "filters only (status + roleNames + teams)",
            filters,
            requests=scale.sequential,
            median_target=50 if postgres else None,
            target="median <= 50 ms" if postgres else "",
        )
        measure(
            report,
            server,
            headers,
            f"offset={scale.offset}&limit=100",
            [people_call(offset=scale.offset, limit=100)],
            requests=scale.slow_sequential,
            median_target=200 if postgres else None,
            target="median <= 200 ms" if postgres else "",
        )
        big_page(report, server, headers)


def _fragment(last_name: str) -> str | None:
    """Five letters from inside the longest word of a last name (one search term of 4+
    letters, as the target says), or None when no word is long enough."""
    word = max(last_name.split(), key=len)
    if len(word) < 5:
        return None
    return word[1:6] if len(word) >= 6 else word


def compare_naive(
    report: Report, url: str, sample: list[dict[str, str]], fragments: list[str], *served: Measured
) -> None:
    names = [(r["first_name"], r["last_name"]) for r in sample]
    repeat = min(5, report.scale.sequential)  # seconds each at full size: a median of 5
    cases = (
        ("full name", [list(n) for n in names]),
        ("last-name fragment", [[f] for f in fragments]),
        ("broad", [[data.BROAD_DOMAIN.split(".")[0]]]),
    )
    for (label, terms), ours in zip(cases, served, strict=True):
        naive = in_database(url, lambda e, t=terms: naive_search(e, BIG, t, repeat))  # type: ignore[misc]
        report.add(
            Figure(
                f"naive ILIKE search, {label} (in the database)",
                "",
                naive,
                note=f"Roster over HTTP is {naive / ours.median_ms:,.1f}x faster",
            )
        )


def big_page(report: Report, server: Server, headers: dict[str, str]) -> None:
    scale = report.scale
    include = ",".join(
        (
            "persona.addresses",
            "persona.createdBy",
            "persona.teams",
            "persona.primaryOwnerOf",
            "persona.roles",
        )
    )
    call = people_call(limit=scale.big_page, include=include)
    seconds: list[float] = []
    growth = 0
    for _ in range(3):
        with RssSampler(server) as rss:
            got = run_sequential(server.base_url, [call], headers, requests=1)
        seconds.append(got.median_ms / 1000)
        growth = max(growth, rss.peak - rss.baseline)
    postgres = report.database == "postgres"
    met = (max(seconds) <= 5 and growth <= 150 * MB) if postgres else None
    report.add(
        Figure(
            f"limit={scale.big_page} with all five embeds",
            "<= 5 s, RSS growth <= 150 MB",
            statistics.median(seconds) * 1000,
            max(seconds) * 1000,
            met=met,
            note=f"peak RSS growth {growth / MB:.0f} MB, {len(server.workers())} server processes",
        )
    )


def measure_load(
    report: Report, url: str, headers: dict[str, str], sample: list[dict[str, str]], work: Path
) -> None:
    """Mixed traffic at a fixed rate: finds, lists, searches and writes; errors and memory."""
    from bench.steady import steady_load

    scale = report.scale
    with serve(url, workers=2, log_dir=work) as server:
        got = steady_load(server, headers, sample, seconds=scale.load_seconds, rate=scale.load_rate)
    growth = (got.rss_end - got.rss_warm) / got.rss_warm * 100
    report.add(
        Figure(
            f"load: {scale.load_seconds:.0f} s of mixed traffic at {scale.load_rate:.0f}/s",
            "0 errors; RSS within 10%",
            got.median_ms,
            got.p99_ms,
            got.rate,
            met=got.errors == 0 and abs(growth) <= 10,
            note=f"{got.requests} requests, {got.errors} errors, RSS {got.rss_warm / MB:.0f} MB "
            f"after warm-up, {got.rss_end / MB:.0f} MB at the end ({growth:+.1f}%)"
            + (f"; failed: {'; '.join(sorted(set(got.failures)))}" if got.failures else ""),
            tool="python asyncio",
        )
    )
