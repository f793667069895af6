"""Small factories that set up directory state through the core (the code the app runs)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from hypothesis import HealthCheck, settings
from sqlalchemy import event, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from roster.core.accounts import create_account
from roster.core.auth import ACCESS_TOKEN_PREFIX, ClientCredentials, create_client, digest
from roster.core.people.addresses import add_address
from roster.core.people.roles import create_role
from roster.core.people.teams_and_budgets import create_budget, create_team
from roster.core.writer import PersonWrite, write_persons
from roster.db.engine import unit_of_work
from roster.db.tables import access_tokens, metadata, personas
from roster.settings import Settings

#: The property tests' budget: enough examples to find a broken rule, small enough to be quick.
PROPERTY_SETTINGS = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


async def reset_database(engine: AsyncEngine) -> None:
    """Empty every table, and restart the cursor sequence, as after a fresh migration."""
    names = [t.name for t in reversed(metadata.sorted_tables)]
    async with unit_of_work(engine, write=True) as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text(f"TRUNCATE {', '.join(names)} RESTART IDENTITY CASCADE"))
        else:
            for name in names:
                await conn.execute(text(f"DELETE FROM {name}"))  # noqa: S608 - table names
            await conn.execute(text("UPDATE sqlite_sequence SET seq = 1 WHERE name = 'persons'"))


@dataclass(frozen=True)
class Client:
    """An API client as a test holds it: its credentials and ready-made headers."""

    credentials: ClientCredentials

    @property
    def client_id(self) -> str:
        return self.credentials.client_id

    @property
    def secret(self) -> str:
        return self.credentials.client_secret

    @property
    def api_key(self) -> str:
        return self.credentials.api_key

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"ApiKey {self.api_key}"}


def forged_jwt(claims: dict[str, Any], key: str) -> str:
    """An HS256 JSON Web Token signed with ``key``: what a caller holding a signing key
    could make."""

    def part(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    header = part(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = part(json.dumps(claims, default=lambda at: int(at.timestamp())).encode())
    signature = hmac.new(key.encode(), f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{part(signature)}"


async def bearer_token(http: httpx.AsyncClient, caller: Client) -> str:
    """An access token for this client, from the token endpoint."""
    response = await http.post(
        "/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": caller.client_id,
            "client_secret": caller.secret,
        },
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


@dataclass
class Directory:
    engine: AsyncEngine
    settings: Settings

    async def account(
        self, account_id: str, name: str | None = None, external_ref: str | None = None
    ) -> str:
        async with unit_of_work(self.engine, write=True) as conn:
            await create_account(conn, account_id, name or f"Account {account_id}", external_ref)
        return account_id

    async def client(
        self,
        accounts: Iterable[str] | None = None,
        scopes: Sequence[str] = ("read", "write"),
        name: str = "test client",
    ) -> Client:
        """A client reaching ``accounts`` (``None``: every account)."""
        async with unit_of_work(self.engine, write=True) as conn:
            credentials = await create_client(
                conn, name, scopes, None if accounts is None else list(accounts)
            )
        return Client(credentials)

    async def fresh(self, accounts: Iterable[str], items: Sequence[PersonWrite]) -> list[uuid.UUID]:
        """Empty the directory, create these accounts, then upsert the items: their person ids."""
        await reset_database(self.engine)
        async with unit_of_work(self.engine, write=True) as conn:
            for account in accounts:
                await create_account(conn, account, account)
            outcomes = await write_persons(conn, items, region=self.settings.default_phone_region)
        assert all(o.person_id for o in outcomes), [o.error for o in outcomes]
        return [o.person_id for o in outcomes if o.person_id is not None]

    async def expired_token(self, client_id: str, ago: timedelta = timedelta(seconds=5)) -> str:
        """A bearer token of this client that expired ``ago`` (stored as the token endpoint
        stores tokens)."""
        token = ACCESS_TOKEN_PREFIX + secrets.token_urlsafe(32)
        at = datetime.now(UTC)
        async with unit_of_work(self.engine, write=True) as conn:
            await conn.execute(
                insert(access_tokens).values(
                    token_hash=digest(token),
                    client_id=client_id,
                    issued_at=at - ago - timedelta(hours=1),
                    expires_at=at - ago,
                )
            )
        return token

    async def person(self, accounts: Iterable[str], **fields: Any) -> uuid.UUID:
        """Create (or update, by the matching rules) a person with personas in ``accounts``."""
        persona: dict[str, Any] = {
            k: fields.pop(k)
            for k in (
                "status",
                "role_name",
                "employee_number",
                "job_title",
                "work_number",
                "user_name",
            )
            if k in fields
        }
        fields.setdefault("external_ref", f"ref-{uuid.uuid4().hex[:12]}")
        async with unit_of_work(self.engine, write=True) as conn:
            [outcome] = await write_persons(
                conn,
                [PersonWrite(fields, frozenset(accounts), persona)],
                region=self.settings.default_phone_region,
            )
        assert outcome.error is None, outcome.error
        assert outcome.person_id is not None
        return outcome.person_id

    async def persona(self, person_id: uuid.UUID, account_id: str) -> uuid.UUID:
        """The id of a person's persona on an account."""
        async with unit_of_work(self.engine, write=False) as conn:
            found: uuid.UUID | None = await conn.scalar(
                select(personas.c.id).where(
                    personas.c.person_id == person_id, personas.c.account_id == account_id
                )
            )
        assert found is not None
        return found

    async def role(self, account_id: str, name: str) -> uuid.UUID:
        async with unit_of_work(self.engine, write=True) as conn:
            return (await create_role(conn, account_id, name)).id

    async def team(
        self,
        account_id: str,
        name: str,
        owner: uuid.UUID | None = None,
        members: Sequence[uuid.UUID] = (),
    ) -> uuid.UUID:
        async with unit_of_work(self.engine, write=True) as conn:
            return (await create_team(conn, account_id, name, owner, members)).id

    async def budget(
        self,
        account_id: str,
        name: str,
        budget_type: str = "shared",
        owner: uuid.UUID | None = None,
        members: Sequence[uuid.UUID] = (),
    ) -> uuid.UUID:
        async with unit_of_work(self.engine, write=True) as conn:
            return (await create_budget(conn, account_id, name, budget_type, owner, members)).id

    async def address(self, account_id: str, persona_id: uuid.UUID, **fields: Any) -> uuid.UUID:
        given = {
            "type": "home",
            "address_line1": "1 High Street",
            "city": "London",
            "postcode": "N1 1AA",
            "country_code": "GB",
            **fields,
        }
        async with unit_of_work(self.engine, write=True) as conn:
            return (await add_address(conn, account_id, persona_id, given)).id


@contextmanager
def statements_sent(engine: AsyncEngine) -> Iterator[list[str]]:
    """Every statement SQLAlchemy sends on ``engine``'s connections while the block runs,
    in order, as sent."""
    sent: list[str] = []

    def seen(*args: Any) -> None:
        sent.append(args[2])

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        yield sent
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", seen)
