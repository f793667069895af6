"""Statements compiled once per shape (db/shapes.py, ``Backend.fetch_shaped``): every
statement of a shape answers with its own values, as the statement built anew does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import ColumnElement, Integer, Select, bindparam, select
from sqlalchemy.sql.expression import ClauseList

from roster.db.backends import Backend, backend_for
from roster.db.engine import unit_of_work
from roster.db.plain import plain
from roster.db.shapes import known_shapes
from roster.db.tables import personas, persons
from tests.factories import Directory

NAMES = ["Lee", "Leeds", "Moss", "Strauß", "Ødegaard", "lee"]


def _listed(backend: Backend, where: ColumnElement[bool], order: ClauseList) -> Select[Any]:
    return (
        select(persons.c.last_name, personas.c.created_at, personas.c.seq)
        .select_from(personas.join(persons, persons.c.id == personas.c.person_id))
        .where(where)
        .order_by(*order, personas.c.seq)
        .limit(bindparam("limit", type_=Integer))
    )


async def test_each_statement_of_a_shape_answers_with_its_own_values(
    directory: Directory,
) -> None:
    await directory.account("SHAPES")
    for name in NAMES:
        await directory.person(["SHAPES"], first_name="Ann", last_name=name)
    since = datetime.now(UTC) - timedelta(hours=1)
    async with unit_of_work(directory.engine, write=False) as conn:
        backend = backend_for(conn)
        conditions: list[tuple[ColumnElement[bool], ClauseList]] = []
        for name in [*NAMES, "nobody"]:
            conditions.append((persons.c.last_name == name, ClauseList()))
            conditions.append(
                (persons.c.last_name.startswith(name[:2]), ClauseList(persons.c.last_name.desc()))
            )
        elsewhere = since.astimezone(timezone(timedelta(hours=-5)))
        for moment in (since, since + timedelta(days=1), elsewhere):
            conditions.append((personas.c.created_at > moment, ClauseList()))
        kept, compiled = known_shapes(), plain.cache_info().misses
        answers = set()
        for where, order in conditions:
            for limit in (1, 10):
                found = await backend.fetch_shaped(conn, _listed, (where, order), {"limit": limit})
                built = await conn.execute(_listed(backend, where, order), {"limit": limit})
                assert [tuple(row) for row in found] == [tuple(row) for row in built.all()]
                answers.add(tuple(tuple(row) for row in found))
        assert len(answers) >= 8  # the values chose different rows
        # Three shapes (eq, a prefix in an order, a moment), whatever their values, and
        # nothing compiled for one statement's values alone. Counted as new shapes, not
        # as the cache's size: after the rest of the suite the cache may be full (it
        # keeps SHAPES_KEPT), and each new shape then drops an old one.
        assert len(known_shapes() - kept) == 3
        assert plain.cache_info().misses == compiled
