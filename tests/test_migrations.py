"""Migrations that rewrite data, run over rows written before them, on both backends."""

from __future__ import annotations

import importlib
import logging
import re
import unicodedata
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from unittest.mock import patch

import pytest
from sqlalchemy import TextClause, Uuid, bindparam, column, insert, table, text
from sqlalchemy.ext.asyncio import AsyncConnection

from roster.core import derived_columns
from roster.core.derived_columns import persona_derived
from roster.core.matching import email_key, phone_key, search_fold
from roster.db.engine import create_engine
from roster.db.migrate import upgrade
from roster.settings import Settings

#: Emails whose keys SQL's lower(trim()) got wrong (0007): a capital that is not ASCII,
#: ß (case-folded to ss), and an accent written as a combining mark (NFC composes it).
UNUSUAL = ("ÅSA.Berg@Example.com", "Hans.Straße@example.de", "Jose\u0301@example.es")


def _with_ids(sql: str, *names: str) -> TextClause:
    """``sql`` whose parameters ``names`` are UUIDs (SQLite keeps them as hex text)."""
    return text(sql).bindparams(*(bindparam(name, type_=Uuid()) for name in names))


NOW = datetime(2026, 11, 1, tzinfo=UTC)
#: The columns of persons and personas that hold UUIDs.
_UUIDS = {"id", "person_id", "role_id"}
_MIGRATION_0015 = importlib.import_module(
    "roster.migrations.versions.20261129_0015_search_text_decomposed"
)


async def _account_and_role(conn: AsyncConnection) -> uuid.UUID:
    """Account A1 and a role in it, as an old revision's schema holds them."""
    role = uuid.uuid4()
    await conn.execute(
        text("INSERT INTO accounts (id, name, created_at) VALUES ('A1', 'One', :now)"),
        {"now": NOW},
    )
    await conn.execute(
        _with_ids(
            "INSERT INTO roles (id, account_id, name, name_key, created_at, updated_at)"
            " VALUES (:id, 'A1', 'User', 'user', :now, :now)",
            "id",
        ),
        {"id": role, "now": NOW},
    )
    return role


async def _people_and_personas(
    conn: AsyncConnection, role: uuid.UUID, pairs: list[tuple[dict[str, Any], dict[str, Any]]]
) -> list[uuid.UUID]:
    """For each pair, a person with the first's columns and a persona of it in A1 with the
    second's (the sort and search columns empty unless given; every pair names the same
    columns); the personas' ids."""
    people, personas = [], []
    for person, persona in pairs:
        person_id = uuid.uuid4()
        people.append({"id": person_id, "created_at": NOW, "updated_at": NOW, **person})
        personas.append(
            {
                "id": uuid.uuid4(),
                "person_id": person_id,
                "account_id": "A1",
                "status": "active",
                "role_id": role,
                "created_at": NOW,
                "updated_at": NOW,
                "sort_last": "",
                "sort_first": "",
                "search_text": "",
                **persona,
            }
        )
    for name, rows in (("persons", people), ("personas", personas)):
        columns = (column(c, Uuid()) if c in _UUIDS else column(c) for c in rows[0])
        await conn.execute(insert(table(name, *columns)), rows)
    return [persona["id"] for persona in personas]


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
        emails = [*UNUSUAL, "Plain.Ascii@Example.com"]
        async with engine.begin() as conn:
            role = await _account_and_role(conn)
            # Odd ones: the work email is the persona's; even: only the person's.
            people = [(email, email if n % 2 else None) for n, email in enumerate(emails)]
            # Two work emails whose keys 0007 told apart and Roster does not.
            people += [("p1@example.com", "Jörg.Weiß@Example.DE")]
            people += [("p2@example.com", "jörg.weiss@example.de")]
            pairs = [
                ({"email_address": email, "email_key": email_key(email)}, {"email_address": work})
                for email, work in people
            ]
            await _people_and_personas(conn, role, pairs)
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


def _search_text_before_0015(
    texts: Iterable[str | None], phones: Iterable[str | None], region: str
) -> str:
    """``matching.search_text`` as Roster wrote it before 0015, frozen: each text folded
    with its letters joined back (NFKC), a phone number's digits as sent."""

    def fold(text: str) -> str:
        if text.isascii():
            return text.lower()
        decomposed = unicodedata.normalize("NFKD", text)
        kept = "".join(c for c in decomposed if not unicodedata.combining(c))
        return unicodedata.normalize("NFKC", kept.casefold())

    parts = [fold(value) for value in texts if value]
    for phone in filter(None, phones):
        forms = [fold(phone), re.sub(r"\D+", "", phone), phone_key(phone, region) or ""]
        parts.extend(dict.fromkeys(form for form in forms if form))
    return "\n".join(parts)


async def test_search_text_is_decomposed_as_roster_now_writes_it(empty_database: str) -> None:
    """Personas written before 0015 get the search text Roster now writes for them: the
    Hangul, the two-part vowel signs and the fullwidth digits of their text decomposed
    (NFKD), past the first batch of rows read too; a text without them is left as it
    was. SQLite's search index follows the text."""
    settings = Settings(database_url=empty_database)
    engine = create_engine(settings)
    region = settings.default_phone_region
    # A batch of texts that are not ASCII and need no change (ø does not decompose),
    # then the ones that change, and one that is ASCII.
    filler = {"first_name": "Øyvind", "last_name": "Ødegård", "phone_number": None}
    fullwidth = "07700 900123".translate({ord(d): ord(d) + 0xFEE0 for d in "0123456789"})
    people = [filler] * _MIGRATION_0015.BATCH + [
        {"first_name": unicodedata.normalize("NFD", "낸시"), "last_name": "Kim"},
        {"first_name": "অশোক", "last_name": "Das"},  # ো: two parts
        {"first_name": "Min", "last_name": "Lee", "phone_number": "02-1234-5678 내선 12"},
        {"first_name": "Ana", "last_name": "Ruiz", "phone_number": fullwidth},
        {"first_name": "Jörg", "last_name": "Müller", "phone_number": "07700 900123"},
    ]
    people = [{"phone_number": None, **person} for person in people]
    with patch.object(derived_columns, "search_text", _search_text_before_0015):
        before = [persona_derived(person, {}, region)["search_text"] for person in people]
    after = [persona_derived(person, {}, region)["search_text"] for person in people]
    changed = [old != new for old, new in zip(before, after, strict=True)]
    assert changed == [False] * _MIGRATION_0015.BATCH + [True, True, True, True, False]
    try:
        await upgrade(engine, "0014")
        async with engine.begin() as conn:
            role = await _account_and_role(conn)
            pairs = [(p, {"search_text": old}) for p, old in zip(people, before, strict=True)]
            ids = await _people_and_personas(conn, role, pairs)
        await upgrade(engine)
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT id, search_text FROM personas"))).all()
            texts: dict[Any, str] = dict(rows)
            indexed = None
            if engine.dialect.name == "sqlite":
                indexed = await conn.scalar(
                    text("SELECT count(*) FROM personas_search WHERE personas_search MATCH :q"),
                    {"q": f'"{search_fold("낸시")}"'},
                )
    finally:
        await engine.dispose()
    by_id = {str(key).replace("-", ""): value for key, value in texts.items()}
    assert [by_id[persona_id.hex] for persona_id in ids] == after
    assert indexed == (1 if engine.dialect.name == "sqlite" else None)
