"""roster import's core: CSV and JSON Lines, bad rows alone, idempotent re-runs."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from sqlalchemy import Column, select, text
from sqlalchemy.sql import visitors

from roster.core import events as events_module
from roster.core import writer
from roster.core.events import row_data
from roster.core.importing import (
    IMPORT_COLUMNS,
    ImportFileError,
    ImportProgress,
    ImportSummary,
    import_rows,
)
from roster.core.writer import LOOKUP_COLUMNS
from roster.db.backends import PostgresBackend
from roster.db.engine import unit_of_work
from roster.db.tables import events, personas, persons
from roster.errors import AccountNotFound
from tests.bulk import counts, leave_empty, people_state, write_csv, write_jsonl
from tests.factories import Directory, reset_database, statements_sent

HEADER = ("first_name", "last_name", "email_address", "phone_number", "external_ref")

pytestmark = pytest.mark.usefixtures(leave_empty.__name__)


class Bulk(NamedTuple):
    directory: Directory
    account: str
    tmp_path: Path


@pytest.fixture
async def bulk(directory: Directory, tmp_path: Path) -> Bulk:
    """The directory, an account to import into, and a folder for the files."""
    return Bulk(directory, await directory.account("F50091"), tmp_path)


async def run(directory: Directory, path: Path, **options: object) -> ImportSummary:
    return await import_rows(directory.engine, directory.settings, "F50091", path, **options)  # type: ignore[arg-type]


def reasons(summary: ImportSummary) -> dict[int, str]:
    return {failure.line: failure.reason for failure in summary.failures}


async def test_good_rows_are_created_and_bad_rows_fail_alone_with_their_line(bulk: Bulk) -> None:
    directory, account, tmp_path = bulk
    path = write_csv(
        tmp_path / "people.csv",
        (*HEADER, "dob", "status", "role_name", "job_title"),
        [
            (
                "César",
                "Treutel",
                "c.treutel@acme.example",
                "07700 900123",
                "r-1",
                "1980-02-29",
                "invited",
                "admin",
                "Buyer",
            ),
            ("Bad", "Status", "bad.status@acme.example", "", "r-2", "", "asleep", "", ""),
            ("Bad", "Dob", "bad.dob@acme.example", "", "r-3", "1980-02-30", "", "", ""),
            ("", "", "", "07700 900999", "", "", "", "", ""),
            ("Bad", "Role", "bad.role@acme.example", "", "r-4", "", "", "Astronaut", ""),
            ("Zoë", "Ødegård", "zoe@acme.example", "", "", "", "", "", ""),
        ],
    )
    summary = await run(directory, path)

    assert (summary.created, summary.updated, summary.unchanged, summary.failed) == (2, 0, 0, 4)
    found = reasons(summary)
    assert sorted(found) == [3, 4, 5, 6]
    assert "status" in found[3]
    assert "asleep" in found[3]
    assert "dob" in found[4]
    assert "1980-02-30" in found[4]
    assert found[5] == "Insufficient information to create a new person record"
    assert "Astronaut" in found[6]
    assert {f.type for f in summary.failures} >= {"invalid_request", "insufficient_information"}
    state = await people_state(directory.engine, account)
    assert sorted(p["first_name"] for p in state) == ["César", "Zoë"]
    cesar = next(p for p in state if p["external_ref"] == "r-1")
    assert cesar["dob"] == date(1980, 2, 29)
    assert (cesar["status"], cesar["role_name"], cesar["job_title"]) == (
        "invited",
        "Admin",
        "Buyer",
    )
    zoe = next(p for p in state if p["external_ref"] is None)
    assert (zoe["status"], zoe["role_name"]) == ("active", "User")  # defaults for a new persona
    assert await counts(directory.engine) == (2, 2)  # bad rows wrote nothing


async def test_every_column_is_imported(bulk: Bulk) -> None:
    directory, account, tmp_path = bulk
    values = {
        "first_name": "Ann",
        "last_name": "Lee",
        "email_address": "Ann.Lee@Example.COM",
        "phone_number": "+44 1234 567890",
        "external_ref": "ann",
        "title": "Dr",
        "middle_initials": "J",
        "dob": "1990-01-31",
        "gender": "female",
        "nationality": "British",
        "country_of_residence": "GB",
        "status": "deactivated",
        "role_name": "Accountant",
        "employee_number": "E-1",
        "job_title": "Auditor",
        "work_number": "020 7946 0000",
        "display_name": "Ann Lee (Audit)",
    }
    assert tuple(values) == IMPORT_COLUMNS
    path = write_csv(tmp_path / "all.csv", IMPORT_COLUMNS, [tuple(values.values())])
    summary = await run(directory, path)
    assert summary.created == 1, summary.failures
    [person] = await people_state(directory.engine, account)
    assert {k: person[k] for k in values} == {**values, "dob": date(1990, 1, 31)}
    assert person["email_key"] == "ann.lee@example.com"
    assert person["phone_key"] == "+441234567890"
    assert "ann" in person["search_text"]
    assert "+442079460000" in person["search_text"]


async def test_the_events_of_an_import_hold_each_row_exactly_as_stored(bulk: Bulk) -> None:
    """The writer gives the events of the persons it creates the ROWs it wrote, without
    reading them back (and reads back the others, in a batch that has both): the last
    event of each persona must hold what reading it back gives, value for value."""
    directory, _, tmp_path = bulk
    other = await directory.account("F50092")
    values: tuple[str, ...] = ("Ann", "Lee", "Ann.Lee@Example.COM", "+44 1234 567890", "ann")
    values += ("Dr", "J", "1990-01-31", "female", "British", "GB", "deactivated")
    values += ("Accountant", "E-1", "Auditor", "020 7946 0000", "Ann Lee (Audit)")
    path = write_csv(tmp_path / "all.csv", IMPORT_COLUMNS, [values])
    assert (await run(directory, path)).created == 1
    # One batch: a new person, and Ann (known) joining this account with a new title.
    more = write_csv(
        tmp_path / "more.csv",
        (*HEADER, "title"),
        [("Bo", "Ek", "bo@x.io", "", "", ""), ("Ann", "Lee", "", "", "ann", "Prof")],
    )
    summary = await import_rows(directory.engine, directory.settings, other, more)
    assert summary.created == 2, summary.failures
    async with unit_of_work(directory.engine, write=False) as conn:
        found = await conn.execute(
            select(events.c.person_id, events.c.account_id, events.c.data)
            .where(events.c.person_id.is_not(None))
            .order_by(events.c.id)
        )
        last = {(person_id, account_id): data for person_id, account_id, data in found}
        stored = await events_module._rows_of_persons(conn, {p for p, _ in last})
    assert sorted(account for _, account in last) == ["F50091", "F50092", "F50092"]
    for key, data in last.items():
        assert json.loads(data) == json.loads(events_module._json(row_data(stored[key])))


async def test_existing_people_are_matched_and_empty_cells_leave_values_alone(bulk: Bulk) -> None:
    directory, account, tmp_path = bulk
    await directory.person(
        [account],
        first_name="Ann",
        last_name="Lee",
        email_address="ann@example.com",
        external_ref="ann",
        job_title="Chef",
    )
    path = write_csv(
        tmp_path / "update.csv",
        (*HEADER, "job_title"),
        [
            ("Anne", "", "ANN@example.com", "", "", ""),  # by email: renamed
            ("Anne", "", "", "", "ann", ""),  # by ref: nothing new
            ("Bo", "Ek", "bo@example.com", "", "", "Driver"),
        ],
    )
    summary = await run(directory, path)
    assert (summary.created, summary.updated, summary.unchanged, summary.failed) == (1, 1, 1, 0)
    state = {p["last_name"]: p for p in await people_state(directory.engine, account)}
    ann = state["Lee"]
    assert (ann["first_name"], ann["email_address"], ann["external_ref"]) == (
        "Anne",
        "ANN@example.com",  # stored as sent
        "ann",
    )
    assert ann["job_title"] == "Chef"


async def test_a_person_of_another_account_gets_a_persona_here(bulk: Bulk) -> None:
    directory, _account, tmp_path = bulk
    other = await directory.account("OTHER")
    await directory.person([other], first_name="Ann", email_address="ann@example.com")
    path = write_csv(tmp_path / "p.csv", HEADER, [("Ann", "", "ann@example.com", "", "")])
    summary = await run(directory, path)
    assert summary.created == 1
    assert await counts(directory.engine) == (1, 2)


async def test_json_lines_are_imported_with_line_numbers(bulk: Bulk) -> None:
    directory, account, tmp_path = bulk
    path = write_jsonl(
        tmp_path / "people.jsonl",
        [
            {"first_name": "Ann", "email_address": "ann@example.com", "status": None},
            "",
            '{"first_name": "Bo", "email_address": ',
            "[1, 2]",
            {"first_name": "Cy", "email_address": "cy@example.com", "employee_number": 7},
            {"first_name": "Di", "external_ref": "di", "dob": "", "role_name": "viewer"},
        ],
    )
    summary = await run(directory, path)
    assert (summary.created, summary.failed) == (2, 3)
    found = reasons(summary)
    assert sorted(found) == [3, 4, 5]
    assert "not valid JSON" in found[3]
    assert "not a JSON object" in found[4]
    assert "employee_number" in found[5]
    assert "string" in found[5]
    state = {p["first_name"]: p for p in await people_state(directory.engine, account)}
    assert state["Di"]["role_name"] == "Viewer"
    assert state["Ann"]["status"] == "active"


async def test_the_format_is_sniffed_when_the_suffix_says_nothing(bulk: Bulk) -> None:
    directory, _account, tmp_path = bulk
    jsonl = write_jsonl(tmp_path / "people.txt", [{"first_name": "Ann", "external_ref": "a"}])
    csv_file = write_csv(tmp_path / "people", HEADER, [("Bo", "", "", "", "b")])
    assert (await run(directory, jsonl)).created == 1
    assert (await run(directory, csv_file)).created == 1


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "a.csv",
            "first_name,last_name,email_address,phone_number,external_ref,frist_name\n"
            "Ann,,ann@example.com,,,\n",
            "frist_name",
        ),
        (
            "b.jsonl",
            '{"first_name": "Ann", "email_address": "ann@example.com"}\n'
            '{"first_name": "Bo", "email_address": "bo@example.com", "groups": ["x"]}\n',
            "groups",
        ),
        ("c.csv", "first_name,last_name,email_address\nAnn,,ann@example.com\n", "phone_number"),
        ("d.csv", "", "empty"),
        (
            "e.csv",
            "first_name,first_name,last_name,email_address,phone_number,external_ref\n",
            "more than once",
        ),
    ],
)
async def test_a_file_that_cannot_be_imported_is_refused_before_anything_is_written(
    bulk: Bulk, name: str, content: str, message: str
) -> None:
    directory, _, tmp_path = bulk
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ImportFileError) as raised:
        await run(directory, path)
    assert message in raised.value.message
    assert raised.value.type == "invalid_import_file"
    assert await counts(directory.engine) == (0, 0)


async def test_an_unknown_account_is_refused(directory: Directory, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "p.csv", HEADER, [("Ann", "", "ann@example.com", "", "")])
    with pytest.raises(AccountNotFound):
        await run(directory, path)


async def test_line_numbers_count_the_lines_of_quoted_cells(bulk: Bulk) -> None:
    directory, _account, tmp_path = bulk
    path = tmp_path / "multi.csv"
    path.write_text(
        "first_name,last_name,email_address,phone_number,external_ref,job_title\n"
        'Ann,,ann@example.com,,,"Head\nof sales"\n'
        "Bo,,bo@example.com,,,,\n"
        "Cy,,,,,\n"
        "\n"
        "Di,,di@example.com,,,\n",
        encoding="utf-8",
    )
    summary = await run(directory, path)
    found = reasons(summary)
    assert sorted(found) == [2, 4, 5]
    assert "control characters" in found[2]
    assert "7 cells" in found[4]
    assert found[5] == "Insufficient information to create a new person record"
    assert summary.created == 1


async def test_reimporting_the_same_file_changes_nothing(bulk: Bulk) -> None:
    directory, account, tmp_path = bulk
    path = write_csv(tmp_path / "p.csv", (*HEADER, "status"), _people(30))
    first = await run(directory, path, batch_size=7)
    before = await people_state(directory.engine, account)
    again = await run(directory, path, batch_size=7)
    assert (first.created, first.updated, first.failed) == (30, 1, 0)
    # The person the file renames is renamed back and forth again; the rest is unchanged.
    assert (again.created, again.updated, again.unchanged, again.failed) == (0, 2, 29, 0)
    assert await people_state(directory.engine, account) == before
    assert await counts(directory.engine) == (30, 30)


def _people(count: int) -> list[tuple[str, ...]]:
    """People matched every way: by ref, by email, by phone alone; one repeated later."""
    rows: list[tuple[str, ...]] = []
    for n in range(count):
        ref = f"ref-{n}" if n % 3 == 0 else ""
        email = f"p{n}@example.com" if n % 3 == 1 else ""
        rows.append((f"First{n}", f"Last{n}", email, f"07700 9{n:05d}", ref, "invited"))
    rows.append(("First0", "Renamed", "", "", "ref-0", "active"))  # a later update of row 2
    return rows


async def test_an_interrupted_import_run_again_ends_as_one_clean_run(bulk: Bulk) -> None:
    directory, account, tmp_path = bulk
    path = write_csv(tmp_path / "p.csv", (*HEADER, "status"), _people(25))

    async def interrupted() -> None:
        def stop_after_two_batches(progress: ImportProgress) -> None:
            if progress.rows >= 10:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            await run(directory, path, batch_size=5, on_progress=stop_after_two_batches)

    await interrupted()
    assert await counts(directory.engine) == (10, 10)  # whole batches were committed
    resumed = await run(directory, path, batch_size=5)
    assert resumed.failed == 0
    after_resume = await people_state(directory.engine, account)

    await reset_database(directory.engine)
    await directory.account(account)
    await run(directory, path, batch_size=5)
    assert await people_state(directory.engine, account) == after_resume
    assert await counts(directory.engine) == (25, 25)


async def test_rows_in_later_batches_see_earlier_ones(bulk: Bulk) -> None:
    directory, _account, tmp_path = bulk
    path = write_csv(
        tmp_path / "p.csv",
        HEADER,
        [
            ("Ann", "", "ann@example.com", "", "a"),
            ("Bo", "", "bo@example.com", "", "b"),
            ("Ann", "Lee", "", "", "a"),  # the next batch: same person
            ("Bo", "", "ann@example.com", "", "b"),  # Bo by ref; the email is Ann's
        ],
    )
    summary = await run(directory, path, batch_size=2)
    assert (summary.created, summary.updated, summary.failed) == (2, 1, 1)
    assert summary.failures[0].line == 5
    assert summary.failures[0].type == "duplicate_value"


async def test_progress_is_reported_after_each_batch(bulk: Bulk) -> None:
    directory, _account, tmp_path = bulk
    path = write_csv(tmp_path / "p.csv", (*HEADER, "status"), _people(9))
    seen: list[ImportProgress] = []
    await run(directory, path, batch_size=4, on_progress=seen.append)
    assert [p.rows for p in seen] == [4, 8, 10]
    assert seen[-1].bytes_read == seen[-1].total_bytes == path.stat().st_size


async def test_a_row_that_is_not_utf8_fails_alone(bulk: Bulk) -> None:
    directory, _account, tmp_path = bulk
    path = tmp_path / "latin1.csv"
    path.write_bytes(
        b"first_name,last_name,email_address,phone_number,external_ref\n"
        b"Ren\xe9,,rene@example.com,,\n"
        b"Ren\xc3\xa9,,rene2@example.com,,\n"
        b'"Bo,,"bo@example.com,,\n'
        b"Cy,,cy@example.com,,\n"
    )
    summary = await run(directory, path)
    found = reasons(summary)
    assert "UTF-8" in found[2]
    assert summary.created == 2
    assert summary.failed == 2


async def test_without_an_account_each_row_names_its_own(bulk: Bulk) -> None:
    directory, _, tmp_path = bulk
    await directory.account("F50092")
    path = write_csv(
        tmp_path / "many.csv",
        ("account_id", *HEADER),
        [
            ("F50091", "Ada", "One", "ada@one.example", "", "a-1"),
            ("F50092", "Bo", "Two", "bo@two.example", "", "b-1"),
            ("F50092", "Ada", "One", "ada@one.example", "", "a-1"),  # joins a second account
            ("NOPE", "Cy", "Three", "cy@three.example", "", "c-1"),
            ("", "Di", "Four", "di@four.example", "", "d-1"),
        ],
    )
    summary = await import_rows(directory.engine, directory.settings, None, path)
    assert (summary.created, summary.failed) == (3, 2)
    assert reasons(summary) == {5: "There is no account 'NOPE'.", 6: "The row has no account_id."}
    assert await counts(directory.engine) == (2, 3)


async def test_an_account_id_column_is_unknown_when_the_account_is_given(bulk: Bulk) -> None:
    directory, _, tmp_path = bulk
    path = write_csv(
        tmp_path / "x.csv", ("account_id", *HEADER), [("F50091", "A", "B", "", "", "")]
    )
    with pytest.raises(ImportFileError, match="account_id is read only when no account is given"):
        await run(directory, path)
    assert await counts(directory.engine) == (0, 0)


async def _planner_statistics(directory: Directory) -> int:
    """How often persons and personas were analyzed (PostgreSQL), or how many statistics
    rows they have (SQLite)."""
    async with unit_of_work(directory.engine, write=False) as conn:
        if conn.dialect.name == "postgresql":
            statement = (
                "SELECT coalesce(sum(analyze_count), 0) FROM pg_stat_user_tables"
                " WHERE relname IN ('persons', 'personas')"
            )
        else:
            statement = "SELECT count(*) FROM sqlite_stat1 WHERE tbl IN ('persons', 'personas')"
        return int(await conn.scalar(text(statement)) or 0)


async def test_an_import_refreshes_the_planner_statistics(bulk: Bulk) -> None:
    directory, _, tmp_path = bulk
    async with unit_of_work(directory.engine, write=True) as conn:
        if conn.dialect.name == "sqlite":
            await conn.execute(text("ANALYZE sqlite_schema"))  # creates sqlite_stat1
            await conn.execute(text("DELETE FROM sqlite_stat1"))
    before = await _planner_statistics(directory)
    path = write_csv(
        tmp_path / "people.csv",
        HEADER,
        [("Ann", "Lee", "ann.lee@acme.example", "", "r-1")],
    )
    assert (await run(directory, path)).created == 1
    assert await _planner_statistics(directory) > before


async def test_statistics_during_an_import_are_its_lookups_and_at_its_end_every_columns(
    bulk: Bulk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Statistics of every column cost seconds at a few hundred thousand rows (the names'
    and the search text's most of it): while an import runs it refreshes those of the
    columns it finds rows by, for its own plans; after its first batch and at its end,
    every column's, which the listings' plans read."""
    directory, _, tmp_path = bulk
    monkeypatch.setattr(writer, "FIRST_ANALYZE", 2)
    rows = [(f"P{n}", "Lee", f"p{n}@acme.example", "", f"r-{n}") for n in range(8)]
    path = write_csv(tmp_path / "people.csv", HEADER, rows)
    with statements_sent(directory.engine) as sent:
        assert (await run(directory, path, batch_size=2)).created == 8
    analyzed = [statement for statement in sent if statement.startswith("ANALYZE")]
    if directory.engine.dialect.name == "sqlite":  # its statistics are its indexes'
        assert analyzed[-2:] == ["ANALYZE persons", "ANALYZE personas"]
        return
    first, *during, at_end = analyzed
    # The first and the last cover every column: an import cut short leaves some for each.
    assert first == at_end == "ANALYZE persons, personas"
    assert len(during) == 1
    for statement in during:
        named = re.findall(r"(\w+) \(([^)]*)\)", statement)
        assert [table for table, _ in named] == ["persons", "personas"]
        columns = {(table, column) for table, listed in named for column in listed.split(", ")}
        assert columns == {(column.table.name, column.name) for column in LOOKUP_COLUMNS}


