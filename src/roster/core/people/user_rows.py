"""Personas read as directory users (SCIM's Users): a ROW with its role's name, its manager,
its teams and addresses, found by a condition a door built over the persona and person
tables.

A page of users is one statement where the database writes JSON (PostgreSQL): the teams
and addresses are the People API's embeds of the same names (their items and order
declared once, core/people/embeds.py), written as columns of the users' own statement.
Elsewhere they are loaded for the page, one query each. Three round trips were most of an
``eq`` filter's time.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import (
    CTE,
    BigInteger,
    ColumnElement,
    Integer,
    Select,
    and_,
    bindparam,
    func,
    select,
    true,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.expression import ClauseList
from sqlalchemy.sql.util import find_tables

from roster.core.matching import name_key
from roster.core.people.embeds import (
    EMBEDS,
    SCIM_ADDRESSES,
    ScimAddress,
    TeamRef,
    embed_columns,
    embedded_items,
    load_embeds,
)
from roster.core.people.listing import GATHER_FIRST
from roster.core.people.persona_rows import ROW_COLUMNS, PersonaRow, persona_not_found
from roster.db.backends import Backend, backend_for
from roster.db.tables import personas, persons, roles

_manager = personas.alias("manager")
_manager_person = persons.alias("manager_person")


@dataclass(frozen=True)
class UserRow:
    """A persona with what a user resource shows beside its fields."""

    row: PersonaRow
    role_name: str
    #: Its manager's id as written (the manager may not be a persona of the account yet,
    #: or any more), and the manager's name when it is one.
    manager_id: uuid.UUID | None
    manager_name: str | None
    #: Its place in the account's list (a cursor's position).
    position: int = 0

    @property
    def teams(self) -> list[TeamRef]:
        """Its teams, by name."""
        found: list[TeamRef] = self.row.embeds["teams"]
        return found

    @property
    def addresses(self) -> list[ScimAddress]:
        """Its postal addresses, in the order they were given."""
        found: list[ScimAddress] = self.row.embeds["addresses"]
        return found


#: The embeds every user carries: its addresses as SCIM keeps them, its teams.
_EMBEDDED = (SCIM_ADDRESSES, *(embed for embed in EMBEDS if embed.name == "teams"))


@cache
def _users_select(backend: Backend) -> Select[Any]:
    """The users' columns (with the embeds' JSON where the backend writes it), built once."""
    written = embed_columns(backend, _EMBEDDED) if backend.renders_json else []
    return select(
        *ROW_COLUMNS,
        personas.c.seq,
        roles.c.name,
        personas.c.manager_persona_id,
        func.coalesce(
            _manager.c.display_name,
            func.trim(
                func.coalesce(_manager_person.c.first_name, "")
                + " "
                + func.coalesce(_manager_person.c.last_name, "")
            ),
        ),
        *written,
    ).select_from(
        personas.join(persons, persons.c.id == personas.c.person_id)
        .join(roles, roles.c.id == personas.c.role_id)
        .outerjoin(
            _manager,
            and_(
                _manager.c.id == personas.c.manager_persona_id,
                _manager.c.account_id == personas.c.account_id,
            ),
        )
        .outerjoin(_manager_person, _manager_person.c.id == _manager.c.person_id)
    )


async def _users(conn: AsyncConnection, found: Sequence[Sequence[Any]]) -> list[UserRow]:
    """The users of these rows (``_users_select``'s columns), with their teams and
    addresses."""
    width = len(ROW_COLUMNS)
    rows = [PersonaRow.of(values) for values in found]
    if backend_for(conn).renders_json:
        for row, values in zip(rows, found, strict=True):
            for embed, text in zip(_EMBEDDED, values[width + 4 :], strict=True):
                row.embeds[embed.name] = embedded_items(embed, text)
    else:
        await load_embeds(conn, rows, _EMBEDDED)
    return [
        UserRow(row, values[width + 1], values[width + 2], values[width + 3], values[width])
        for row, values in zip(rows, found, strict=True)
    ]


async def user_page(
    conn: AsyncConnection,
    account_id: str,
    condition: ColumnElement[bool] | None,
    offset: int,
    limit: int,
    after: int | None = None,
    order: Sequence[ColumnElement[Any]] = (),
    *,
    planned_by_values: bool = False,
    parameters: Mapping[str, Any] | None = None,
) -> tuple[int, list[UserRow]]:
    """How many of the account's personas meet ``condition`` (over ``personas`` and
    ``persons``), and ``limit`` of them from ``offset`` (or after the ``position``
    ``after``), in ``order`` and then the order they were created.

    ``planned_by_values``: the condition is one its index answers best (a prefix, a
    trigram search), planned for its values (``Backend.custom_plans``), whose matches
    are read first, counted and the page taken from them (:func:`_gathered_page`),
    unless there are more than GATHER_FIRST.

    ``parameters``: values ``condition`` binds by name.

    Each statement is compiled once for its shape (``Backend.fetch_shaped``): building
    the page's statement and its cache key anew cost more than an ``eq`` filter's
    answer."""
    backend = backend_for(conn)
    where = true() if condition is None else condition
    own = {**(parameters or {}), "account_id": account_id}
    if planned_by_values and not order and limit > 0:
        found = await _gathered_page(conn, own, where, offset, limit, after)
        if found is not None:
            return found
    # A filter's probes keep a plan made for any values; a walk of the whole account (no
    # filter) or a value-planned filter is planned for its own (a generic plan for an
    # offset in an account of 500,000 took 6 s once).
    walks = planned_by_values or condition is None
    async with backend.custom_plans(conn) if walks else nullcontext():
        rest = where if after is None else and_(where, personas.c.seq > after)
        rows: Sequence[Sequence[Any]] = []
        if limit > 0:
            paged = {**own, "offset": offset, "limit": limit}
            rows = await backend.fetch_shaped(conn, _page, (rest, ClauseList(*order)), paged)
        if after is None and len(rows) < limit and (rows or offset == 0):
            # A page that is not full ends the matches, so they number its offset and
            # rows: no count (an eq filter's one User costs one index probe, not two).
            return offset + len(rows), await _users(conn, rows)
    # The count reads every match: planned for this account (a plan made for any account
    # expects a thousandth of the personas, and probed each of BIG's 500,000: 2.3 s).
    async with backend.custom_plans(conn):
        total = await backend.fetch_shaped(conn, _count, (where,), own)
    return total[0][0], await _users(conn, rows)


#: Each statement's account, and its page: bound by name, not built into each statement.
_ACCOUNT = bindparam("account_id", type_=personas.c.account_id.type)
_OWN = personas.c.account_id == _ACCOUNT
_OFFSET = bindparam("offset", type_=Integer)
_LIMIT = bindparam("limit", type_=Integer)
#: A gathered page starts after this position (0: at the first; positions start at 2).
_AFTER = bindparam("after", type_=BigInteger)


def _page(backend: Backend, where: ColumnElement[bool], order: ClauseList) -> Select[Any]:
    """The account's users meeting ``where``, in ``order`` then by creation, from
    ``:offset``."""
    return (
        _users_select(backend)
        .where(_OWN, where)
        .order_by(*order, personas.c.seq)
        .offset(_OFFSET)
        .limit(_LIMIT)
    )


def _count(backend: Backend, where: ColumnElement[bool]) -> Select[Any]:
    """How many of the account's personas meet ``where``."""
    return (
        select(func.count())
        .select_from(personas.join(persons, persons.c.id == personas.c.person_id))
        .where(_OWN, where)
    )


