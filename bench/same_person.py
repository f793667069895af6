"""Concurrent upserts of one new person: how many persons they make (a sequential run: 1).

    python -m bench.same_person                 # 50 at once, by phone, PostgreSQL
    python -m bench.same_person --writers 20 --key email_address

Each run creates its own PostgreSQL database, serves it with ``roster serve --workers
2``, opens as many connections as writers (with a find each), then sends the upserts
at once, each one
``POST /persons/multiple/`` of the same new person (a phone number, or another key,
and a first name) into one account; then it counts the persons and the failed items.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from collections.abc import Sequence
from pathlib import Path

import asyncpg
import httpx

from bench.import_rate import scratch_postgres
from bench.server import serve
from roster.core.accounts import create_account
from roster.core.auth import create_client
from roster.db.engine import create_engine, unit_of_work
from roster.db.migrate import upgrade
from roster.settings import Settings

ACCOUNT = "RACE1"
VALUES = {
    "phone_number": "07700 900123",
    "email_address": "racer@example.com",
    "external_ref": "racer-1",
}


async def prepare(
    url: str, account: str = ACCOUNT, name: str = "race", scopes: Sequence[str] = ("read", "write")
) -> str:
    """Migrate, create the account and a client reaching it; the client's API key."""
    engine = create_engine(Settings(_env_file=None, database_url=url))
    try:
        await upgrade(engine)
        async with unit_of_work(engine, write=True) as conn:
            await create_account(conn, account, name)
            client = await create_client(conn, name, scopes, [account])
        return client.api_key
    finally:
        await engine.dispose()


async def _race(base_url: str, api_key: str, writers: int, key: str) -> tuple[int, int]:
    """Send the upserts at once; how many answered 200 and how many items succeeded."""
    item = {key: VALUES[key], "first_name": "Racer", "group_ids": [ACCOUNT]}
    limits = httpx.Limits(max_connections=writers)
    headers = {"Authorization": f"ApiKey {api_key}"}
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as http:
        # Connections opened first (client and database side), so that no writer waits
        # for one while the others run ahead.
        await asyncio.gather(
            *(
                http.post("/persons/find/", json={"external_ref": "none"}, headers=headers)
                for _ in range(writers)
            )
        )
        answers = await asyncio.gather(
            *(
                http.post("/persons/multiple/", json={"persons": [item]}, headers=headers)
                for _ in range(writers)
            )
        )
    done = [a for a in answers if a.status_code == 200]
    return len(done), sum(bool(a.json()["persons"][0]["success"]) for a in done)


async def _count_persons(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM persons"))
    finally:
        await conn.close()


async def main(writers: int, key: str) -> None:
    async with scratch_postgres() as url:
        api_key = await prepare(url)
        with serve(url, workers=2, log_dir=Path(tempfile.mkdtemp())) as server:
            answered, succeeded = await _race(server.base_url, api_key, writers, key)
        print(
            f"{writers} concurrent upserts of one new person by {key}: "
            f"{await _count_persons(url)} person(s) made; {answered} answered 200, "
            f"{succeeded} items succeeded"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=50)
    parser.add_argument("--key", choices=sorted(VALUES), default="phone_number")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.writers, arguments.key))
