"""The embeds a listing may add inside a row's persona, each declared once: what one item
is, where the items come from, and their order. :data:`EMBEDS` registers them, in the
order a row shows them.

A listing never loads an embed one row at a time. It either loads each included embed
for a chunk of rows as objects, one query per embed (:func:`load_embeds`; SQLite), or
has the database write each as JSON, a column of the listing's own statement
(:func:`embed_columns`; PostgreSQL, whose ``renders_json`` is true): a 100,000-row page
with every embed spent more than half of its time building the objects in Python and
serializing them again. Both ways are built from the same declaration, and a test holds
them to the same answers.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, fields, replace
from functools import cache, partial
from typing import Any, Literal

import orjson
from sqlalchemy import ColumnElement, FromClause, Select, Text, cast, literal, select, union_all
from sqlalchemy.ext.asyncio import AsyncConnection

from roster.core.people.persona_rows import PERSONA_AT, PersonaRow
from roster.db.backends import Backend, backend_for
from roster.db.tables import addresses, budgets, personas, persons, roles, team_members, teams
from roster.errors import Naming, as_is

# -- what the items are ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Address:
    id: uuid.UUID
    type: str
    address_line1: str
    address_line2: str | None
    address_line3: str | None
    city: str
    region: str | None
    postcode: str
    country_code: str


@dataclass(frozen=True, slots=True)
class ScimAddress(Address):
    """An address with what SCIM keeps beside it (spec/scim.md): its ``formatted`` text
    as sent, and whether it is the User's primary one, as sent (``None``: not sent)."""

    formatted: str | None = None
    is_primary: bool | None = None


@dataclass(frozen=True, slots=True)
class PersonaRef:
    """Who created a persona: that persona and its person's names."""

    id: uuid.UUID
    person_id: uuid.UUID
    first_name: str | None
    last_name: str | None
    email_address: str | None


@dataclass(frozen=True, slots=True)
class TeamRef:
    id: uuid.UUID
    name: str


@dataclass(frozen=True, slots=True)
class Ownership:
    """A team or budget a persona is the primary owner of."""

    type: Literal["team", "budget"]
    id: uuid.UUID
    name: str


@dataclass(frozen=True, slots=True)
class RoleRef:
    id: uuid.UUID
    name: str
    type: Literal["core"] | None


# -- how an embed is declared ----------------------------------------------------------------

#: The condition an embed's items meet for the personas asked about, given the column
#: that says which persona an item belongs to.
Match = Callable[[ColumnElement[Any]], ColumnElement[bool]]
#: The label of that column in an embed's statements.
ON = "embedded_on"


@dataclass(frozen=True)
class By:
    """One key of an embed's order."""

    column: str
    descending: bool = False
    #: Text compared by code point, whatever the database's collation.
    code_points: bool = False


@dataclass(frozen=True, eq=False)
class Embed:
    """One embed: its items' shape, where they come from, their order."""

    #: Its core name (each door names it as it will).
    name: str
    #: The dataclass of one item; its fields are the item's keys.
    item: type[Any]
    #: A list of items, or one item (None when there is none).
    many: bool
    #: The persona's column the items belong to: ``id``, or a reference it holds.
    on: str
    #: The statements whose rows are the items (several are joined by UNION ALL): each
    #: selects the matched column labelled ``ON``, the item's fields by name, and any
    #: column of the order, with ``match`` in its WHERE clause.
    items: Callable[[Match], Sequence[Select[Any]]]
    order: tuple[By, ...] = ()

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(f.name for f in fields(self.item))


def _addresses(match: Match, item: type[Address] = Address) -> list[Select[Any]]:
    return [
        select(
            addresses.c.persona_id.label(ON),
            *(addresses.c[f.name] for f in fields(item)),
            addresses.c.created_at,
        ).where(match(addresses.c.persona_id))
    ]


