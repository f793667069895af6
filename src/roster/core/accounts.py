"""Accounts (the Persons API's groups), their core roles, and which ones a client reaches."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from roster.core.auth import Principal
from roster.core.clock import now
from roster.core.events import Event, append_events, created_event
from roster.core.fields import ACCOUNT, storable
from roster.core.matching import matching
from roster.core.people.paging import Page, Paging
from roster.db.backends import backend_for
from roster.db.tables import CORE_ROLES, accounts, personas, roles
from roster.errors import (
    AccountNotFound,
    BothGroupIdentifiersProvided,
    Conflict,
    GroupNotFound,
    InvalidRequest,
    OutOfReach,
    Problem,
)


@dataclass(frozen=True)
class Account:
    id: str
    name: str
    external_ref: str | None
    created_at: datetime


#: The fields of an account that change (its id never does).
UPDATABLE = ("name", "external_ref")


async def create_account(
    conn: AsyncConnection,
    account_id: str,
    name: str,
    external_ref: str | None = None,
    *,
    by: Principal | None = None,
) -> Account:
    """Create an account with its six core roles. ``by``: the admin client asking (None:
    the operator); only a client of every account creates accounts."""
    if by is not None and by.account_ids is not None:
        raise OutOfReach(
            "Only a client of every account may create accounts: a new account would be "
            "outside your client's reach."
        )
    for field, value in (("id", account_id), ("name", name), ("external_ref", external_ref)):
        if value is not None:
            ACCOUNT[field].check(value)
    same = accounts.c.id == account_id
    if external_ref is not None:
        same = same | (accounts.c.external_ref == external_ref)
    taken = Conflict(f"An account with id {account_id!r} or that external ref already exists.")
    if await conn.scalar(select(func.count()).select_from(accounts).where(same)):
        raise taken
    created = now()
    try:
        await conn.execute(
            insert(accounts).values(
                id=account_id, name=name, external_ref=external_ref, created_at=created
            )
        )
    except IntegrityError:  # another transaction took it since
        raise taken from None
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


async def accounts_page(
    conn: AsyncConnection, principal: Principal, paging: Paging
) -> Page[Account]:
    """One page of the accounts a client reaches, by id, and how many it reaches."""
    statement = _ACCOUNT
    counted = select(func.count()).select_from(accounts)
    if principal.account_ids is not None:
        mine = accounts.c.id.in_(sorted(principal.account_ids))
        statement, counted = statement.where(mine), counted.where(mine)
    found = await conn.execute(
        statement.order_by(accounts.c.id).offset(paging.offset).limit(paging.limit)
    )
    rows = [Account(*row) for row in found]
    return Page(await conn.scalar(counted) or 0, paging.limit, paging.offset, rows)


async def update_account(
    conn: AsyncConnection,
    account_id: str,
    changes: Mapping[str, str | None],
    *,
    by: Principal | None = None,
) -> Account:
    """Change an account's name or external ref (``changes`` by core name; a null external
    ref clears it); ``account.updated`` names what changed. ``by``: the admin client asking,
    which must reach the account (None: the operator)."""
    for field, value in changes.items():
        if field not in UPDATABLE:
            raise InvalidRequest.field(field, f"cannot be changed; give {' or '.join(UPDATABLE)}")
        if value is None and not ACCOUNT[field].nullable:
            raise InvalidRequest.field(field, "must not be null")
        if value is not None:
            ACCOUNT[field].check(value)
    row = None
    if by is None or by.can_reach(account_id):  # an account out of reach is not even locked
        locked = _ACCOUNT.where(accounts.c.id == account_id).with_for_update(of=accounts)
        row = (await conn.execute(locked)).one_or_none()
    if row is None:
        raise AccountNotFound(
            f"There is no account {account_id!r}" + (" that you can reach." if by else ".")
        )
    before = Account(*row)
    changed = {f: v for f, v in changes.items() if getattr(before, f) != v}
    ref = changed.get("external_ref")
    taken = Conflict.saying(
        lambda name: f"Another account already has that {name('external_ref')}.",
        ["external_ref"],
        "is taken",
    )
    if ref is not None and await conn.scalar(
        select(func.count()).select_from(accounts).where(accounts.c.external_ref == ref)
    ):
        raise taken
    if not changed:
        return before
    try:
        await conn.execute(update(accounts).where(accounts.c.id == account_id).values(**changed))
    except IntegrityError:  # another transaction took it since
        raise taken from None
    after = replace(before, **changed)  # type: ignore[arg-type]  # checked above
    await append_events(
        conn,
        [
            Event(
                account_id, "account.updated", "account", account_id, tuple(changed), asdict(after)
            )
        ],
    )
    return after


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
