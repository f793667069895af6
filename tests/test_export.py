"""roster export's core: the import's own format, streamed; export then import is the same state."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import orjson
import pytest
from sqlalchemy import delete

from roster.core.demo import generate_demo
from roster.core.exporting import ExportFormat, export_rows
from roster.core.importing import IMPORT_COLUMNS, import_rows
from roster.db.engine import unit_of_work
from roster.db.tables import (
    addresses,
    budget_members,
    budgets,
    personas,
    persons,
    team_members,
    teams,
)
from roster.errors import AccountNotFound
from tests.bulk import counts, leave_empty, people_state
from tests.factories import Directory, reset_database

pytestmark = pytest.mark.usefixtures(leave_empty.__name__)


async def export_text(directory: Directory, account: str, fmt: ExportFormat) -> str:
    out = io.StringIO()
    await export_rows(directory.engine, account, fmt, out)
    return out.getvalue()


async def test_csv_has_the_import_columns_and_one_row_per_persona(directory: Directory) -> None:
    account = await directory.account("F50091")
    other = await directory.account("OTHER")
    await directory.person(
        [account, other],
        first_name="César",
        last_name="Treutel",
        email_address="c.treutel@acme.example",
        phone_number="07700 900123",
        external_ref="ct",
        role_name="Admin",
        status="invited",
        job_title="Buyer, senior",
    )
    await directory.person([other], first_name="Not", last_name="Here", external_ref="nh")
    rows = list(csv.reader(io.StringIO(await export_text(directory, account, "csv"))))
    assert rows[0] == list(IMPORT_COLUMNS)
    assert len(rows) == 2
    exported = dict(zip(rows[0], rows[1], strict=True))
    assert exported["first_name"] == "César"
    assert exported["phone_number"] == "07700 900123"
    assert (exported["role_name"], exported["status"]) == ("Admin", "invited")
    assert exported["job_title"] == "Buyer, senior"
    assert exported["dob"] == exported["title"] == ""


async def test_jsonl_is_one_object_per_line_with_every_column(directory: Directory) -> None:
    account = await directory.account("F50091")
    await directory.person([account], first_name="Ann", email_address="ann@example.com")
    lines = (await export_text(directory, account, "jsonl")).splitlines()
    assert len(lines) == 1
    row = orjson.loads(lines[0])
    assert tuple(row) == IMPORT_COLUMNS
    assert (row["first_name"], row["last_name"], row["role_name"]) == ("Ann", None, "User")


async def test_an_unknown_account_is_refused(directory: Directory) -> None:
    with pytest.raises(AccountNotFound):
        await export_text(directory, "NOPE", "csv")


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
async def test_export_then_import_into_an_empty_database_gives_the_same_people(
    directory: Directory, tmp_path: Path, fmt: ExportFormat
) -> None:
    summary = await generate_demo(directory.engine, directory.settings, "F50091", 60, seed=7)
    before = await people_state(directory.engine, "F50091")
    path = tmp_path / f"people.{fmt}"
    with path.open("w", encoding="utf-8", newline="") as out:
        assert await export_rows(directory.engine, "F50091", fmt, out) == summary.people

    # Re-imported into the same account: nothing changes.
    again = await import_rows(directory.engine, directory.settings, "F50091", path)
    assert (again.unchanged, again.failed) == (summary.people, 0), again.failures
    assert await people_state(directory.engine, "F50091") == before

    # Into an empty database (the demo's custom roles made first, as an operator would).
    await reset_database(directory.engine)
    await generate_demo(directory.engine, directory.settings, "F50091", 1, seed=99)
    await reset_people(directory)
    imported = await import_rows(directory.engine, directory.settings, "F50091", path)
    assert (imported.created, imported.failed) == (summary.people, 0), imported.failures
    assert await people_state(directory.engine, "F50091") == before


async def reset_people(directory: Directory) -> None:
    """Keep the account and its roles; remove everything else."""
    async with unit_of_work(directory.engine, write=True) as conn:
        for table in (addresses, budget_members, budgets, team_members, teams, personas, persons):
            await conn.execute(delete(table))
    assert await counts(directory.engine) == (0, 0)
