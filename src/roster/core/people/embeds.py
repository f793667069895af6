"""The embeds of a listing, never one query per row: on SQLite loaded for a chunk of rows
at a time, one query per embed per chunk; on PostgreSQL written as JSON by columns of the
listing's own statement (see below).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import fields
from functools import cache
from typing import Any

from pydantic.alias_generators import to_camel
from sqlalchemy import (
    ColumnElement,
    Select,
    Text,
    cast,
    func,
    literal,
    literal_column,
    select,
    union_all,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.base import ReadOnlyColumnCollection

from roster.core.people.persona_rows import (
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


# -- the same embeds as JSON the database writes (PostgreSQL) ---------------------------
#
# A 100,000-row page with every embed spent more than half of its time building these
# objects in Python and serializing them again. On PostgreSQL each embed is instead a
# column of the listing's own statement, a correlated subquery whose json_agg writes it
# in C, so a chunk costs one fetch and no query per embed. The keys are the dataclasses'
# fields in camelCase, in field order, as the API's camel() writes them, and each list
# keeps the order of the loaders above.


def _json_object(
    kind: type[Any],
    columns: ReadOnlyColumnCollection[str, Any] | Mapping[str, ColumnElement[Any]],
) -> ColumnElement[Any]:
    """``json_build_object`` of a dataclass's fields, from the column of each field."""
    pairs: list[ColumnElement[Any]] = []
    for f in fields(kind):
        pairs += [literal_column(f"'{to_camel(f.name)}'"), columns[f.name]]
    return func.json_build_object(*pairs)


def _json_list(
    item: ColumnElement[Any], order: Sequence[ColumnElement[Any]], source: Select[Any]
) -> ColumnElement[str]:
    """The items of ``source``'s rows as a JSON array in ``order`` (``[]`` for none)."""
    array = func.coalesce(cast(func.json_agg(aggregate_order_by(item, *order)), Text), "[]")
    return source.with_only_columns(array).scalar_subquery()


def _addresses_json() -> ColumnElement[str]:
    order = (addresses.c.created_at, addresses.c.id)
    return _json_list(
        _json_object(Address, addresses.c),
        order,
        select(addresses).where(addresses.c.persona_id == personas.c.id),
    )


def _created_by_json() -> ColumnElement[str]:
    creator, creator_person = personas.alias("creator"), persons.alias("creator_person")
    columns = {
        "id": creator.c.id,
        "person_id": creator.c.person_id,
        "first_name": creator_person.c.first_name,
        "last_name": creator_person.c.last_name,
        "email_address": creator.c.email_address,
    }
    found = (
        select(cast(_json_object(PersonaRef, columns), Text))
        .join_from(creator, creator_person, creator_person.c.id == creator.c.person_id)
        .where(creator.c.id == personas.c.created_by_persona_id)
        .scalar_subquery()
    )
    return func.coalesce(found, "null")


def _teams_json() -> ColumnElement[str]:
    return _json_list(
        _json_object(TeamRef, teams.c),
        (teams.c.name.collate("C"), teams.c.id),
        select(teams)
        .join(team_members, team_members.c.team_id == teams.c.id)
        .where(team_members.c.persona_id == personas.c.id),
    )


def _primary_owner_of_json() -> ColumnElement[str]:
    owned = union_all(
        *(
            select(literal(kind).label("type"), table.c.id, table.c.name)
            .where(table.c.primary_owner_persona_id == personas.c.id)
            .correlate(personas)
            for kind, table in (("team", teams), ("budget", budgets))
        )
    ).subquery("owned")
    return _json_list(
        _json_object(Ownership, owned.c),
        (owned.c.type.desc(), owned.c.name.collate("C"), owned.c.id),
        select(owned),
    )


def _roles_json() -> ColumnElement[str]:
    item = func.json_build_array(_json_object(RoleRef, roles.c))
    return select(cast(item, Text)).where(roles.c.id == personas.c.role_id).scalar_subquery()


_JSON_COLUMNS: dict[Embed, Callable[[], ColumnElement[str]]] = {
    Embed.ADDRESSES: _addresses_json,
    Embed.CREATED_BY: _created_by_json,
    Embed.TEAMS: _teams_json,
    Embed.PRIMARY_OWNER_OF: _primary_owner_of_json,
    Embed.ROLES: _roles_json,
}


def rendered_embeds(include: Collection[Embed]) -> list[Embed]:
    """The included embeds, in the order of their columns (see :func:`embed_columns`)."""
    return [embed for embed in Embed if embed in include]


@cache
def _embed_column(embed: Embed) -> ColumnElement[str]:
    return _JSON_COLUMNS[embed]().label(f"embed_{embed.name.lower()}")


def embed_columns(include: Collection[Embed]) -> list[ColumnElement[str]]:
    """Columns of the included embeds' JSON for a statement over ``personas`` (PostgreSQL)."""
    return [_embed_column(embed) for embed in rendered_embeds(include)]


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
