"""Helpers for the import, export and demo tests: files to import, and the state to compare."""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from roster.db.engine import unit_of_work
from roster.db.tables import personas, persons, roles
from tests.factories import Directory, reset_database

#: Every field an import can set, and what a comparison of states looks at.
STATE_COLUMNS = (
    *(persons.c[name] for name in ("first_name", "last_name", "email_address", "phone_number")),
    *(persons.c[name] for name in ("external_ref", "title", "middle_initials", "dob", "gender")),
    persons.c.nationality,
    persons.c.country_of_residence,
    persons.c.email_key,
    persons.c.phone_key,
    personas.c.status,
    roles.c.name.label("role_name"),
    personas.c.employee_number,
    personas.c.job_title,
    personas.c.work_number,
    personas.c.display_name,
    personas.c.sort_last,
    personas.c.sort_first,
    personas.c.search_text,
)


@pytest.fixture
async def leave_empty(directory: Directory) -> AsyncIterator[None]:
    """Empty the tables after the test too: bulk tests leave many people behind, and some
    modules (test_faults) expect a database no test has filled."""
    yield
    await reset_database(directory.engine)


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_jsonl(path: Path, lines: Sequence[dict[str, Any] | str]) -> Path:
    with path.open("wb") as handle:
        for line in lines:
            handle.write(line.encode() if isinstance(line, str) else orjson.dumps(line))
            handle.write(b"\n")
    return path


async def people_state(engine: AsyncEngine, account_id: str) -> list[dict[str, Any]]:
    """The account's people, with everything an import sets, without ids or timestamps."""
    async with unit_of_work(engine, write=False) as conn:
        rows = await conn.execute(
            select(*STATE_COLUMNS)
            .join(persons, persons.c.id == personas.c.person_id)
            .join(roles, roles.c.id == personas.c.role_id)
            .where(personas.c.account_id == account_id)
        )
        state = [dict(row._mapping) for row in rows]
    return sorted(state, key=lambda r: (str(r["external_ref"]), str(r["email_address"])))


async def counts(engine: AsyncEngine) -> tuple[int, int]:
    """How many persons and personas there are."""
    async with unit_of_work(engine, write=False) as conn:
        people = await conn.scalar(select(func.count()).select_from(persons))
        memberships = await conn.scalar(select(func.count()).select_from(personas))
    return int(people or 0), int(memberships or 0)
