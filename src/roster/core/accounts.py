"""Accounts (the Persons API's groups), their core roles, and which ones a client reaches."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from roster.core.auth import Principal
from roster.core.clock import now
from roster.core.events import append_events, created_event
from roster.core.fields import ACCOUNT, storable
from roster.core.matching import matching
from roster.db.backends import backend_for
from roster.db.tables import CORE_ROLES, accounts, personas, roles
from roster.errors import (
    AccountNotFound,
    BothGroupIdentifiersProvided,
    Conflict,
    GroupNotFound,
    InvalidRequest,
    Problem,
)


@dataclass(frozen=True)
class Account:
    id: str
    name: str
    external_ref: str | None
    created_at: datetime


async def create_account(
    conn: AsyncConnection, account_id: str, name: str, external_ref: str | None = None
) -> Account:
    """Create an account with its six core roles."""
    for field, value in (("id", account_id), ("name", name), ("external_ref", external_ref)):
        if value is not None:
            ACCOUNT[field].check(value)
    same = accounts.c.id == account_id
    if external_ref is not None:
        same = same | (accounts.c.external_ref == external_ref)
    if await conn.scalar(select(func.count()).select_from(accounts).where(same)):
        raise Conflict(f"An account with id {account_id!r} or that external ref already exists.")
    created = now()
    await conn.execute(
        insert(accounts).values(
            id=account_id, name=name, external_ref=external_ref, created_at=created
        )
    )
    await conn.execute(
        insert(roles),
        [
            {
                "id": uuid.uuid4(),
                "account_id": account_id,
                "name": role,
                "name_key": role.casefold(),
                "type": "core",
                "created_at": created,
                "updated_at": created,
            }
            for role in CORE_ROLES
        ],
    )
    account = Account(account_id, name, external_ref, created)
    await append_events(conn, [created_event(account_id, "account", account)])
    return account


#: An account's fields, in the order of :class:`Account`.
_ACCOUNT = select(accounts.c.id, accounts.c.name, accounts.c.external_ref, accounts.c.created_at)
#: One account by id, built once: every People API request reads it.
_ACCOUNT_BY_ID = _ACCOUNT.where(accounts.c.id == bindparam("account_id"))


async def list_accounts(conn: AsyncConnection) -> list[Account]:
    """Every account, by id."""
    return [Account(*row) for row in await conn.execute(_ACCOUNT.order_by(accounts.c.id))]


async def reachable_accounts(
    conn: AsyncConnection, principal: Principal, search: str | None = None
) -> list[Account]:
    """The accounts a client reaches, by id; with ``search``, those whose id or name holds
    every term (accents and case ignored, as the People API's search)."""
    statement = _ACCOUNT.order_by(accounts.c.id)
    if principal.account_ids is not None:
        statement = statement.where(accounts.c.id.in_(sorted(principal.account_ids)))
    found = [Account(*row) for row in await conn.execute(statement)]
    return matching(found, search, lambda account: f"{account.id} {account.name}")


@dataclass(frozen=True)
class Membership:
    """A person's persona on one account."""

    account_id: str
    account_name: str
    persona_id: uuid.UUID
    status: str


async def memberships_of(
    conn: AsyncConnection, principal: Principal, person_id: uuid.UUID
) -> list[Membership]:
    """The person's personas on the accounts this client reaches, by account id."""
    statement = (
        select(accounts.c.id, accounts.c.name, personas.c.id, personas.c.status)
        .join(personas, personas.c.account_id == accounts.c.id)
        .where(personas.c.person_id == person_id)
        .order_by(accounts.c.id)
    )
    if principal.account_ids is not None:
        statement = statement.where(accounts.c.id.in_(sorted(principal.account_ids)))
    return [Membership(*row) for row in await conn.execute(statement)]


async def require_account(conn: AsyncConnection, principal: Principal, account_id: str) -> str:
    """The account, if it exists and the client reaches it; else ``account_not_found``.

    Both cases answer the same, so that no client learns which accounts exist.
    """
    return (await reachable_account(conn, principal, account_id)).id


async def reachable_account(
    conn: AsyncConnection, principal: Principal, account_id: str
) -> Account:
    """The account itself, as :func:`require_account` finds it."""
    if principal.can_reach(account_id):
        backend = backend_for(conn)
        found = await backend.fetch_plain(conn, _ACCOUNT_BY_ID, {"account_id": account_id})
        if found:
            return Account(*found[0])
    raise AccountNotFound(f"There is no account {account_id!r} that you can reach.")


async def resolve_groups(
    conn: AsyncConnection,
    principal: Principal,
    group_ids: Sequence[str] | None,
    external_refs: Sequence[str] | None,
) -> frozenset[str] | None:
    """The account ids a Persons API call is limited to; ``None`` means every account.

    Unknown groups and groups the client cannot reach answer the same
    ``group_not_found``, naming them.
    """
    if group_ids is not None and external_refs is not None:
        raise BothGroupIdentifiersProvided()
    if group_ids is None and external_refs is None:
        return principal.account_ids
    field, wanted, column = (
        ("group_ids", group_ids, accounts.c.id)
        if group_ids is not None
        else ("groups_external_refs", external_refs, accounts.c.external_ref)
    )
    assert wanted is not None
    if not wanted:
        raise InvalidRequest.field(field, "must name at least one group when given")
    asked = {name for name in wanted if storable(name)}
    rows = await conn.execute(select(column, accounts.c.id).where(column.in_(asked)))
    found = {name: account_id for name, account_id in rows if principal.can_reach(account_id)}
    missing = [name for name in dict.fromkeys(wanted) if name not in found]
    if missing:
        raise GroupNotFound(
            f"No group {', '.join(repr(m) for m in missing)} exists that you can reach.",
            details=[Problem(field, f"{m!r} not found") for m in missing],
        )
    return frozenset(found.values())
