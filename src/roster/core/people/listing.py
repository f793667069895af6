"""Listing an account's people: filters, search, a stable order, an exact count, and
rows streamed in chunks so that a page of 100,000 never sits in memory at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, Subquery, and_, bindparam, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncConnection

from roster.core.matching import name_key, search_terms
from roster.core.people.embeds import (
    Embed,
    embed_columns,
    included,
    load_embeds,
    render_embeds,
)
from roster.core.people.persona_rows import ROW_COLUMNS, PersonaRow, rows_select
from roster.db.backends import Backend, backend_for
from roster.db.engine import run_statements
from roster.db.tables import budget_members, budgets, personas, persons, roles, team_members
from roster.errors import Naming, as_is

#: Rows fetched (and embeds loaded) at a time while a page streams.
CHUNK_SIZE = 1000
#: Up to this many matching rows, a page gathers and sorts them rather than walking the
#: account's ordered index (see page_statement).
GATHER_FIRST = 20_000
#: A page of up to this many rows has the database write its embeds as columns of the
#: page's own statement (a correlated subquery per row and embed: the fewest round trips);
#: a larger one has them written a chunk at a time, one statement per embed, set-based
#: (render_embeds): at 100,000 rows the correlated subqueries were most of the time.
EMBED_COLUMNS_UP_TO = CHUNK_SIZE
#: A search's page of up to this many rows is read by one statement (search_page), all
#: at once; a larger one is streamed (list_people).
SEARCH_PAGE_LIMIT = CHUNK_SIZE
#: Searches (account and terms) lately found to match more than GATHER_FIRST rows, most
#: recent last: search_page counts them and walks the ordered index at once (with filters,
#: leaves them to list_people), instead of gathering 20,001 matches in vain first (it
#: doubled a broad search's time). Per process; a search that matches fewer rows later
#: is only slower, never answered differently.
_MANY_MATCHES: OrderedDict[tuple[str, tuple[str, ...]], None] = OrderedDict()
MANY_MATCHES_KEPT = 1000


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

    @property
    def whole_account(self) -> bool:
        """No search and no filter: the account's people, all of them."""
        return self == PeopleQuery(self.limit, self.offset, include=self.include)


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
    conditions: list[ColumnElement[bool]] = [
        personas.c.account_id == bindparam("account_id", account_id)
    ]
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
    writes as JSON name their items' keys with ``json_keys``. A search is answered
    sooner by :func:`search_page` (on any connection) when it matches few rows.
    """
    conditions = await _conditions(conn, account_id, query)
    total = await conn.scalar(count_statement(conditions)) or 0
    page = page_statement(conditions, query, total)
    return PeoplePage(total, _chunks(conn, page, query, json_keys))


async def _conditions(
    conn: AsyncConnection, account_id: str, query: PeopleQuery
) -> list[ColumnElement[bool]]:
    named_roles = await _named_roles(conn, account_id, query.role_names)
    return conditions_of(backend_for(conn), account_id, query, named_roles)


async def count_people(conn: AsyncConnection, account_id: str, query: PeopleQuery) -> int:
    """How many people of the account match ``query`` (its paging aside)."""
    return await conn.scalar(count_statement(await _conditions(conn, account_id, query))) or 0


def uncounted_people(
    conn: AsyncConnection, account_id: str, query: PeopleQuery, json_keys: Naming = as_is
) -> AsyncIterator[list[PersonaRow]]:
    """The rows of a page of the whole account (``query`` neither searches nor filters),
    without counting the account first: the walk of its ordered index that stops after
    the page, the plan the count would choose for a large account and as quick for a
    small one. For a page that shows its rows before their count (the web page's first).
    """
    if not query.whole_account:
        raise ValueError("only a page of the whole account is read uncounted")
    conditions = conditions_of(backend_for(conn), account_id, query, [])
    return _chunks(conn, page_statement(conditions, query, GATHER_FIRST + 1), query, json_keys)


async def search_page(
    conn: AsyncConnection, account_id: str, query: PeopleQuery, json_keys: Naming = as_is
) -> PeoplePage | None:
    """A search's count and page, read by one statement (so on any connection, in no
    transaction: one statement sees one snapshot), with the rows' embeds loaded; None
    when ``query`` is no search, asks for more than SEARCH_PAGE_LIMIT rows (streamed by
    :func:`list_people`), or has filters and matches more than GATHER_FIRST rows.

    Checking a search's matches is what it costs (on PostgreSQL, each candidate row of
    the trigram index is read again from the table), so they are read once: gathered
    (at most GATHER_FIRST + 1), counted, and the page sorted from them and joined to its
    rows. A search without filters that matches more (lately: ``_MANY_MATCHES``) is
    counted, and its page walked from the account's ordered index, by one statement too
    (:func:`_counted`); with filters it is left to list_people, which counts first (its
    filters may leave few matches, which a walk of the whole account would look for in
    vain). A search without filters runs a statement built once for its shape (the number
    of terms), with the request's values bound: building and compiling a statement cost
    more than running this one.
    """
    terms = search_terms(query.search)
    if not terms or query.limit > SEARCH_PAGE_LIMIT:
        return None
    plain = query == PeopleQuery(query.limit, query.offset, query.search, query.include)
    many = (account_id, tuple(sorted(terms)))
    counted = many in _MANY_MATCHES
    if counted and not plain:
        return None  # counted first by list_people: its filters may leave few
    backend = backend_for(conn)
    include = included(query.include)
    in_rows = bool(include) and backend.renders_json
    columns = include if in_rows else ()
    parameters = {
        "account_id": account_id,
        "offset": query.offset,
        "limit": query.limit,
        **backend.search_parameters(terms),
    }
    found: Sequence[Sequence[Any]]
    if plain:
        shape = backend.search_shape(terms)
        statement = _search_statement(backend, shape, tuple(terms), columns, json_keys, counted)
        async with backend.custom_plans(conn):
            found = await backend.fetch_plain(conn, statement, parameters)
    else:  # filters: their values are in the statement
        named_roles = await _named_roles(conn, account_id, query.role_names)
        conditions = conditions_of(backend, account_id, query, named_roles)
        statement = _gathered(backend, conditions, columns, json_keys)
        async with backend.custom_plans(conn):
            found = (await conn.execute(statement, parameters)).all()
    count: int = found[0][0]
    if count > GATHER_FIRST and not counted:
        _MANY_MATCHES[many] = None
        while len(_MANY_MATCHES) > MANY_MATCHES_KEPT:
            _MANY_MATCHES.popitem(last=False)
        return await search_page(conn, account_id, query, json_keys) if plain else None
    listed = [row[1:] for row in found if row[1] is not None]
    if in_rows:
        rows = [_with_rendered(row, include) for row in listed]
    else:
        rows = [PersonaRow.of(row) for row in listed]
        await load_embeds(conn, rows, include)
    return PeoplePage(count, _one_chunk(rows))


async def _one_chunk(rows: list[PersonaRow]) -> AsyncIterator[list[PersonaRow]]:
    if rows:
        yield rows


#: Searches' statements by shape (see _search_statement), the most recently built last.
_SEARCH_STATEMENTS: OrderedDict[Hashable, Select[Any]] = OrderedDict()
SEARCH_SHAPES_KEPT = 256


def _search_statement(
    backend: Backend,
    shape: Hashable,
    terms: tuple[str, ...],
    include: tuple[Embed, ...],
    json_keys: Naming,
    counted: bool,
) -> Select[Any]:
    """The statement of a search without filters, for every search of this ``shape``,
    :func:`_gathered` or (``counted``) :func:`_counted`: built with the first one's
    ``terms``, whose values are bound parameters that each search binds anew
    (``Backend.search_parameters``), then kept. Kept by its terms too (an ``lru_cache`` of
    every argument), it was built and compiled again for each new term: 0.9 ms of CPU, a
    fifth of a search's."""
    # GATHER_FIRST too: the statement's limit is the value it was built with.
    key = (backend, shape, include, json_keys, counted, GATHER_FIRST)
    statement = _SEARCH_STATEMENTS.get(key)
    if statement is None:
        conditions = conditions_of(backend, "", PeopleQuery(search=" ".join(terms)), [])
        build = _counted if counted else _gathered
        statement = _SEARCH_STATEMENTS[key] = build(backend, conditions, include, json_keys)
        while len(_SEARCH_STATEMENTS) > SEARCH_SHAPES_KEPT:
            _SEARCH_STATEMENTS.popitem(last=False)
    return statement


