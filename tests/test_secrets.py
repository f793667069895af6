"""No secret, key or token is ever in the database, a log line or an error body."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest
from sqlalchemy import make_url, select

from roster.db.engine import unit_of_work
from roster.db.tables import metadata
from tests.factories import Directory


async def database_text(directory: Directory) -> str:
    """Every row of every table as text; on SQLite also the raw bytes of its files (WAL too)."""
    dumped: list[str] = []
    async with unit_of_work(directory.engine, write=False) as conn:
        for table in metadata.sorted_tables:
            dumped += [repr(tuple(row)) for row in await conn.execute(select(table))]
    database = make_url(directory.settings.database_url).database
    if database and database.startswith("/"):
        for path in Path(database).parent.glob(Path(database).name + "*"):
            dumped.append(path.read_bytes().decode("latin-1"))
    return "\n".join(dumped)


async def test_secrets_appear_in_no_table_log_or_error(
    client: httpx.AsyncClient, directory: Directory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)  # statements and parameters
    await directory.account("F50091")
    caller = await directory.client(["F50091"])
    token = (
        await client.post(
            "/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": caller.client_id,
                "client_secret": caller.secret,
            },
        )
    ).json()["access_token"]
    bodies = []
    for headers in (
        {"Authorization": f"Bearer {token}"},
        {"Authorization": f"ApiKey {caller.api_key}"},
        {"Authorization": caller.api_key + "x"},  # a near miss
        {"Authorization": f"Bearer {token}x"},
    ):
        for path, body in (
            ("/persons/find/", {"external_ref": "nobody"}),
            ("/persons/multiple/", {"persons": [{"external_ref": "p", "group_ids": ["F50091"]}]}),
        ):
            bodies.append((await client.post(path, json=body, headers=headers)).text)
    bodies.append(
        (
            await client.post(
                "/oauth2/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": caller.client_id,
                    "client_secret": caller.secret + "x",
                },
            )
        ).text
    )
    logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)

    logs = "\n".join(record.getMessage() + repr(vars(record)) for record in caplog.records)
    stored = await database_text(directory)
    # The logs were captured: a line for every request (so every request's is checked
    # below), and the statements with their parameters.
    accepted = [("/persons/find/", 404), ("/persons/multiple/", 200)]
    refused = [("/persons/find/", 401), ("/persons/multiple/", 401)]
    assert [
        (getattr(r, "route", None), getattr(r, "status", None), getattr(r, "client_id", None))
        for r in caplog.records
        if r.name == "roster.access"
    ] == [
        ("/oauth2/token", 200, None),
        *[(route, status, caller.client_id) for route, status in accepted * 2],
        *[(route, status, None) for route, status in refused * 2],
        ("/oauth2/token", 401, None),
    ]
    assert any(
        r.name.startswith("sqlalchemy.engine") and caller.client_id in r.getMessage()
        for r in caplog.records
    )
    assert caller.client_id in stored  # and the database dump holds the client
    for secret in (caller.secret, caller.api_key, token):
        assert secret not in stored
        assert secret not in logs
        assert all(secret not in body for body in bodies)
