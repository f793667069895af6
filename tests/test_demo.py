"""roster demo's core: data for every filter and embed of GET /people."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import bindparam, func, select, text

from roster.core import demo, writer
from roster.core.demo import CUSTOM_ROLES, RealAccount, generate_demo
from roster.db import tables as t
from roster.db.engine import unit_of_work
from roster.db.tables import BUDGET_TYPES, PERSONA_STATUSES
from tests.bulk import counts, leave_empty, people_state
from tests.factories import Directory, statements_sent

pytestmark = pytest.mark.usefixtures(leave_empty.__name__)


async def test_demo_creates_the_account_and_data_for_every_filter_and_embed(
    directory: Directory,
) -> None:
    summary = await generate_demo(directory.engine, directory.settings, "DEMO", 120, seed=1)
    assert summary.account_created
    assert summary.people == 120
    assert await counts(directory.engine) == (120, 120)
    async with unit_of_work(directory.engine, write=False) as conn:

        async def values(query: object) -> set[object]:
            return set(await conn.scalars(query))  # type: ignore[call-overload]

        assert await values(select(t.accounts.c.id)) == {"DEMO"}
        assert await values(select(t.personas.c.status)) == set(PERSONA_STATUSES)
        used_roles = await values(
            select(t.roles.c.name).join(t.personas, t.personas.c.role_id == t.roles.c.id)
        )
        assert set(CUSTOM_ROLES) <= used_roles
        assert {"Owner", "User", "Admin"} <= used_roles
        assert await values(select(t.roles.c.type).where(t.roles.c.name.in_(CUSTOM_ROLES))) == {
            None
        }
        assert await values(select(t.budgets.c.type)) == set(BUDGET_TYPES)
        individual = select(t.budgets).where(t.budgets.c.type == "individual")
        assert all(b.primary_owner_persona_id for b in await conn.execute(individual))
        assert not await values(
            select(t.budget_members.c.budget_id)
            .join(t.budgets)
            .where(t.budgets.c.type == "individual")
        )
        assert await values(select(func.count()).select_from(t.budget_members)) != {0}
        owners = select(t.budgets.c.primary_owner_persona_id).where(
            t.budgets.c.type == "individual"
        )
        without_budget = select(func.count()).where(t.personas.c.id.not_in(owners))
        assert (await conn.scalar(without_budget) or 0) > 0
        assert summary.teams >= 2
        team_owners = await values(select(t.teams.c.primary_owner_persona_id))
        assert None not in team_owners
        assert len(await values(select(t.team_members.c.persona_id).distinct())) > 50
        assert summary.addresses == await conn.scalar(select(func.count()).select_from(t.addresses))
        assert summary.addresses > 60
        created_by = await values(select(t.personas.c.created_by_persona_id))
        assert None in created_by
        assert len(created_by) > 1
        names = await values(select(t.persons.c.first_name))
        assert any(not str(name).isascii() for name in names)  # accented names
        assert await values(select(func.count()).where(t.persons.c.dob.is_not(None))) != {0}


async def test_the_same_seed_gives_the_same_people(directory: Directory) -> None:
    await generate_demo(directory.engine, directory.settings, "A1", 30, seed=5)
    await generate_demo(directory.engine, directory.settings, "A2", 30, seed=5)
    first = await people_state(directory.engine, "A1")
    second = await people_state(directory.engine, "A2")
    assert [p["first_name"] for p in first] == [p["first_name"] for p in second]


async def test_an_existing_account_is_filled_not_recreated(directory: Directory) -> None:
    await directory.account("F50091")
    summary = await generate_demo(directory.engine, directory.settings, "F50091", 10, seed=3)
    assert not summary.account_created
    assert summary.people == 10


async def test_a_thousand_people_are_all_created(directory: Directory) -> None:
    summary = await generate_demo(directory.engine, directory.settings, "BIG", 1000, seed=11)
    assert summary.people == 1000
    async with unit_of_work(directory.engine, write=False) as conn:
        held = await conn.scalar(
            select(func.count()).select_from(t.personas).where(t.personas.c.account_id == "BIG")
        )
    assert held == 1000


async def _demo_counts(directory: Directory) -> dict[str, int]:
    async with unit_of_work(directory.engine, write=False) as conn:
        found = {
            table.name: int(await conn.scalar(select(func.count()).select_from(table)) or 0)
            for table in (
                t.persons,
                t.personas,
                t.teams,
                t.team_members,
                t.budgets,
                t.budget_members,
                t.addresses,
                t.roles,
            )
        }
        found["created_by"] = int(
            await conn.scalar(
                select(func.count()).where(t.personas.c.created_by_persona_id.is_not(None))
            )
            or 0
        )
        for table in (t.teams, t.budgets):
            names = select(table.c.account_id, table.c.name, func.count().label("n")).group_by(
                table.c.account_id, table.c.name
            )
            found[f"repeated {table.name}"] = len(
                [row for row in await conn.execute(names) if row.n > 1]
            )
    return found


async def test_running_the_demo_again_duplicates_nothing(directory: Directory) -> None:
    await generate_demo(directory.engine, directory.settings, "DEMO", 120, seed=1)
    first = await _demo_counts(directory)
    again = await generate_demo(directory.engine, directory.settings, "DEMO", 120, seed=1)
    assert await _demo_counts(directory) == first
    assert (again.teams, again.budgets, again.addresses, again.custom_roles) == (0, 0, 0, 0)
    assert again.people == 120
    assert first["repeated teams"] == first["repeated budgets"] == 0


async def test_a_bigger_second_run_adds_people_but_no_team_or_budget_twice(
    directory: Directory,
) -> None:
    await generate_demo(directory.engine, directory.settings, "DEMO", 60, seed=1)
    before = await _demo_counts(directory)
    await generate_demo(directory.engine, directory.settings, "DEMO", 120, seed=1)
    after = await _demo_counts(directory)
    assert (after["persons"], after["personas"]) == (120, 120)
    assert after["repeated teams"] == after["repeated budgets"] == 0
    assert after["teams"] >= before["teams"]
    assert after["addresses"] > before["addresses"]  # the new people got theirs
    assert after["team_members"] > before["team_members"]
    async with unit_of_work(directory.engine, write=False) as conn:
        owners = list(
            await conn.scalars(
                select(t.budgets.c.primary_owner_persona_id).where(t.budgets.c.type == "individual")
            )
        )
    assert len(owners) == len(set(owners))  # nobody has two individual budgets


async def test_an_account_with_real_people_is_refused_unless_asked(
    directory: Directory,
) -> None:
    await directory.account("F50091")
    await directory.person(["F50091"], first_name="Real", last_name="Person")
    before = await _demo_counts(directory)
    with pytest.raises(RealAccount, match="has 1 person who is not demo data"):
        await generate_demo(directory.engine, directory.settings, "F50091", 10, seed=3)
    assert await _demo_counts(directory) == before
    made = await generate_demo(
        directory.engine, directory.settings, "F50091", 10, seed=3, into_real_account=True
    )
    assert made.people == 10
    # An account of demo people only is not real: it is filled again without asking.
    await generate_demo(directory.engine, directory.settings, "D_1", 5, seed=3)
    await generate_demo(directory.engine, directory.settings, "D_1", 8, seed=3)
    await generate_demo(directory.engine, directory.settings, "DX1", 3, seed=3)  # not D_1's


#: The tables the demo's first queries read (GET /people's filters and embeds, SCIM's
#: Users and Groups): each must have the planner's statistics.
READ_FIRST = (
    "persons",
    "personas",
    "roles",
    "teams",
    "team_members",
    "budgets",
    "budget_members",
    "addresses",
)


async def test_the_demo_leaves_its_tables_analyzed(directory: Directory) -> None:
    """Statistics as soon as the demo is written, not when autovacuum comes round:
    PostgreSQL's planner otherwise plans for empty tables (a SCIM email filter took
    ~500 ms instead of 5 ms), SQLite's misjudges its indexes. On PostgreSQL a manual
    ANALYZE since the test began (``last_analyze``, which autovacuum never sets) and
    row estimates that count the demo's people; on SQLite, ``sqlite_stat1`` rows."""
    async with unit_of_work(directory.engine, write=True) as conn:
        postgres = conn.dialect.name == "postgresql"
        if postgres:
            started = await conn.scalar(text("SELECT clock_timestamp()"))
        elif await conn.scalar(text("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'")):
            await conn.execute(text("DELETE FROM sqlite_stat1"))  # earlier tests' statistics
    await generate_demo(directory.engine, directory.settings, "DEMO", 120, seed=1)
    async with unit_of_work(directory.engine, write=False) as conn:
        if postgres:
            analyzed = text(
                "SELECT relname FROM pg_stat_user_tables"
                " WHERE relname IN :names AND last_analyze >= :started"
            ).bindparams(bindparam("names", expanding=True))
            found = await conn.scalars(analyzed, {"names": list(READ_FIRST), "started": started})
            estimated = text("SELECT reltuples FROM pg_class WHERE relname = 'persons'")
            assert await conn.scalar(estimated) == 120
        else:
            found = await conn.scalars(text("SELECT DISTINCT tbl FROM sqlite_stat1"))
        assert set(READ_FIRST) <= set(found)


