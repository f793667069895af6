"""Listing an account's people: filters, search, a stable order, an exact count, and
rows streamed in chunks so that a page of 100,000 never sits in memory at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, and_, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncConnection

from roster.core.matching import name_key, search_terms
from roster.core.people.embeds import Embed, embed_columns, included, load_embeds
from roster.core.people.persona_rows import ROW_COLUMNS, PersonaRow, rows_select
from roster.db.backends import Backend, backend_for
from roster.db.tables import budget_members, budgets, personas, roles, team_members
from roster.errors import Naming, as_is

#: Rows fetched (and embeds loaded) at a time while a page streams.
CHUNK_SIZE = 1000
#: Up to this many matching rows, a page gathers and sorts them rather than walking the
#: account's ordered index (see page_statement).
GATHER_FIRST = 20_000
#: A search the planner expects to match up to this many rows is counted and paged in
#: one pass over its matches (see _gather_search).
SEARCH_GATHERED = 5_000


@dataclass(frozen=True)
class PeopleQuery:
    """One listing: paging, search, embeds and filters (all filters combine with AND,
    the values of one filter with OR; an empty filter is no filter).
    """

    limit: int = 100
    offset: int = 0
    search: str | None = None
    include: frozenset[Embed] = frozenset()
    statuses: frozenset[str] = frozenset()
    team_ids: frozenset[uuid.UUID] = frozenset()
    role_ids: frozenset[uuid.UUID] = frozenset()
    role_names: frozenset[str] = frozenset()
    person_ids: frozenset[uuid.UUID] = frozenset()
    without_individual_budget: bool = False
    budget_ids: frozenset[uuid.UUID] = frozenset()


@dataclass(frozen=True)
class PeoplePage:
    """The total number of matching rows, and the page's rows as they are fetched."""

    count: int
    chunks: AsyncIterator[list[PersonaRow]]


#: The listing's order: names ignoring case (the folded sort columns), then person id.
ORDER = (personas.c.sort_last, personas.c.sort_first, personas.c.person_id)


def conditions_of(
    backend: Backend, account_id: str, query: PeopleQuery, named_roles: list[uuid.UUID]
) -> list[ColumnElement[bool]]:
    """The WHERE conditions of a listing (``named_roles``: the ids its role names name)."""
    conditions: list[ColumnElement[bool]] = [personas.c.account_id == account_id]
    if query.statuses:
        conditions.append(personas.c.status.in_(sorted(query.statuses)))
    if query.team_ids:
        conditions.append(
            personas.c.id.in_(
                select(team_members.c.persona_id).where(
                    team_members.c.team_id.in_(sorted(query.team_ids))
                )
            )
        )
    if query.role_ids:
        conditions.append(personas.c.role_id.in_(sorted(query.role_ids)))
    if query.role_names:
        conditions.append(personas.c.role_id.in_(named_roles))
    if query.person_ids:
        conditions.append(personas.c.person_id.in_(sorted(query.person_ids)))
    if query.without_individual_budget:
        conditions.append(
            personas.c.id.not_in(
                select(budgets.c.primary_owner_persona_id).where(
                    budgets.c.type == "individual",
                    budgets.c.primary_owner_persona_id.is_not(None),
                )
            )
        )
    if query.budget_ids:
        wanted = sorted(query.budget_ids)
        conditions.append(
            or_(
                personas.c.id.in_(
                    select(budgets.c.primary_owner_persona_id).where(budgets.c.id.in_(wanted))
                ),
                personas.c.id.in_(
                    select(budget_members.c.persona_id).where(
                        budget_members.c.budget_id.in_(wanted)
                    )
                ),
            )
        )
    if terms := search_terms(query.search):
        conditions.append(backend.search_condition(terms))
    return conditions


async def _named_roles(
    conn: AsyncConnection, account_id: str, names: frozenset[str]
) -> list[uuid.UUID]:
    """The ids of the account's roles with these names (ignoring case). Asked first, so that
    the listing compares ``role_id`` with constants the planner has statistics for: a
    join to ``roles`` hides how common each role is, and a role held by most of an account
    then looks rare."""
    if not names:
        return []
    keys = sorted({name_key(name) or "" for name in names})
    found = await conn.scalars(
        select(roles.c.id).where(roles.c.account_id == account_id, roles.c.name_key.in_(keys))
    )
    return sorted(found)


def page_statement(
    conditions: list[ColumnElement[bool]], query: PeopleQuery, count: int
) -> Select[Any]:
    """The page's rows. With few matching rows (the count says how many), they are
    gathered first and sorted, so that the planner cannot walk the whole account in
    index order looking for rare matches (it misjudges how rare a substring is); with
    many, walking the ordered index and stopping after the page is the fast way.
    """
    keys = (personas.c.account_id, *ORDER)
    if count > GATHER_FIRST and query.offset <= query.limit:
        # Few rows skipped: walk the ordered index and join each row as it comes.
        return (
            rows_select()
            .where(*conditions)
            .order_by(*ORDER)
            .offset(query.offset)
            .limit(query.limit)
        )
    if count > GATHER_FIRST:
        # The page's keys alone, from the ordered index (an index-only walk past a deep
        # offset), then their rows: skipped rows are never joined to their persons.
        page = (
            select(*keys)
            .where(*conditions)
            .order_by(*ORDER)
            .offset(query.offset)
            .limit(query.limit)
            .cte("page")
        )
    else:
        matched = select(*keys).where(*conditions).cte("matched").prefix_with("MATERIALIZED")
        page = (
            select(matched)
            .order_by(*(matched.c[c.name] for c in ORDER))
            .offset(query.offset)
            .limit(query.limit)
            .cte("page")
        )
    return (
        rows_select()
        .join(
            page,
            and_(
                personas.c.account_id == page.c.account_id,
                personas.c.person_id == page.c.person_id,
            ),
        )
        .order_by(*(page.c[c.name] for c in ORDER))
    )