def _matched(where: ColumnElement[bool]) -> CTE:
    """The ids and positions of the account's personas meeting ``where``, at most
    GATHER_FIRST + 1, read first (materialized)."""
    # Joined to persons only when the condition reads them (a join PostgreSQL keeps).
    joined = persons in find_tables(where, check_columns=True)
    source = personas.join(persons, persons.c.id == personas.c.person_id) if joined else personas
    return (
        select(personas.c.id, personas.c.seq)
        .select_from(source)
        .where(_OWN, where)
        .limit(GATHER_FIRST + 1)
        .cte("matched")
        .prefix_with("MATERIALIZED")
    )


def _gathered(backend: Backend, where: ColumnElement[bool]) -> Select[Any]:
    """The page of the matches after ``:after`` from ``:offset``, with their users'
    columns and how many matched (``total``, the last)."""
    matched = _matched(where)
    total = select(func.count()).select_from(matched).scalar_subquery()
    listed = (
        select(matched.c.id)
        .where(matched.c.seq > _AFTER)
        .order_by(matched.c.seq)
        .offset(_OFFSET)
        .limit(_LIMIT)
        .subquery("page")
    )
    return (
        _users_select(backend)
        .add_columns(total.label("total"))
        .join(listed, listed.c.id == personas.c.id)
        .order_by(personas.c.seq)
    )