def _gathered(
    backend: Backend,
    conditions: list[ColumnElement[bool]],
    include: tuple[Embed, ...],
    json_keys: Naming,
) -> Select[Any]:
    """The count of the matches (up to GATHER_FIRST + 1), then the page's ROWs (with the
    embeds' JSON columns of ``include``) in the listing's order; a row of nulls after the
    count when the page is empty. The account, ``offset`` and ``limit`` are parameters."""
    matched = (
        select(*ORDER).where(*conditions).limit(GATHER_FIRST + 1).cte("matched")
    ).prefix_with("MATERIALIZED")
    total = select(func.count().label("total")).select_from(matched).subquery("total")
    ordered = [matched.c[c.name] for c in ORDER]
    return _counted_rows(backend, total, select(*ordered).order_by(*ordered), include, json_keys)


def _counted(
    backend: Backend,
    conditions: list[ColumnElement[bool]],
    include: tuple[Embed, ...],
    json_keys: Naming,
) -> Select[Any]:
    """The count of every match, then the page's ROWs as :func:`_gathered` gives them,
    the page's keys walked from the account's ordered index and stopping after the page
    (as page_statement reads a page of many matches): for a search known to match more
    than GATHER_FIRST."""
    total = count_statement(conditions).subquery("total")
    page = select(*ORDER).where(*conditions).order_by(*ORDER)
    return _counted_rows(backend, total, page, include, json_keys)


