"""Small factories that set up directory state through the core (the code the app runs)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from roster.core.accounts import create_account
from roster.core.auth import ClientCredentials, create_client
from roster.core.upsert import UpsertItem, upsert_persons
from roster.db.engine import unit_of_work
from roster.db.tables import metadata
from roster.settings import Settings


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

    async def person(self, accounts: Iterable[str], **fields: Any) -> uuid.UUID:
        """Create (or update, by the matching rules) a person with personas in ``accounts``."""
        persona: dict[str, Any] = {
            k: fields.pop(k)
            for k in ("status", "role_name", "employee_number", "job_title", "work_number")
            if k in fields
        }
        fields.setdefault("external_ref", f"ref-{uuid.uuid4().hex[:12]}")
        async with unit_of_work(self.engine, write=True) as conn:
            [outcome] = await upsert_persons(
                conn,
                [UpsertItem(fields, frozenset(accounts), persona)],
                region=self.settings.default_phone_region,
            )
        assert outcome.error is None, outcome.error
        assert outcome.person_id is not None
        return outcome.person_id
