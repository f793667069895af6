"""Migrations that rewrite data, run over rows written before them, on both backends."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import TextClause, Uuid, bindparam, text

from roster.core.matching import email_key
from roster.db.engine import create_engine
from roster.db.migrate import upgrade
from roster.settings import Settings

#: Emails whose keys SQL's lower(trim()) got wrong (0007): a capital that is not ASCII,
#: ß (case-folded to ss), and an accent written as a combining mark (NFC composes it).
UNUSUAL = ("ÅSA.Berg@Example.com", "Hans.Straße@example.de", "Jose\u0301@example.es")


def _with_ids(sql: str, *names: str) -> TextClause:
    """``sql`` whose parameters ``names`` are UUIDs (SQLite keeps them as hex text)."""
    return text(sql).bindparams(*(bindparam(name, type_=Uuid()) for name in names))


async def test_work_email_and_user_name_keys_are_folded_as_roster_folds_them(
    empty_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Personas written before 0007 get the work email and userName keys that Roster
    computes for the same addresses (0014), the ASCII ones as 0007 left them; Users whose
    userNames become one are named in a warning."""
    caplog.set_level(logging.WARNING, logger="roster.migrate")
    engine = create_engine(Settings(database_url=empty_database))
    try:
        await upgrade(engine, "0006")
        now = datetime(2026, 11, 1, tzinfo=UTC)
        role = uuid.uuid4()
        emails = [*UNUSUAL, "Plain.Ascii@Example.com"]
        async with engine.begin() as conn:
            await conn.execute(
                text("INSERT INTO accounts (id, name, created_at) VALUES ('A1', 'One', :now)"),
                {"now": now},
            )
            await conn.execute(
                _with_ids(
                    "INSERT INTO roles (id, account_id, name, name_key, created_at, updated_at)"
                    " VALUES (:id, 'A1', 'User', 'user', :now, :now)",
                    "id",
                ),
                {"id": role, "now": now},
            )
            # Odd ones: the work email is the persona's; even: only the person's.
            people = [(email, email if n % 2 else None) for n, email in enumerate(emails)]
            # Two work emails whose keys 0007 told apart and Roster does not.
            people += [("p1@example.com", "Jörg.Weiß@Example.DE")]
            people += [("p2@example.com", "jörg.weiss@example.de")]
            for email, work in people:
                person, persona = uuid.uuid4(), uuid.uuid4()
                await conn.execute(
                    _with_ids(
                        "INSERT INTO persons (id, email_address, email_key, created_at,"
                        " updated_at) VALUES (:id, :email, :key, :now, :now)",
                        "id",
                    ),
                    {"id": person, "email": email, "key": email_key(email), "now": now},
                )
                await conn.execute(
                    _with_ids(
                        "INSERT INTO personas (id, person_id, account_id, status, role_id,"
                        " email_address, created_at, updated_at, sort_last, sort_first,"
                        " search_text) VALUES (:id, :person, 'A1', 'active', :role, :work,"
                        " :now, :now, '', '', '')",
                        "id",
                        "person",
                        "role",
                    ),
                    {"id": persona, "person": person, "role": role, "work": work, "now": now},
                )
        await upgrade(engine)
        async with engine.connect() as conn:
            found = (
                await conn.execute(
                    text(
                        "SELECT persons.email_address, personas.email_address,"
                        " personas.work_email_key, personas.user_name_key FROM personas"
                        " JOIN persons ON persons.id = personas.person_id"
                    )
                )
            ).all()
    finally:
        await engine.dispose()
    assert len(found) == len(people)
    for email, work, work_key, user_name_key in found:
        assert (work_key, user_name_key) == (email_key(work), email_key(work or email)), email
    # The two Users whose userNames are now one are named, for the operator to change.
    [warned] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warned == (
        "Account A1: 2 Users share the userName 'jörg.weiss@example.de'; "
        "change all but one's userName."
    )