async def test_a_large_demo_refreshes_its_statistics_as_it_grows(
    directory: Directory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo writes its people in the writer's batches, in one transaction, and keeps
    the planner's statistics as a bulk load does (writer.LoadStatistics): a planner that
    had never seen them matched each batch by scanning every person written so far, so
    that 30,000 people took 84 s and 200,000 did not finish in 20 minutes. Then the
    lookups' statistics before the creators are found by persona, and every table's at
    the end."""
    monkeypatch.setattr(writer, "FIRST_ANALYZE", 2)
    monkeypatch.setattr(demo, "MAX_BATCH", 2)
    with statements_sent(directory.engine) as sent:
        summary = await generate_demo(directory.engine, directory.settings, "DEMO", 10, seed=1)
    assert summary.people == 10
    analyzed = [statement for statement in sent if statement.startswith("ANALYZE")]
    if directory.engine.dialect.name == "sqlite":  # its statistics are its indexes'
        assert analyzed[:6] == ["ANALYZE persons", "ANALYZE personas"] * 3
        assert analyzed[6:9] == ["ANALYZE accounts", "ANALYZE persons", "ANALYZE personas"]
        return
    lookups = [
        f"{table} ({', '.join(c.name for c in writer.LOOKUP_COLUMNS if c.table.name == table)})"
        for table in ("persons", "personas")
    ]
    lookups_only = f"ANALYZE {', '.join(lookups)}"
    # After the first 2 people, every column; at 8 (fourfold), then after the tenth,
    # before the creators, the lookups'; at the end, every table the demo fills.
    assert analyzed[:3] == ["ANALYZE persons, personas", lookups_only, lookups_only]
    assert re.fullmatch(r"ANALYZE accounts, persons, personas, .*", analyzed[3])
    assert len(analyzed) == 4
