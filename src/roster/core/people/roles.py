"""Roles: the six core roles every account has, and the account's own."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from roster.core.clock import now
from roster.core.events import append_events, created_event
from roster.core.matching import name_key
from roster.core.people.paging import Page, Paging, page_of
from roster.core.writer import write_unique
from roster.db.backends import backend_for
from roster.db.tables import roles
from roster.errors import Conflict


@dataclass(frozen=True)
class Role:
    id: uuid.UUID
    account_id: str
    name: str
    type: str | None
    created_at: datetime
    updated_at: datetime


_ROLE_COLUMNS = (
    roles.c.id,
    roles.c.account_id,
    roles.c.name,
    roles.c.type,
    roles.c.created_at,
    roles.c.updated_at,
)


def _role(row: object) -> Role:
    return Role(*(getattr(row, column.name) for column in _ROLE_COLUMNS))


async def list_roles(conn: AsyncConnection, account_id: str, paging: Paging) -> Page[Role]:
    """The account's roles, by name ignoring case."""
    by_name = (backend_for(conn).byte_order(roles.c.name_key), roles.c.id)
    count, rows = await page_of(conn, roles, account_id, paging, by_name)
    return Page(count, paging.limit, paging.offset, [_role(row) for row in rows])


async def role_names(conn: AsyncConnection, account_id: str) -> list[str]:
    """The names of the account's roles, by name ignoring case."""
    found = await conn.scalars(
        select(roles.c.name)
        .where(roles.c.account_id == account_id)
        .order_by(backend_for(conn).byte_order(roles.c.name_key))
    )
    return list(found)


async def create_role(conn: AsyncConnection, account_id: str, name: str) -> Role:
    """A custom role; ``Conflict`` if the account has a role of this name, ignoring case."""
    key = name_key(name) or ""
    taken = await conn.scalar(
        select(roles.c.id).where(roles.c.account_id == account_id, roles.c.name_key == key)
    )
    if taken is not None:
        raise Conflict(f"Account {account_id!r} already has a role named {name!r}.")
    at = now()
    role = Role(uuid.uuid4(), account_id, name, None, at, at)
    await write_unique(
        conn,
        insert(roles).values(
            id=role.id,
            account_id=account_id,
            name=name,
            name_key=key,
            type=None,
            created_at=at,
            updated_at=at,
        ),
        f"Account {account_id!r} already has a role named {name!r}.",
    )
    await append_events(conn, [created_event(account_id, "role", role)])
    return role
