"""Writes on people and personas: join an account, change a person or a persona,
change a persona's role, leave an account. Each is one item of the writer
(``core/writer.py``), which every door shares: its rules, its errors, its locks.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from roster.core.fields import PERSONA
from roster.core.people.embeds import RoleRef
from roster.core.people.persona_rows import PersonaRow, persona_not_found, persona_row
from roster.core.writer import (
    Joining,
    PersonaById,
    PersonById,
    PersonWrite,
    Written,
    value_lock,
    write_persons,
)
from roster.db.backends import backend_for
from roster.db.tables import personas, roles

#: The persona fields ``update_persona`` may change.
PERSONA_UPDATE_FIELDS = tuple(
    name
    for name, field in PERSONA.items()
    if field.stored and field.people_api and field.people_on_update
)


#: How many persona ids one statement of :func:`require_personas` checks.
_CHECKED_AT_ONCE = 10_000


async def require_personas(
    conn: AsyncConnection, account_id: str, persona_ids: Collection[uuid.UUID]
) -> None:
    """``NotFound`` naming the first of these personas that is not in this account."""
    wanted = list(dict.fromkeys(persona_ids))
    found: set[uuid.UUID] = set()
    # In slices: a team of 100,000 members must stay under the databases' limits on
    # bound parameters (32,767 in a PostgreSQL statement).
    for start in range(0, len(wanted), _CHECKED_AT_ONCE):
        found.update(
            await conn.scalars(
                select(personas.c.id).where(
                    personas.c.account_id == account_id,
                    personas.c.id.in_(wanted[start : start + _CHECKED_AT_ONCE]),
                )
            )
        )
    missing = sorted(set(wanted) - found)
    if missing:
        raise persona_not_found(account_id, missing[0])


async def lock_unique_values(
    conn: AsyncConnection,
    account_id: str,
    values: Mapping[str, str | None] | Iterable[tuple[str, str | None]],
) -> None:
    """Hold, until the transaction ends, the writers' locks of these values of the
    account (by name: ``scim_external_id``, ``team_external_id``; or ``user``, ``team``: a
    persona's or a team's id), so that two writers of one value take turns between
    checking it (or a resource's version) and writing it. They are advisory locks taken
    before the writer's own (PostgreSQL; SQLite has one writer): a row lock taken this
    early would come before the writer's key locks, in the opposite order to every other
    writer, and could deadlock with them. None of them is one of the writer's key locks
    (a userName's is: the writer takes it with the others, in one order)."""
    keys = sorted(
        value_lock(name, account_id, value)
        for name, value in (values.items() if isinstance(values, Mapping) else values)
        if value
    )
    if keys:
        await backend_for(conn).lock_for_writing(conn, keys)


async def _write_one(
    conn: AsyncConnection, item: PersonWrite, region: str, reach: Collection[str] | None
) -> Written:
    """Write one item (of one account); its error raised. The Users it changes are
    locked first, as SCIM's writers lock a User before they compare its version with
    ``If-Match`` (docs/scim.md, "ETag"): a write through another door waits for them,
    instead of changing the User between their check and their write."""
    target = item.target
    if isinstance(target, PersonaById):
        [account_id] = item.account_ids
        await lock_unique_values(conn, account_id, {"user": str(target.persona_id)})
    elif isinstance(target, PersonById) and backend_for(conn).concurrent_writers:
        # The person's fields are every one of its Users' (in every account).
        held = await conn.execute(
            select(personas.c.account_id, personas.c.id).where(
                personas.c.person_id == target.person_id
            )
        )
        users = sorted(value_lock("user", account, str(persona)) for account, persona in held)
        await backend_for(conn).lock_for_writing(conn, users)
    [written] = await write_persons(conn, [item], region=region, reach=reach)
    if written.error is not None:
        raise written.error
    return written


async def add_person(
    conn: AsyncConnection,
    account_id: str,
    person: Mapping[str, Any],
    persona: Mapping[str, Any],
    role_name: str,
    region: str,
    reach: Collection[str] | None = None,
) -> PersonaRow:
    """Give a person a persona on this account, creating the person unless its email
    address already belongs to one (that person then joins as it is).

    ``Conflict`` when the person already has a persona here, ``DuplicateValue`` when
    another person holds the external ref; ``Unprocessable`` for a role the account
    does not have.
    """
    creator = persona.get("created_by_persona_id")
    if creator is not None:
        await require_personas(conn, account_id, [creator])
    item = PersonWrite(
        person,
        frozenset((account_id,)),
        {**persona, "role_name": role_name},
        target=Joining(),
    )
    written = await _write_one(conn, item, region, reach)
    [joined] = written.personas
    return await persona_row(conn, account_id, joined.persona_id)


async def update_person(
    conn: AsyncConnection,
    account_id: str,
    person_id: uuid.UUID,
    changes: Mapping[str, Any],
    region: str,
    reach: Collection[str] | None = None,
) -> PersonaRow:
    """Change a person's fields (seen by every account it belongs to); the person must
    have a persona on this account. ``DuplicateValue`` for an email address or external
    ref that another person holds; ``SharedPerson`` unless ``reach`` (the caller's
    accounts, ``None`` for all) holds every account of the person.
    """
    item = PersonWrite(changes, frozenset((account_id,)), target=PersonById(person_id))
    await _write_one(conn, item, region, reach)
    persona_id = await conn.scalar(
        select(personas.c.id).where(
            personas.c.person_id == person_id, personas.c.account_id == account_id
        )
    )
    assert persona_id is not None
    return await persona_row(conn, account_id, persona_id)


async def update_persona(
    conn: AsyncConnection,
    account_id: str,
    persona_id: uuid.UUID,
    changes: Mapping[str, Any],
    region: str,
) -> PersonaRow:
    """Change a persona's own fields (``PERSONA_UPDATE_FIELDS``)."""
    item = PersonWrite({}, frozenset((account_id,)), changes, target=PersonaById(persona_id))
    await _write_one(conn, item, region, None)
    return await persona_row(conn, account_id, persona_id)


async def change_persona(
    conn: AsyncConnection,
    account_id: str,
    persona_id: uuid.UUID,
    person: Mapping[str, Any],
    persona: Mapping[str, Any],
    region: str,
    reach: Collection[str] | None = None,
) -> None:
    """Change a persona's fields and its person's in one write (a SCIM replace); the
    person's fields under the shared-person rule for ``reach``."""
    item = PersonWrite(person, frozenset((account_id,)), persona, target=PersonaById(persona_id))
    await _write_one(conn, item, region, reach)


async def assign_role(
    conn: AsyncConnection, account_id: str, persona_id: uuid.UUID, role_name: str, region: str
) -> RoleRef:
    """Give a persona the account's role of this name (``Unprocessable`` if there is none)."""
    item = PersonWrite(
        {}, frozenset((account_id,)), {"role_name": role_name}, target=PersonaById(persona_id)
    )
    await _write_one(conn, item, region, None)
    found = (
        await conn.execute(
            select(roles.c.id, roles.c.name, roles.c.type)
            .join(personas, personas.c.role_id == roles.c.id)
            .where(personas.c.id == persona_id)
        )
    ).one()
    return RoleRef(*found)


async def remove_persona(
    conn: AsyncConnection, account_id: str, persona_id: uuid.UUID, region: str
) -> None:
    """Remove a persona from its account, with its addresses and memberships and the
    individual budgets it owns (an individual budget belongs to its owner alone); the
    person stays. Teams and shared budgets it owned lose their primary owner.
    """
    item = PersonWrite({}, frozenset((account_id,)), target=PersonaById(persona_id, remove=True))
    await _write_one(conn, item, region, None)