def test_the_lookup_columns_are_every_column_the_writers_lookups_filter_on() -> None:
    """LOOKUP_COLUMNS are what an import keeps statistics of while it runs: each column
    the writer's statements that find persons and personas compare must be one."""
    lookups = [
        writer._prefetch_statement(PostgresBackend(), True, True, True, True, True),
        writer._user_names_statement(PostgresBackend()),
    ]
    compared: set[Column[Any]] = set()
    for statement in lookups:
        for each in getattr(statement, "selects", [statement]):
            for element in visitors.iterate(each.whereclause):
                if isinstance(element, Column) and element.table in (persons, personas):
                    compared.add(element)
    assert compared == set(LOOKUP_COLUMNS)


HEADER_LINE = "first_name,last_name,email_address,phone_number,external_ref\nZoë,Lee,z@x.io,,\n"


@pytest.mark.parametrize(
    ("content", "named"),
    [
        (HEADER_LINE.encode("utf-16"), "The file is UTF-16, not UTF-8"),
        (HEADER_LINE.encode("utf-16-be"), "The file is UTF-16 or UTF-32 (it has NUL bytes)"),
        (HEADER_LINE.encode("utf-32"), "The file is UTF-32, not UTF-8"),
        (
            HEADER_LINE.replace("external_ref", "external_ref,job_titlé").encode("cp1252"),
            "The file is not UTF-8 (byte 0xe9 at offset 69 of the first line",
        ),
    ],
)
@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
async def test_a_file_that_is_not_utf8_is_refused_naming_its_encoding(
    bulk: Bulk, content: bytes, named: str, suffix: str
) -> None:
    directory, _account, tmp_path = bulk
    path = tmp_path / f"people{suffix}"
    path.write_bytes(content)
    with pytest.raises(ImportFileError) as refused:
        await run(directory, path)
    assert refused.value.message.startswith(named), refused.value.message
    assert "save it as UTF-8" in refused.value.message
    assert not any("\udc80" <= c <= "\udcff" for c in refused.value.message)
    assert await counts(directory.engine) == (0, 0)
