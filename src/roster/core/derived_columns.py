"""Derived columns: the comparison keys of persons and the sort and search columns of personas.

They are derived from the fields clients write, so every write path calls these
functions instead of computing them itself.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from roster.core.fields import PERSON, PERSONA, searched
from roster.core.matching import email_key, name_key, phone_key, search_text
from roster.db.tables import personas, persons

#: The fields search reads (core/fields.py): texts are folded, phone numbers kept in
#: several forms, the person's before the persona's.
_PERSON_TEXTS = searched(PERSON.values(), phones=False)
_PERSON_PHONES = searched(PERSON.values(), phones=True)
_PERSONA_TEXTS = searched(PERSONA.values(), phones=False)
_PERSONA_PHONES = searched(PERSONA.values(), phones=True)
#: What a persona's userName key is derived from, but its person's email.
_USER_NAME = ("user_name", "email_address")


def person_keys(person: Mapping[str, Any], region: str) -> dict[str, str | None]:
    """The key columns for a person's fields (all four, from the given values)."""
    return {
        "email_key": email_key(person.get("email_address")),
        "phone_key": phone_key(person.get("phone_number"), region),
        "first_name_key": name_key(person.get("first_name")),
        "last_name_key": name_key(person.get("last_name")),
    }


def user_name_key(person: Mapping[str, Any], persona: Mapping[str, Any]) -> str | None:
    """The key of a persona's SCIM userName: as written, else its work email, else its
    person's email (spec/scim.md); ``None`` when it has none of them (it reads its id)."""
    return name_key(
        persona.get("user_name") or persona.get("email_address") or person.get("email_address")
    )


def persona_derived(
    person: Mapping[str, Any], persona: Mapping[str, Any], region: str
) -> dict[str, str | None]:
    """The sort, search, userName and work email key columns of a persona, from its
    person's and its own fields."""
    return {
        "work_email_key": email_key(persona.get("email_address")),
        "user_name_key": user_name_key(person, persona),
        "sort_last": name_key(person.get("last_name")) or "",
        "sort_first": name_key(person.get("first_name")) or "",
        "search_text": search_text(
            (
                *(person.get(name) for name in _PERSON_TEXTS),
                *(persona.get(name) for name in _PERSONA_TEXTS),
            ),
            (
                *(person.get(name) for name in _PERSON_PHONES),
                *(persona.get(name) for name in _PERSONA_PHONES),
            ),
            region,
        ),
    }


async def refresh_personas(
    conn: AsyncConnection, person_ids: Collection[uuid.UUID], region: str
) -> None:
    """Recompute the derived columns of every persona of these persons, in every account."""
    if not person_ids:
        return
    persona_fields = tuple(dict.fromkeys((*_PERSONA_TEXTS, *_PERSONA_PHONES, *_USER_NAME)))
    person_fields = ("first_name", "last_name", "email_address", *_PERSON_TEXTS, *_PERSON_PHONES)
    rows = await conn.execute(
        select(
            personas.c.seq,
            *(personas.c[name].label(f"persona_{name}") for name in persona_fields),
            *(persons.c[name] for name in dict.fromkeys(person_fields)),
        )
        .join(persons, persons.c.id == personas.c.person_id)
        .where(personas.c.person_id.in_(list(person_ids)))
    )
    changes = []
    for row in rows:
        m = row._mapping
        persona = {name: m[f"persona_{name}"] for name in persona_fields}
        changes.append({"_seq": m["seq"], **persona_derived(dict(m), persona, region)})
    if changes:
        await conn.execute(
            update(personas)
            .where(personas.c.seq == bindparam("_seq"))
            .values(
                sort_last=bindparam("sort_last"),
                sort_first=bindparam("sort_first"),
                search_text=bindparam("search_text"),
                user_name_key=bindparam("user_name_key"),
                work_email_key=bindparam("work_email_key"),
            ),
            changes,
        )
