from __future__ import annotations

import httpx
import pytest
from sqlalchemy import text

from roster.db.engine import unit_of_work
from tests.factories import Directory


async def test_find_by_email(client: httpx.AsyncClient, directory: Directory) -> None:
    await directory.account("F50091")
    caller = await directory.client(["F50091"])
    person_id = await directory.person(
        ["F50091"], first_name="Test", last_name="Person 1", email_address="Test1@Example.com"
    )
    response = await client.post(
        "/persons/find/", json={"email_address": "test1@example.COM"}, headers=caller.headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["last_id"] == -1
    assert [p["identifier"] for p in body["persons"]] == [str(person_id)]
    assert body["persons"][0]["group_ids"] == ["F50091"]


async def test_postgres_sessions_run_without_jit_or_parallel_workers(
    directory: Directory,
) -> None:
    """Roster's own session settings (db/engine.py) are in force on its connections."""
    async with unit_of_work(directory.engine, write=False) as conn:
        if conn.dialect.name != "postgresql":
            pytest.skip("PostgreSQL session settings")
        shown = {
            name: await conn.scalar(text(f"SHOW {name}"))
            for name in ("jit", "max_parallel_workers_per_gather", "application_name")
        }
    assert shown == {
        "jit": "off",
        "max_parallel_workers_per_gather": "0",
        "application_name": "roster",
    }