async def list_people(
    conn: AsyncConnection, account_id: str, query: PeopleQuery, json_keys: Naming = as_is
) -> PeoplePage:
    """The people of an account matching ``query``: the exact count, and the rows of the page.

    Run it in a read transaction (``read_snapshot``) so that the count and the rows see
    the same data, and read the chunks before the transaction ends. Embeds the database
    writes as JSON name their items' keys with ``json_keys``.
    """
    named_roles = await _named_roles(conn, account_id, query.role_names)
    conditions = conditions_of(backend_for(conn), account_id, query, named_roles)
    if search_terms(query.search) and await _few_matches(conn, conditions):
        gathered = await _gather_search(conn, conditions, query)
        if gathered is not None:
            total, person_ids = gathered
            page = rows_of(backend_for(conn), account_id)
            chunks = _chunks(conn, page, query, json_keys, {"page_ids": person_ids})
            return PeoplePage(total, chunks)
    count = await conn.scalar(count_statement(conditions))
    total = count or 0
    page = page_statement(conditions, query, total)
    return PeoplePage(total, _chunks(conn, page, query, json_keys))


async def _few_matches(conn: AsyncConnection, conditions: list[ColumnElement[bool]]) -> bool:
    """Whether the planner expects at most SEARCH_GATHERED matches (a few milliseconds of
    planning); a backend that cannot say is taken to expect many."""
    statement = select(personas.c.person_id).where(*conditions)
    estimate = await backend_for(conn).estimated_rows(conn, statement)
    return estimate is not None and estimate <= SEARCH_GATHERED


async def _gather_search(
    conn: AsyncConnection, conditions: list[ColumnElement[bool]], query: PeopleQuery
) -> tuple[int, list[uuid.UUID]] | None:
    """The count and the page's person ids of a search, from one pass over its matches;
    None when it matches more than GATHER_FIRST rows after all (the planner's estimate
    was far off), and the caller then counts them.

    Checking a search's matches is what it costs (on PostgreSQL, each candidate row of the
    trigram index is read again), so a selective search reads them once, not once for
    the count and again for the page.
    """
    found = (await conn.execute(gather_statement(conditions, query))).all()
    count = found[0].total
    if count > GATHER_FIRST:
        return None
    return count, [row.person_id for row in found if row.person_id is not None]


def gather_statement(conditions: list[ColumnElement[bool]], query: PeopleQuery) -> Select[Any]:
    """The count (``total``, up to GATHER_FIRST + 1) and the page's person ids of a
    search, in one pass over its matches (see _gather_search)."""
    matched = (
        select(*ORDER).where(*conditions).limit(GATHER_FIRST + 1).cte("matched")
    ).prefix_with("MATERIALIZED")
    total = select(func.count().label("total")).select_from(matched).subquery("total")
    page = (
        select(*(matched.c[c.name] for c in ORDER))
        .order_by(*(matched.c[c.name] for c in ORDER))
        .offset(query.offset)
        .limit(query.limit)
        .subquery("page")
    )
    return (
        select(total.c.total, page.c.person_id)
        .select_from(total.outerjoin(page, true()))
        .order_by(*(page.c[c.name] for c in ORDER))
    )


def count_statement(conditions: list[ColumnElement[bool]]) -> Select[Any]:
    """The number of rows matching ``conditions``."""
    return select(func.count()).select_from(personas).where(and_(*conditions))


def rows_of(backend: Backend, account_id: str) -> Select[Any]:
    """The rows of the persons bound as ``page_ids`` in the account, in the listing's order."""
    return (
        rows_select()
        .where(
            personas.c.account_id == account_id,
            backend.one_of(personas.c.person_id, "page_ids"),
        )
        .order_by(*ORDER)
    )


async def _chunks(
    conn: AsyncConnection,
    statement: Select[Any],
    query: PeopleQuery,
    json_keys: Naming,
    parameters: dict[str, Any] | None = None,
) -> AsyncIterator[list[PersonaRow]]:
    """The page's rows, a chunk at a time, with their embeds: as JSON columns of the same
    statement where the database writes them, else loaded per chunk. The next chunk is
    read while the caller renders this one, so the database and Python work at the same
    time (the caller gives the event loop a turn now and then while it renders)."""
    include = included(query.include)
    backend = backend_for(conn)
    in_rows = bool(include) and backend.renders_json
    if in_rows:  # the embeds come as JSON columns of the rows
        statement = statement.add_columns(*embed_columns(backend, include, json_keys))
    result = await conn.stream(statement, parameters)

    async def read() -> list[PersonaRow]:
        fetched = await result.fetchmany(CHUNK_SIZE)
        if in_rows:
            return [_with_rendered(row, include) for row in fetched]
        rows = [PersonaRow.of(row) for row in fetched]
        await load_embeds(conn, rows, include)
        return rows

    ahead = asyncio.ensure_future(read())
    try:
        while rows := await ahead:
            ahead = asyncio.ensure_future(read())
            await asyncio.sleep(0)  # the next read sends its first query before we go on
            yield rows
    finally:
        # Never cancelled halfway: a statement cut off mid-answer would leave the
        # connection unusable. At most one chunk is read in vain.
        with contextlib.suppress(Exception):
            await ahead
        await result.close()


def _with_rendered(row: Row[Any], include: tuple[Embed, ...]) -> PersonaRow:
    """A ROW whose embeds are the JSON columns after its own."""
    persona = PersonaRow.of(row)
    persona.included = include
    written = row[len(ROW_COLUMNS) :]
    persona.rendered = {embed.name: json for embed, json in zip(include, written, strict=True)}
    return persona
