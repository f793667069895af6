"""``roster events export`` and ``roster events prune``, run as an operator runs them."""

from __future__ import annotations

import asyncio
import getpass
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from roster.db.engine import create_engine, unit_of_work
from roster.db.tables import events
from roster.settings import Settings
from tests.commands import roster, succeeds

pytestmark = pytest.mark.slow


def _age_events(url: str, days: int) -> None:
    """Make every event ``days`` old."""

    async def age() -> None:
        engine = create_engine(Settings(_env_file=None, database_url=url))
        try:
            async with unit_of_work(engine, write=True) as conn:
                old = datetime.now(UTC) - timedelta(days=days)
                await conn.execute(update(events).values(occurred_at=old))
        finally:
            await engine.dispose()

    asyncio.run(age())


def test_export_writes_the_audit_trail_and_prune_removes_old_events(
    fresh_database: str, tmp_path: Path
) -> None:
    url = fresh_database
    succeeds(url, "accounts", "create", "E1", "--name", "One")
    people = tmp_path / "people.csv"
    people.write_text(
        "first_name,last_name,email_address,phone_number,external_ref\n"
        "Ada,Lovelace,ada@example.com,,r-1\n"
        "Alan,Turing,alan@example.com,,r-2\n",
        encoding="utf-8",
    )
    succeeds(url, "import", str(people), "--account", "E1")
    target = tmp_path / "events.jsonl"
    done = roster(url, "events", "export", "--account", "E1", "-o", str(target))
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == f"Wrote 3 events of E1 to {target}."
    lines = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert [e["type"] for e in lines] == ["account.created", "person.created", "person.created"]
    assert [e["data"]["firstName"] for e in lines[1:]] == ["Ada", "Alan"]
    assert {e["actor"]["type"] for e in lines} == {"cli"}
    assert lines[1]["actor"]["id"] == getpass.getuser()
    assert [e["id"] for e in lines] == sorted(e["id"] for e in lines)
    stdout = succeeds(url, "events", "export", "--account", "E1")
    assert [json.loads(line) for line in stdout.splitlines()] == lines
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    assert succeeds(url, "events", "export", "--account", "E1", "--since", tomorrow) == ""

    unknown = roster(url, "events", "export", "--account", "NOPE", "-o", str(tmp_path / "x"))
    assert (unknown.returncode, unknown.stderr) == (1, "error: There is no account 'NOPE'.\n")
    assert not (tmp_path / "x").exists()

    assert succeeds(url, "events", "prune").strip() == "Removed 0 events older than 90 days."
    _age_events(url, 10)
    assert json.loads(succeeds(url, "events", "prune", "--days", "30", "--json")) == {
        "removed": 0,
        "retention_days": 30,
    }
    pruned = succeeds(url, "events", "prune", "--days", "7")
    assert pruned.strip() == "Removed 3 events older than 7 days."
    assert succeeds(url, "events", "export", "--account", "E1") == ""
