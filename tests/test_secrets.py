"""No secret, key or token is ever in the database, a log line or an error body."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import make_url, select

from roster.api.app import create_app
from roster.core.auth import EXPIRED_TOKENS_KEPT, digest
from roster.db.engine import unit_of_work
from roster.db.tables import access_tokens, metadata
from roster.settings import Settings
from tests.factories import Directory, bearer_token, forged_jwt


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
    # The server's engines hide statements' parameters from logs (docs/http.md); shown
    # here, so that a secret sent to the database as a parameter would be seen.
    directory.engine.sync_engine.hide_parameters = False
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


async def test_a_database_dump_holds_nothing_that_authenticates(
    client: httpx.AsyncClient, directory: Directory
) -> None:
    """Every value of every table, tried as a token, a key, a client secret and a token
    signing key: none lets a caller in (a dump of the database forges nothing)."""
    await directory.account("F50091")
    await directory.person(["F50091"], external_ref="x")
    caller = await directory.client(["F50091"])
    token = await bearer_token(client, caller)
    assert (await find(client, f"Bearer {token}")).status_code == 200
    values: set[str] = set()
    async with unit_of_work(directory.engine, write=False) as conn:
        for table in metadata.sorted_tables:
            for row in await conn.execute(select(table)):
                values.update(str(v) for v in row if v is not None and len(str(v)) >= 8)
    assert caller.client_id in values  # the dump holds the client's row
    claims = {"sub": caller.client_id, "exp": datetime.now(UTC) + timedelta(hours=1)}
    for value in sorted(values):
        for header in (
            f"Bearer {value}",
            f"ApiKey {value}",
            value,
            f"Bearer {forged_jwt(claims, value)}",
        ):
            refused = await find(client, header)
            assert refused.status_code == 401, (header, refused.text)
        issued = await client.post(
            "/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": caller.client_id,
                "client_secret": value,
            },
        )
        assert issued.status_code == 401, (value, issued.text)


async def find(client: httpx.AsyncClient, authorization: str) -> httpx.Response:
    return await client.post(
        "/persons/find/", json={"external_ref": "x"}, headers={"Authorization": authorization}
    )


async def test_a_token_from_one_server_works_on_another_sharing_the_database(
    client: httpx.AsyncClient, directory: Directory, settings: Settings
) -> None:
    await directory.account("F50091")
    person = await directory.person(["F50091"], external_ref="x")
    caller = await directory.client(["F50091"])
    token = await bearer_token(client, caller)
    other = create_app(settings)
    try:
        transport = httpx.ASGITransport(app=other)
        async with httpx.AsyncClient(transport=transport, base_url="http://other") as second:
            found = await find(second, f"Bearer {token}")
    finally:
        await other.state.services.engine.dispose()
    assert found.status_code == 200, found.text
    assert [p["identifier"] for p in found.json()["persons"]] == [str(person)]


async def test_tokens_expired_a_day_ago_are_pruned_when_a_token_is_issued(
    client: httpx.AsyncClient, directory: Directory
) -> None:
    await directory.account("F50091")
    caller = await directory.client(["F50091"])
    recent = await directory.expired_token(caller.client_id)
    old = await directory.expired_token(
        caller.client_id, ago=EXPIRED_TOKENS_KEPT + timedelta(minutes=1)
    )
    for token in (recent, old):
        answer = await find(client, f"Bearer {token}")
        assert answer.json()["error"]["type"] == "expired_token"
    await bearer_token(client, caller)
    async with unit_of_work(directory.engine, write=False) as conn:
        kept = set(await conn.scalars(select(access_tokens.c.token_hash)))
    assert digest(old) not in kept
    assert digest(recent) in kept
    assert (await find(client, f"Bearer {recent}")).json()["error"]["type"] == "expired_token"
    assert (await find(client, f"Bearer {old}")).json()["error"]["type"] == "invalid_authorization"
