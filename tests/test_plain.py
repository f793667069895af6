"""Statements run on the driver's own connection (db/plain.py, ``Backend.fetch_plain``):
every value is bound and read as SQLAlchemy binds and reads it, lists included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, bindparam, select

from roster.db.backends import Backend, backend_for
from roster.db.engine import unit_of_work
from roster.db.tables import personas, persons
from tests.factories import Directory


def _statement(backend: Backend) -> Select[Any]:
    """Text, UUIDs, times, a flag, numbers and a list, each bound and read."""
    return (
        select(
            persons.c.id,
            persons.c.last_name,
            personas.c.id,
            personas.c.account_id,
            personas.c.created_at,
            personas.c.created_at > bindparam("since"),
            personas.c.seq,
        )
        .join_from(personas, persons, persons.c.id == personas.c.person_id)
        .where(backend.one_of(personas.c.account_id, "accounts"))
        .where(personas.c.created_at > bindparam("after"))
        .order_by(personas.c.seq)
    )


async def test_a_plain_read_answers_as_sqlalchemy_does(directory: Directory) -> None:
    for account in ("PLAIN-A", "PLAIN-B", "PLAIN-C"):
        await directory.account(account)
    for n, last in enumerate(["Lee", "Strauß", "Ødegaard", "O'Neil"]):
        await directory.person(["PLAIN-A", "PLAIN-B"] if n % 2 else ["PLAIN-C"], last_name=last)
    now = datetime.now(UTC)
    async with unit_of_work(directory.engine, write=False) as conn:
        backend = backend_for(conn)
        statement = _statement(backend)
        answers = []
        lists: tuple[list[str], ...] = (
            [],
            ["PLAIN-A"],
            ["PLAIN-A", "PLAIN-C"],
            ["PLAIN-A", "PLAIN-B", "PLAIN-C"],
        )
        for accounts in lists:
            for since in (now - timedelta(hours=1), now + timedelta(hours=1)):
                values = {"accounts": accounts, "since": since, "after": now - timedelta(days=1)}
                found = await backend.fetch_plain(conn, statement, values)
                built = (await conn.execute(statement, values)).all()
                assert [tuple(row) for row in found] == [tuple(row) for row in built]
                answers.append([tuple(row) for row in found])
        assert [len(rows) for rows in answers] == [0, 0, 2, 2, 4, 4, 6, 6]
        flags = {row[5] for rows in answers for row in rows}
        assert flags == {True, False}  # read as the flags they are, not as 0 and 1