def _gathered_count(backend: Backend, where: ColumnElement[bool]) -> Select[Any]:
    """How many matched, as :func:`_gathered` counts them."""
    return select(func.count()).select_from(_matched(where))


async def _gathered_page(
    conn: AsyncConnection,
    own: Mapping[str, Any],
    where: ColumnElement[bool],
    offset: int,
    limit: int,
    after: int | None,
) -> tuple[int, list[UserRow]] | None:
    """:func:`user_page` (``own``: the account and the condition's values) in the order of
    creation, by reading the matches first (at most GATHER_FIRST + 1, materialized), then
    counting them and joining the page's to their rows, in one statement planned for its
    values; None if there are more (the ordered walk of :func:`user_page` serves them).

    A planner that expects many matches walks the account in the page's order, hoping to
    find the first hundred soon: for a name prefix of 361 Users spread over the
    account of 500,000 it read 142,719 personas (720 ms); gathered, it reads the index's
    matches only."""
    backend = backend_for(conn)
    paged = {**own, "offset": offset, "limit": limit, "after": after or 0}
    async with backend.custom_plans(conn):
        rows = await backend.fetch_shaped(conn, _gathered, (where,), paged)
        if rows:
            count: int = rows[0][-1]
        elif offset == 0 and after is None:
            count = 0
        else:  # past the last match: no row carries the count
            count = (await backend.fetch_shaped(conn, _gathered_count, (where,), own))[0][0]
    if count > GATHER_FIRST:
        return None
    return count, await _users(conn, [row[:-1] for row in rows])


async def user_rows(
    conn: AsyncConnection, account_id: str, persona_ids: Collection[uuid.UUID]
) -> list[UserRow]:
    """These personas of the account, as users (others left out)."""
    found = await conn.execute(
        _users_select(backend_for(conn)).where(
            personas.c.account_id == account_id, personas.c.id.in_(list(persona_ids))
        )
    )
    return await _users(conn, list(found))


async def user_row(conn: AsyncConnection, account_id: str, persona_id: uuid.UUID) -> UserRow:
    """One persona of the account as a user; ``NotFound`` if there is none."""
    found = await user_rows(conn, account_id, [persona_id])
    if not found:
        raise persona_not_found(account_id, persona_id)
    return found[0]


async def user_name_holder(
    conn: AsyncConnection,
    account_id: str,
    user_name: str | None,
    external_id: str | None,
    other_than: uuid.UUID | None = None,
) -> str | None:
    """Which of these the account's other personas already hold: ``user_name`` (compared
    by its key, with every persona's userName: its own, else its emails) or
    ``scim_external_id`` (as sent); ``None`` if neither."""
    checks = (
        ("user_name", personas.c.user_name_key, name_key(user_name)),
        ("scim_external_id", personas.c.scim_external_id, external_id),
    )
    for name, column, value in checks:
        if not value:
            continue
        statement = select(personas.c.id).where(
            personas.c.account_id == account_id, column == value
        )
        if other_than is not None:
            statement = statement.where(personas.c.id != other_than)
        if await conn.scalar(statement.limit(1)) is not None:
            return name
    return None