def _created_by(match: Match) -> list[Select[Any]]:
    creator, creator_person = personas.alias("creator"), persons.alias("creator_person")
    return [
        select(
            creator.c.id.label(ON),
            creator.c.id,
            creator.c.person_id,
            creator_person.c.first_name,
            creator_person.c.last_name,
            creator.c.email_address,  # the creator persona's own (work) email
        )
        .join_from(creator, creator_person, creator_person.c.id == creator.c.person_id)
        .where(match(creator.c.id))
    ]


def _teams(match: Match) -> list[Select[Any]]:
    return [
        select(team_members.c.persona_id.label(ON), teams.c.id, teams.c.name)
        .join_from(team_members, teams, teams.c.id == team_members.c.team_id)
        .where(match(team_members.c.persona_id))
    ]


def _primary_owner_of(match: Match) -> list[Select[Any]]:
    return [
        select(
            table.c.primary_owner_persona_id.label(ON),
            literal(kind).label("type"),
            table.c.id,
            table.c.name,
        ).where(match(table.c.primary_owner_persona_id))
        for kind, table in (("team", teams), ("budget", budgets))
    ]


def _roles(match: Match) -> list[Select[Any]]:
    return [
        select(roles.c.id.label(ON), roles.c.id, roles.c.name, roles.c.type).where(
            match(roles.c.id)
        )
    ]


#: Every embed, in the order a row shows them (the spec's table).
EMBEDS: tuple[Embed, ...] = (
    Embed("addresses", Address, True, "id", _addresses, (By("created_at"), By("id"))),
    Embed("created_by", PersonaRef, False, "created_by_persona_id", _created_by),
    Embed("teams", TeamRef, True, "id", _teams, (By("name", code_points=True), By("id"))),
    Embed(
        "primary_owner_of",
        Ownership,
        True,
        "id",
        _primary_owner_of,
        # Teams first, then budgets, each by name.
        (By("type", descending=True), By("name", code_points=True), By("id")),
    ),
    Embed("roles", RoleRef, True, "role_id", _roles),  # one item: the persona's role
)


#: A SCIM User's addresses: the People API's embed with what SCIM keeps beside them.
SCIM_ADDRESSES = replace(EMBEDS[0], item=ScimAddress, items=partial(_addresses, item=ScimAddress))


def included(include: Collection[Embed]) -> tuple[Embed, ...]:
    """The embeds asked for, in the order they are declared (SCIM's addresses first)."""
    return tuple(embed for embed in (SCIM_ADDRESSES, *EMBEDS) if embed in include)


# -- how they are read -----------------------------------------------------------------------


def _source(embed: Embed, match: Match, *, correlated: bool = False) -> FromClause:
    """The embed's items as one subquery; ``correlated``: to the personas of the statement
    it is a column of."""
    branches = [
        branch.correlate(personas) if correlated else branch for branch in embed.items(match)
    ]
    return (union_all(*branches) if len(branches) > 1 else branches[0]).subquery(
        f"{embed.name}_items"
    )


def _order(embed: Embed, source: FromClause, backend: Backend) -> list[ColumnElement[Any]]:
    order: list[ColumnElement[Any]] = []
    for by in embed.order:
        key: ColumnElement[Any] = source.c[by.column]
        key = backend.byte_order(key) if by.code_points else key
        order.append(key.desc() if by.descending else key)
    return order


@cache
def _items_statement(embed: Embed, backend: Backend) -> Select[Any]:
    """The items of the personas bound as ``ids``, each with the persona it belongs to."""
    source = _source(embed, lambda on: backend.one_of(on, "ids"))
    return select(source.c[ON], *(source.c[key] for key in embed.keys)).order_by(
        *_order(embed, source, backend)
    )


async def load_embeds(
    conn: AsyncConnection, rows: Sequence[PersonaRow], include: Collection[Embed]
) -> None:
    """Fill the included embeds of these rows, with one query per embed."""
    if not rows:
        return
    embeds = included(include)
    backend = backend_for(conn)
    for embed in embeds:
        found: defaultdict[Any, list[Any]] = defaultdict(list)
        wanted = {row.persona_value(embed.on) for row in rows} - {None}
        if wanted:
            statement = _items_statement(embed, backend)
            for on, *values in await conn.execute(statement, {"ids": list(wanted)}):
                found[on].append(embed.item(*values))
        for row in rows:
            items = found.get(row.persona_value(embed.on), [])
            row.embeds[embed.name] = items if embed.many else (items[0] if items else None)
    for row in rows:
        row.included = embeds


