"""Writes on people and personas: join an account, change a person or a persona,
change a persona's role, leave an account. Every change to a field that search or
the listing order reads refreshes the persona's derived columns (``core/keys.py``).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from roster.core.clock import now
from roster.core.keys import PERSON_FIELDS, person_keys, persona_derived, refresh_personas
from roster.core.matching import email_key
from roster.core.people.conflicts import write_unique
from roster.core.people.roles import Role, role_named
from roster.core.people.rows import PersonaRow, persona_not_found, persona_row
from roster.db.tables import personas, persons
from roster.errors import Conflict, NotFound

#: The persona fields ``update_persona`` may change.
PERSONA_UPDATE_FIELDS = ("email_address", "employee_number", "work_number", "job_title", "status")
#: Persona fields that search reads; changing one refreshes the derived columns.
_SEARCHED_PERSONA_FIELDS = {"email_address", "employee_number", "work_number"}
_RACED = "Another request has just written the same email address, external ref or persona."


async def require_personas(
    conn: AsyncConnection, account_id: str, persona_ids: Collection[uuid.UUID]
) -> None:
    """``NotFound`` naming the first of these personas that is not in this account."""
    wanted = set(persona_ids)
    if not wanted:
        return
    found = set(
        await conn.scalars(
            select(personas.c.id).where(
                personas.c.account_id == account_id, personas.c.id.in_(list(wanted))
            )
        )
    )
    missing = sorted(wanted - found)
    if missing:
        raise persona_not_found(account_id, missing[0])


async def _person_id_of(conn: AsyncConnection, account_id: str, persona_id: uuid.UUID) -> uuid.UUID:
    person_id: uuid.UUID | None = await conn.scalar(
        select(personas.c.person_id).where(
            personas.c.id == persona_id, personas.c.account_id == account_id
        )
    )
    if person_id is None:
        raise persona_not_found(account_id, persona_id)
    return person_id


async def _check_unique(
    conn: AsyncConnection, person_id: uuid.UUID | None, person: Mapping[str, Any]
) -> None:
    """``Conflict`` if another person holds the email address or external ref given."""
    for name, column, key in (
        ("emailAddress", persons.c.email_key, email_key(person.get("email_address"))),
        ("externalRef", persons.c.external_ref, person.get("external_ref")),
    ):
        if key is None:
            continue
        holder = await conn.scalar(select(persons.c.id).where(column == key))
        if holder is not None and holder != person_id:
            raise Conflict(f"Another person already has this {name}.")


async def add_person(
    conn: AsyncConnection,
    account_id: str,
    person: Mapping[str, Any],
    persona: Mapping[str, Any],
    role_name: str,
    region: str,
) -> PersonaRow:
    """Give a person a persona on this account, creating the person unless its email
    address already belongs to one (that person then joins as it is).

    ``Conflict`` when the person already has a persona here, or when another person
    holds the external ref; ``Unprocessable`` for a role the account does not have.
    """
    role = await role_named(conn, account_id, role_name)
    creator = persona.get("created_by_persona_id")
    if creator is not None:
        await require_personas(conn, account_id, [creator])
    person_id: uuid.UUID | None = None
    if key := email_key(person.get("email_address")):
        person_id = await conn.scalar(select(persons.c.id).where(persons.c.email_key == key))
    at = now()
    if person_id is None:
        await _check_unique(conn, None, person)
        person_id = uuid.uuid4()
        values = {**dict.fromkeys(PERSON_FIELDS), **person}
        await write_unique(
            conn,
            insert(persons).values(
                id=person_id, **values, **person_keys(values, region), created_at=at, updated_at=at
            ),
            _RACED,
        )
    else:
        existing = await conn.scalar(
            select(personas.c.id).where(
                personas.c.person_id == person_id, personas.c.account_id == account_id
            )
        )
        if existing is not None:
            raise Conflict(
                f"The person with this emailAddress already has persona {existing} "
                f"in account {account_id!r}."
            )
    stored = (await conn.execute(select(persons).where(persons.c.id == person_id))).one()
    persona_id = uuid.uuid4()
    await write_unique(
        conn,
        insert(personas).values(
            id=persona_id,
            person_id=person_id,
            account_id=account_id,
            **persona,
            role_id=role.id,
            created_at=at,
            updated_at=at,
            **persona_derived(dict(stored._mapping), persona, region),
        ),
        _RACED,
    )
    return await persona_row(conn, account_id, persona_id)


async def update_person(
    conn: AsyncConnection,
    account_id: str,
    person_id: uuid.UUID,
    changes: Mapping[str, Any],
    region: str,
) -> PersonaRow:
    """Change a person's fields (seen by every account it belongs to); the person must
    have a persona on this account. ``Conflict`` for an email address or external ref
    that another person holds.
    """
    persona_id: uuid.UUID | None = await conn.scalar(
        select(personas.c.id).where(
            personas.c.person_id == person_id, personas.c.account_id == account_id
        )
    )
    if persona_id is None:
        raise NotFound(f"There is no person {person_id} in account {account_id!r}.")
    fields = select(*(persons.c[f] for f in PERSON_FIELDS)).where(persons.c.id == person_id)
    current = (await conn.execute(fields)).one()._mapping
    changed = {f: v for f, v in changes.items() if current[f] != v}
    if changed:
        await _check_unique(conn, person_id, changed)
        values = {**current, **changed}
        await write_unique(
            conn,
            update(persons)
            .where(persons.c.id == person_id)
            .values(**changed, **person_keys(values, region), updated_at=now()),
            _RACED,
        )
        await refresh_personas(conn, [person_id], region)
    return await persona_row(conn, account_id, persona_id)


async def update_persona(
    conn: AsyncConnection,
    account_id: str,
    persona_id: uuid.UUID,
    changes: Mapping[str, Any],
    region: str,
) -> PersonaRow:
    """Change a persona's own fields (``PERSONA_UPDATE_FIELDS``)."""
    person_id = await _person_id_of(conn, account_id, persona_id)
    if changes:
        await conn.execute(
            update(personas).where(personas.c.id == persona_id).values(**changes, updated_at=now())
        )
        if _SEARCHED_PERSONA_FIELDS & set(changes):
            await refresh_personas(conn, [person_id], region)
    return await persona_row(conn, account_id, persona_id)


async def assign_role(
    conn: AsyncConnection, account_id: str, persona_id: uuid.UUID, role_name: str
) -> Role:
    """Give a persona the account's role of this name (``Unprocessable`` if there is none)."""
    await _person_id_of(conn, account_id, persona_id)
    role = await role_named(conn, account_id, role_name)
    await conn.execute(
        update(personas)
        .where(personas.c.id == persona_id, personas.c.role_id != role.id)
        .values(role_id=role.id, updated_at=now())
    )
    return role


async def remove_persona(conn: AsyncConnection, account_id: str, persona_id: uuid.UUID) -> None:
    """Remove a persona from its account, with its addresses and memberships; the person
    stays. Teams and budgets it owned lose their primary owner.
    """
    removed = await conn.execute(
        delete(personas).where(personas.c.id == persona_id, personas.c.account_id == account_id)
    )
    if not removed.rowcount:
        raise persona_not_found(account_id, persona_id)
