"""Erasure and subject access (spec/events.md): a person forgotten everywhere, its data
scrubbed from the change log; or everything Roster holds about one person.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import ColumnElement, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from roster.core.events import Event, append_events
from roster.core.matching import email_key
from roster.core.writer import SharedPerson
from roster.db.backends import backend_for
from roster.db.tables import (
    addresses,
    budget_members,
    budgets,
    events,
    personas,
    persons,
    roles,
    team_members,
    teams,
)
from roster.errors import NotFound


@dataclass(frozen=True)
class Erased:
    """Who was erased, from which accounts, and how many earlier events lost their data."""

    person_id: uuid.UUID
    account_ids: tuple[str, ...]
    events_scrubbed: int


def _identified_by(identifier: str) -> ColumnElement[bool]:
    """A person's id (a UUID), else its email address (any case), else its external ref."""
    try:
        return persons.c.id == uuid.UUID(identifier)
    except ValueError:
        pass
    if "@" in identifier:
        return persons.c.email_key == email_key(identifier)
    return persons.c.external_ref == identifier


async def _person_and_accounts(
    conn: AsyncConnection, identifier: str, reach: Collection[str] | None
) -> tuple[uuid.UUID, list[str]]:
    """The person and the accounts where it has a persona; ``NotFound`` when there is no
    such person or the caller reaches none of its accounts (the two answer the same)."""
    person_id = await conn.scalar(select(persons.c.id).where(_identified_by(identifier)))
    found = (
        []
        if person_id is None
        else sorted(
            await conn.scalars(
                select(personas.c.account_id).where(personas.c.person_id == person_id)
            )
        )
    )
    if person_id is None or (reach is not None and not set(found) & set(reach)):
        raise NotFound(f"There is no person {identifier!r}.")
    return person_id, found


async def erase_person(
    conn: AsyncConnection, identifier: str, reach: Collection[str] | None = None
) -> Erased:
    """Erase a person everywhere: the person, its personas, their addresses and
    memberships (teams and budgets it owned lose their owner); every earlier event that
    carried its data keeps its id and type but its data becomes null; ``person.erased``
    (no personal data) is appended in each of its accounts.

    ``reach`` is the caller's accounts (``None``: every account): it must hold every
    account where the person has a persona (``SharedPerson`` otherwise).
    """
    # No writer of persons runs beside an erasure (nor re-creates what it removes).
    await backend_for(conn).lock_for_writing(conn, None)
    person_id, account_ids = await _person_and_accounts(conn, identifier, reach)
    if reach is not None and set(account_ids) - set(reach):
        raise SharedPerson(
            "This person also has a persona in an account your client cannot reach; only a "
            "client reaching every one of its accounts can erase it."
        )
    # Addresses and memberships go with the personas; owners and creators become null.
    await conn.execute(delete(personas).where(personas.c.person_id == person_id))
    await conn.execute(delete(persons).where(persons.c.id == person_id))
    scrubbed = await conn.execute(
        update(events)
        .where(events.c.person_id == person_id, events.c.data.is_not(None))
        .values(data=None)
    )
    await append_events(
        conn,
        [Event(account_id, "person.erased", "person", person_id) for account_id in account_ids],
    )
    return Erased(person_id, tuple(account_ids), scrubbed.rowcount or 0)


#: What a subject access request shows of a persona and of an event (internal keys and
#: derived columns left out).
_PERSONA_SHOWN = tuple(c for c in personas.c if c.name not in ("seq", "search_text"))
_EVENT_SHOWN = (
    events.c.id,
    events.c.type,
    events.c.account_id,
    events.c.occurred_at,
    events.c.data,
)


def _plain(row: Any) -> dict[str, Any]:
    return dict(row._mapping)


async def person_record(conn: AsyncConnection, identifier: str) -> dict[str, Any]:
    """Everything Roster holds about one person (a subject access request), by core
    names: the person, each persona with its role, addresses, teams and budgets, and
    the events that carry its data."""
    person_id, _ = await _person_and_accounts(conn, identifier, None)
    person = _plain(
        (
            await conn.execute(
                select(persons)
                .where(persons.c.id == person_id)
                .with_only_columns(*(c for c in persons.c if c.name != "seq"))
            )
        ).one()
    )
    found = []
    for persona in await conn.execute(
        select(
            *(c for c in personas.c if c.name not in ("seq", "search_text")),
            roles.c.name.label("role_name"),
        )
        .join(roles, roles.c.id == personas.c.role_id)
        .where(personas.c.person_id == person_id)
        .order_by(personas.c.account_id)
    ):
        shown = _plain(persona)
        persona_id = shown["id"]
        shown["addresses"] = [
            _plain(a)
            for a in await conn.execute(
                select(addresses)
                .where(addresses.c.persona_id == persona_id)
                .order_by(addresses.c.id)
            )
        ]
        for noun, table, members in (
            ("teams", teams, team_members.c.team_id),
            ("budgets", budgets, budget_members.c.budget_id),
        ):
            member_of = select(members).where(members.table.c.persona_id == persona_id)
            shown[noun] = [
                _plain(s)
                for s in await conn.execute(
                    select(table.c.id, table.c.name, table.c.primary_owner_persona_id)
                    .where(
                        table.c.id.in_(member_of) | (table.c.primary_owner_persona_id == persona_id)
                    )
                    .order_by(table.c.id)
                )
            ]
        found.append(shown)
    logged = [
        {**_plain(e), "data": None if e.data is None else orjson.loads(e.data)}
        for e in await conn.execute(
            select(
                events.c.id, events.c.type, events.c.account_id, events.c.occurred_at, events.c.data
            )
            .where(events.c.person_id == person_id)
            .order_by(events.c.id)
        )
    ]
    return {"person": person, "personas": found, "events": logged}