@cache
def _json_column(embed: Embed, backend: Backend, json_keys: Naming) -> ColumnElement[str]:
    """An embed as a correlated subquery writing its JSON, for a statement over personas."""
    persona = personas.c[embed.on]
    source = _source(embed, lambda on: on == persona, correlated=True)
    item = backend.json_object([(json_keys(key), source.c[key]) for key in embed.keys])
    if embed.many:
        written = backend.json_list(item, _order(embed, source, backend), source)
    else:
        written = backend.json_item(item, source)
    return written.label(f"embed_{embed.name}")


@cache
def _json_statement(embed: Embed, backend: Backend, json_keys: Naming) -> Select[Any]:
    """Each persona's (bound as ``ids``) items of the embed as the text of its JSON: the
    set-based way, one statement for a whole chunk of rows."""
    source = _source(embed, lambda on: backend.one_of(on, "ids"))
    item = backend.json_object([(json_keys(key), source.c[key]) for key in embed.keys])
    if not embed.many:
        return select(source.c[ON], cast(item, Text))
    written = backend.json_aggregate(item, _order(embed, source, backend))
    return select(source.c[ON], written).group_by(source.c[ON])


async def render_embeds(
    conn: AsyncConnection,
    rows: Sequence[PersonaRow],
    include: Collection[Embed],
    json_keys: Naming = as_is,
) -> None:
    """Have the database write the included embeds of these rows as JSON (where the
    backend ``renders_json``), with one statement per embed for all of them: for a large
    page, a statement per chunk beats a correlated subquery per row (:func:`embed_columns`),
    which runs once for every row and embed."""
    embeds = included(include)
    backend = backend_for(conn)
    for embed in embeds:
        at = PERSONA_AT[embed.on]  # a chunk is 1,000 rows: no lookup by name for each
        wanted = {row.persona[at] for row in rows}
        wanted.discard(None)
        found: dict[Any, str] = {}
        if wanted:
            # On the driver: ids in, text out, nothing to convert. SQLAlchemy's execution
            # was about 7% of the server's CPU for a 100,000-row page.
            statement = _json_statement(embed, backend, json_keys)
            written = await backend.fetch_plain(conn, statement, {"ids": list(wanted)})
            found = {each[0]: each[1] for each in written}
        name, none = embed.name, "[]" if embed.many else "null"
        for row in rows:
            row.rendered[name] = found.get(row.persona[at], none)
    for row in rows:
        row.included = embeds


@cache
def _id_keys(embed: Embed) -> frozenset[str]:
    """The item's fields that hold ids (written as text in JSON)."""
    return frozenset(f.name for f in fields(embed.item) if str(f.type).startswith("uuid.UUID"))


def embedded_items(embed: Embed, written: str) -> Any:
    """An embed's items (or item, or None) from the JSON of its column (:func:`embed_columns`
    with the fields' own names), for a door that renders them itself."""
    found = orjson.loads(written)
    ids = _id_keys(embed)

    def item(values: dict[str, Any]) -> Any:
        for key in ids & values.keys():
            if values[key] is not None:
                values[key] = uuid.UUID(values[key])
        return embed.item(**values)

    if not embed.many:
        return None if found is None else item(found)
    return [item(values) for values in found]


def embed_columns(
    backend: Backend, include: Collection[Embed], json_keys: Naming = as_is
) -> list[ColumnElement[str]]:
    """Columns of the included embeds' JSON (in :func:`included`'s order), for a statement
    over ``personas``, where the backend ``renders_json``; each item's keys are its
    fields' names as ``json_keys`` writes them."""
    return [_json_column(embed, backend, json_keys) for embed in included(include)]
