"""Batches of any size end as the rows applied one after another would, and a batch
that meets another writer between its plan and its write is applied item by item."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from roster.core.importing import ImportSummary, import_rows
from roster.core.writer import PersonWrite, plan_writes, write_persons, write_planned
from roster.db.engine import unit_of_work
from roster.db.tables import persons
from tests.bulk import counts, leave_empty, people_state, write_csv
from tests.factories import PROPERTY_SETTINGS, Directory

pytestmark = pytest.mark.usefixtures(leave_empty.__name__)

ACCOUNTS = ("A1", "A2")
COLUMNS = (
    "account_id",
    "first_name",
    "last_name",
    "email_address",
    "phone_number",
    "external_ref",
    "job_title",
)
#: Few values, written in several ways, so that rows keep meeting the same people:
#: by ref, by an email in another case, by a phone in another format (or ambiguously).
EMAILS = ("", "ann@x.example", "ANN@X.example", "bo@x.example", "cy@x.example")
PHONES = ("", "07700 900001", "+447700900001", "07700 900002", "+44 7700 900003")
REFS = ("", "r1", "r2", "r3")

rows = st.lists(
    st.tuples(
        st.sampled_from(ACCOUNTS),
        st.sampled_from(("", "Ann", "Bo")),
        st.sampled_from(("", "Lee", "Ng")),
        st.sampled_from(EMAILS),
        st.sampled_from(PHONES),
        st.sampled_from(REFS),
        st.sampled_from(("", "Pilot", "Cook")),
    ),
    min_size=1,
    max_size=14,
)

#: People there before the import: one holds an email and a phone the file uses, two
#: share a phone in A1 (a match by that phone alone is ambiguous there).
EXISTING = (
    PersonWrite(
        {"first_name": "Old", "email_address": "bo@x.example", "phone_number": "07700 900002"},
        frozenset({"A1"}),
    ),
    PersonWrite(
        {"first_name": "Twin", "phone_number": "07700 900003", "external_ref": "t1"},
        frozenset({"A1"}),
    ),
    PersonWrite(
        {"first_name": "Twin", "phone_number": "07700 900003", "external_ref": "t2"},
        frozenset({"A1", "A2"}),
    ),
)


async def _import(directory: Directory, path: Path, batch_size: int) -> tuple[Any, ...]:
    """Import into a directory holding EXISTING; the summary and the state it leaves."""
    await directory.fresh(ACCOUNTS, EXISTING)
    summary = await import_rows(
        directory.engine, directory.settings, None, path, batch_size=batch_size
    )
    states = [await people_state(directory.engine, account) for account in ACCOUNTS]
    return _summary(summary), states, await counts(directory.engine)


def _summary(summary: ImportSummary) -> tuple[Any, ...]:
    failures = [(f.line, f.type, f.reason) for f in summary.failures]
    return summary.created, summary.updated, summary.unchanged, summary.failed, failures


@PROPERTY_SETTINGS
@given(file=rows, batch_size=st.integers(1, 4))
async def test_small_batches_end_as_one_batch_does(
    directory: Directory, tmp_path: Path, file: list[tuple[str, ...]], batch_size: int
) -> None:
    path = write_csv(tmp_path / "rows.csv", COLUMNS, file)
    whole = await _import(directory, path, batch_size=10_000)
    assert await _import(directory, path, batch_size=batch_size) == whole


async def test_a_plan_that_meets_another_writer_is_planned_again(
    directory: Directory,
) -> None:
    if directory.engine.dialect.name == "sqlite":
        pytest.skip("a SQLite writer takes the lock at BEGIN: no other writer gets in between")
    await directory.fresh(ACCOUNTS, ())
    region = directory.settings.default_phone_region
    items = [PersonWrite({"first_name": "Cy", "email_address": "cy@x.example"}, frozenset({"A1"}))]
    async with unit_of_work(directory.engine, write=True) as conn:
        planned = await plan_writes(conn, items, region)
        assert [o.created for o in planned.written] == [True]
        # Another writer creates cy@ between this plan and its write.
        async with unit_of_work(directory.engine, write=True) as other:
            other_cy = PersonWrite(
                {"first_name": "Other", "email_address": "cy@x.example"}, frozenset({"A2"})
            )
            [created] = await write_persons(other, [other_cy], region=region)
        outcomes = await write_planned(conn, planned)
    # Planned again, the item finds the other writer's person by email (it used to
    # fail as a duplicate_value).
    assert [(o.created, o.changed, o.error) for o in outcomes] == [(False, True, None)]
    assert outcomes[0].person_id == created.person_id
    async with unit_of_work(directory.engine, write=False) as conn:
        cys = await conn.scalars(
            select(persons.c.first_name).where(persons.c.email_key == "cy@x.example")
        )
        assert cys.all() == ["Cy"]
    assert await counts(directory.engine) == (1, 2)  # Cy, in A1 and A2


async def test_keys_given_up_are_taken_in_the_same_batch(
    directory: Directory, tmp_path: Path
) -> None:
    """Two people swap emails and a new person takes the email one gave up, in one batch.
    The property test above found that PostgreSQL refused this (the new row was copied
    in while the old holder still had its email)."""
    await directory.fresh(
        ACCOUNTS,
        [
            PersonWrite({"external_ref": "ra", "email_address": "a@x.example"}, frozenset({"A1"})),
            PersonWrite({"external_ref": "rb", "email_address": "b@x.example"}, frozenset({"A1"})),
            PersonWrite({"external_ref": "rc", "email_address": "c@x.example"}, frozenset({"A1"})),
        ],
    )
    path = write_csv(
        tmp_path / "rows.csv",
        COLUMNS,
        [
            ("A1", "", "", "d@x.example", "", "ra", ""),
            ("A1", "", "", "a@x.example", "", "rb", ""),
            ("A1", "", "", "b@x.example", "", "ra", ""),  # ra and rb have swapped
            ("A1", "", "", "e@x.example", "", "rc", ""),
            ("A1", "New", "", "c@x.example", "", "rn", ""),  # rc's email until this batch
        ],
    )
    summary = await import_rows(directory.engine, directory.settings, None, path)
    assert _summary(summary) == (1, 4, 0, 0, [])
    async with unit_of_work(directory.engine, write=False) as conn:
        held = dict((await conn.execute(select(persons.c.external_ref, persons.c.email_key))).all())
    assert held == {
        "ra": "b@x.example",
        "rb": "a@x.example",
        "rc": "e@x.example",
        "rn": "c@x.example",
    }
