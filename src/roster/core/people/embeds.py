"""The embeds of a listing, loaded for a chunk of rows at a time: one query per embed
per chunk, however many rows the chunk holds (never one query per row).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import fields

from sqlalchemy import literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncConnection

from roster.core.people.rows import (
    Address,
    Embed,
    Ownership,
    PersonaRef,
    PersonaRow,
    RoleRef,
    TeamRef,
)
from roster.db.backends import backend_for
from roster.db.tables import addresses, budgets, personas, persons, roles, team_members, teams

EmbedLoader = Callable[[AsyncConnection, Sequence[PersonaRow]], Awaitable[None]]


def _persona_ids(rows: Sequence[PersonaRow]) -> list[uuid.UUID]:
    return [row.persona_id for row in rows]


async def _addresses(conn: AsyncConnection, rows: Sequence[PersonaRow]) -> None:
    found: defaultdict[uuid.UUID, list[Address]] = defaultdict(list)
    for row in await conn.execute(
        select(addresses.c.persona_id, *(addresses.c[f.name] for f in fields(Address)))
        .where(backend_for(conn).one_of(addresses.c.persona_id, "ids"))
        .order_by(addresses.c.created_at, addresses.c.id),
        {"ids": _persona_ids(rows)},
    ):
        persona_id, *values = row
        found[persona_id].append(Address(*values))
    for persona in rows:
        persona.addresses = found[persona.persona_id]


async def _created_by(conn: AsyncConnection, rows: Sequence[PersonaRow]) -> None:
    creators = {row.created_by_persona_id for row in rows} - {None}
    found: dict[uuid.UUID, PersonaRef] = {}
    if creators:
        for row in await conn.execute(
            select(
                personas.c.id,
                personas.c.person_id,
                persons.c.first_name,
                persons.c.last_name,
                personas.c.email_address,
            )
            .join(persons, persons.c.id == personas.c.person_id)
            .where(backend_for(conn).one_of(personas.c.id, "ids")),
            {"ids": list(creators)},
        ):
            found[row.id] = PersonaRef(*row)
    for persona in rows:
        creator = persona.created_by_persona_id
        persona.created_by = found.get(creator) if creator is not None else None


async def _teams(conn: AsyncConnection, rows: Sequence[PersonaRow]) -> None:
    found: defaultdict[uuid.UUID, list[TeamRef]] = defaultdict(list)
    for persona_id, team_id, name in await conn.execute(
        select(team_members.c.persona_id, teams.c.id, teams.c.name)
        .join(teams, teams.c.id == team_members.c.team_id)
        .where(backend_for(conn).one_of(team_members.c.persona_id, "ids"))
        .order_by(backend_for(conn).byte_order(teams.c.name), teams.c.id),
        {"ids": _persona_ids(rows)},
    ):
        found[persona_id].append(TeamRef(team_id, name))
    for persona in rows:
        persona.teams = found[persona.persona_id]


async def _primary_owner_of(conn: AsyncConnection, rows: Sequence[PersonaRow]) -> None:
    backend = backend_for(conn)
    owned = union_all(
        *(
            select(
                table.c.primary_owner_persona_id.label("persona_id"),
                literal(kind).label("type"),
                table.c.id,
                table.c.name,
            ).where(backend.one_of(table.c.primary_owner_persona_id, "ids"))
            for kind, table in (("team", teams), ("budget", budgets))
        )
    ).subquery()
    found: defaultdict[uuid.UUID, list[Ownership]] = defaultdict(list)
    for persona_id, kind, owned_id, name in await conn.execute(
        select(owned).order_by(owned.c.type.desc(), backend.byte_order(owned.c.name), owned.c.id),
        {"ids": _persona_ids(rows)},
    ):
        found[persona_id].append(Ownership(kind, owned_id, name))
    for persona in rows:
        persona.primary_owner_of = found[persona.persona_id]


async def _roles(conn: AsyncConnection, rows: Sequence[PersonaRow]) -> None:
    found = {
        row.id: RoleRef(*row)
        for row in await conn.execute(
            select(roles.c.id, roles.c.name, roles.c.type).where(
                backend_for(conn).one_of(roles.c.id, "ids")
            ),
            {"ids": list({row.role_id for row in rows})},
        )
    }
    for persona in rows:
        persona.roles = [found[persona.role_id]]


_LOADERS: dict[Embed, EmbedLoader] = {
    Embed.ADDRESSES: _addresses,
    Embed.CREATED_BY: _created_by,
    Embed.TEAMS: _teams,
    Embed.PRIMARY_OWNER_OF: _primary_owner_of,
    Embed.ROLES: _roles,
}


async def load_embeds(
    conn: AsyncConnection, rows: Sequence[PersonaRow], include: Collection[Embed]
) -> None:
    """Fill the included embeds of these rows, with one query per embed."""
    if not rows:
        return
    for embed in Embed:  # a fixed order, so that the queries run are predictable
        if embed in include:
            await _LOADERS[embed](conn, rows)
    for row in rows:
        row.included = frozenset(include)
