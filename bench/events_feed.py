"""The delay from a commit to a long-polling consumer of ``GET /events`` seeing it.

    python -m bench.events_feed                    # PostgreSQL at 127.0.0.1:5432
    python -m bench.events_feed --sqlite --changes 100 --rate 20

One app in this process (httpx's ASGI transport, no network): a writer makes
``--changes`` changes at ``--rate`` a second through ``POST /people``; a consumer follows
the account's log with ``wait=30``. For each change, the time from its answer (the
commit) to the consumer's page holding its event: median, p99, max.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from typing import Any

import httpx

from bench.import_rate import scratch_postgres
from roster.api.app import create_app
from roster.core.accounts import create_account
from roster.core.auth import create_client
from roster.db.engine import unit_of_work
from roster.db.migrate import upgrade
from roster.settings import Settings

ACCOUNT = "FEED1"


async def _measure(url: str, changes: int, rate: float) -> list[float]:
    settings = Settings(_env_file=None, database_url=url, rate_limit="1000000/minute")
    app = create_app(settings)
    engine = app.state.services.engine
    await upgrade(engine)
    async with unit_of_work(engine, write=True) as conn:
        await create_account(conn, ACCOUNT, "Feed")
        credentials = await create_client(conn, "bench", ["read", "write"], [ACCOUNT])
    headers = {"Authorization": f"ApiKey {credentials.api_key}"}
    committed: dict[str, float] = {}
    seen: dict[str, float] = {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://bench", headers=headers, timeout=60
    ) as http:
        last = (await http.get("/events", params={"accountId": ACCOUNT})).json()["nextAfter"]

        async def consume() -> None:
            nonlocal last
            while len(seen) < changes:
                params: dict[str, Any] = {"accountId": ACCOUNT, "after": last, "wait": 30}
                page = (await http.get("/events", params=params)).json()
                at = time.perf_counter()
                for event in page["events"]:
                    seen.setdefault(event["resource"]["id"], at)
                last = page["nextAfter"]

        consumer = asyncio.create_task(consume())
        for n in range(changes):
            started = time.perf_counter()
            body = {"accountId": ACCOUNT, "firstName": "F", "lastName": f"L{n}", "roleName": "User"}
            answer = await http.post("/people", json=body)
            committed[answer.json()["id"]] = time.perf_counter()
            await asyncio.sleep(max(0.0, 1 / rate - (time.perf_counter() - started)))
        await asyncio.wait_for(consumer, 60)
    await engine.dispose()
    return sorted(seen[person] - at for person, at in committed.items())


def _report(delays: list[float]) -> None:
    p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))]
    median = statistics.median(delays)
    print(
        f"{len(delays)} changes: commit to consumer median {median * 1000:.0f} ms, "
        f"p99 {p99 * 1000:.0f} ms, max {delays[-1] * 1000:.0f} ms"
    )


async def _on_postgres(changes: int, rate: float) -> list[float]:
    async with scratch_postgres() as url:
        return await _measure(url, changes, rate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--rate", type=float, default=50.0, help="changes a second")
    parser.add_argument("--sqlite", action="store_true", help="a SQLite file instead")
    args = parser.parse_args()
    if args.sqlite:
        with tempfile.TemporaryDirectory() as directory:
            url = f"sqlite:///{directory}/bench.db"
            _report(asyncio.run(_measure(url, args.changes, args.rate)))
    else:
        _report(asyncio.run(_on_postgres(args.changes, args.rate)))


if __name__ == "__main__":
    main()