def _counted_rows(
    backend: Backend,
    total: Subquery,
    ordered: Select[Any],
    include: tuple[Embed, ...],
    json_keys: Naming,
) -> Select[Any]:
    """``total``'s one value, then the ROWs of the page (``offset`` and ``limit``) of
    ``ordered`` (the listing's order columns), joined to their personas and persons: one
    statement, one snapshot, and a row of nulls after the count when the page is empty."""
    page = ordered.offset(bindparam("offset")).limit(bindparam("limit")).subquery("page")
    rows = page.join(
        personas,
        and_(
            personas.c.account_id == bindparam("account_id"),
            personas.c.person_id == page.c.person_id,
        ),
    ).join(persons, persons.c.id == personas.c.person_id)
    return (
        select(total.c[0], *ROW_COLUMNS, *embed_columns(backend, include, json_keys))
        .select_from(total.outerjoin(rows, true()))
        .order_by(*(page.c[c.name] for c in ORDER))
    )


def count_statement(conditions: list[ColumnElement[bool]]) -> Select[Any]:
    """The number of rows matching ``conditions``."""
    return select(func.count()).select_from(personas).where(and_(*conditions))


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
    written = bool(include) and backend.renders_json
    in_rows = written and query.limit <= EMBED_COLUMNS_UP_TO
    if in_rows:  # the embeds come as JSON columns of the rows
        statement = statement.add_columns(*embed_columns(backend, include, json_keys))
    result = await conn.stream(statement, parameters)
    # Embeds written a chunk at a time are looked up with chunk_embeds_setup: set once the
    # page's statement is planned (its plan is its own), set back once its rows are read.
    by_chunk = written and not in_rows

    async def read() -> list[PersonaRow]:
        fetched = await result.fetchmany(CHUNK_SIZE)
        if in_rows:
            return [_with_rendered(row, include) for row in fetched]
        rows = [PersonaRow.of(row) for row in fetched]
        if written:
            await render_embeds(conn, rows, include, json_keys)
        else:
            await load_embeds(conn, rows, include)
        return rows

    ahead: asyncio.Future[list[PersonaRow]] | None = None
    try:
        await run_statements(conn, backend.chunk_embeds_setup if by_chunk else ())
        ahead = asyncio.ensure_future(read())
        while rows := await ahead:
            ahead = asyncio.ensure_future(read())
            await asyncio.sleep(0)  # the next read sends its first query before we go on
            yield rows
        await run_statements(conn, backend.chunk_embeds_done if by_chunk else ())
    finally:
        # Never cancelled halfway: a statement cut off mid-answer would leave the
        # connection unusable. At most one chunk is read in vain.
        if ahead is not None:
            with contextlib.suppress(Exception):
                await ahead
        await result.close()


def _with_rendered(row: Sequence[Any], include: tuple[Embed, ...]) -> PersonaRow:
    """A ROW whose embeds are the JSON columns after its own."""
    persona = PersonaRow.of(row)
    persona.included = include
    written = row[len(ROW_COLUMNS) :]
    persona.rendered = {embed.name: json for embed, json in zip(include, written, strict=True)}
    return persona
